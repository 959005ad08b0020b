"""The per-step weight norms, ‖W_t − W_0‖, ‖W_t − W_{t−1}‖ and ‖W_t‖, as both training paths compute them.

In Keras's ops, so the same arithmetic runs inside the fused loop on JAX and in
`WeightTracker`'s compiled step function on any backend.
"""

from __future__ import annotations

import keras


def sum_of_squares(values):
    """Σ values², reduced over the leading axes first, then over the last.

    On JAX, XLA fuses the squares (and a difference inside ``values``) into that first
    reduction, which runs down the columns with one vector accumulator per column, so no
    temporary array is written; a whole-array sum instead went to a library kernel that cannot
    fuse them (at hidden width 4,096, the norms of a step wrote and read 39 MB: ≈3 ms against
    ≈1.3; at width 64, 48 against 27 µs; measured).
    """
    ops = keras.ops
    last = values.shape[-1] if len(values.shape) and values.shape[-1] else 1  # a scalar, or no elements at all
    columns = ops.reshape(values, (-1, last))
    return ops.sum(ops.sum(ops.square(columns), axis=0))


def step_norms(current, initial, previous):
    """Per variable: ‖W_t − W_0‖, ‖W_t − W_{t−1}‖, ‖W_t‖ as one (3, V) tensor, and a copy of W_t."""
    ops = keras.ops
    rows = [
        ops.stack([ops.sqrt(sum_of_squares(c - i)) for c, i in zip(current, initial)]),
        ops.stack([ops.sqrt(sum_of_squares(c - p)) for c, p in zip(current, previous)]),
        ops.stack([ops.sqrt(sum_of_squares(c)) for c in current]),
    ]
    return ops.stack(rows), [ops.copy(c) for c in current]
