"""The per-step weight norms, ‖W_t − W_0‖, ‖W_t − W_{t−1}‖ and ‖W_t‖, as both training paths compute them.

In Keras's ops, so the same arithmetic runs inside the fused loop on JAX and in
`WeightTracker`'s compiled step function on any backend — except for the variables whose norms
the fused Adam kernel takes in its update's pass (`kernels.adam`): summed in double there, they
agree with these to float rounding, not to the bit.
"""

from __future__ import annotations

import math

import keras

# Variables of at least this many elements (1 MB of float32) are summed column-first
# (`sum_of_squares`), smaller ones as one stacked reduction (`variable_norms`).
COLUMN_FIRST_ELEMENTS = 1 << 18


def step_norms(current, initial, previous, taken=None):
    """Per variable: ‖W_t − W_0‖, ‖W_t − W_{t−1}‖, ‖W_t‖ as one (3, V) tensor, and a copy of W_t.

    ``taken[v]``, where given and not None, holds variable v's three norms already taken (by the
    fused Adam kernel, in its update's pass): they are used as they are.
    """
    ops = keras.ops
    taken = taken or [None] * len(current)
    columns = [
        variable_norms(c, i, p) if known is None else ops.cast(known, "float32")
        for c, i, p, known in zip(current, initial, previous, taken)
    ]
    return ops.stack(columns, axis=1), [ops.copy(c) for c in current]


def variable_norms(current, initial, previous):
    """(3,): ‖W_t − W_0‖, ‖W_t − W_{t−1}‖, ‖W_t‖ of one variable.

    On JAX two arrangements win at different sizes (measured in the training loop on the CPU,
    norms taken every step, against none). A small variable's three differences are stacked
    and summed in one reduction, which XLA hands to a library kernel: at hidden width 64
    +17 µs a step, against +32 column-first. A large one's are summed column-first, where the
    stacked differences would be written out and read back: at width 1,024 +115 µs against
    +250, at 4,096 ≈1.2 ms against ≈3. They break even at width 256 (200,704 weights), so the
    threshold sits just above it: where the two cost the same, the stacked one stays.
    """
    ops = keras.ops
    # in float32 whatever the variables hold: float16's squares underflow to 0 and overflow to inf
    current, initial, previous = (ops.cast(values, "float32") for values in (current, initial, previous))
    differences = (current - initial, current - previous, current)
    if math.prod(current.shape) >= COLUMN_FIRST_ELEMENTS:
        return ops.sqrt(ops.stack([sum_of_squares(values) for values in differences]))
    stacked = ops.stack([ops.reshape(values, (-1,)) for values in differences])
    return ops.sqrt(ops.sum(stacked * stacked, axis=1))


def sum_of_squares(values):
    """Σ values², reduced over the leading axes first, then over the last.

    On JAX, XLA fuses the squares (and a difference inside ``values``) into that first
    reduction, which runs down the columns with one vector accumulator per column, so no
    temporary array is written.
    """
    ops = keras.ops
    last = values.shape[-1] if len(values.shape) and values.shape[-1] else 1  # a scalar, or no elements at all
    columns = ops.reshape(values, (-1, last))
    return ops.sum(ops.sum(ops.square(columns), axis=0))
