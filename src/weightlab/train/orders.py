"""Each epoch's data order, drawn when the epoch starts rather than all before training.

`model.fit` on JAX draws ``np.random.permutation(n)`` from numpy's global generator once per
epoch. `EpochOrders` keeps that generator's state as it was when training began and replays
it: epoch e's order is the (e+1)-th permutation drawn from that state, exactly as the global
generator would have drawn it, but memory holds one epoch's order, not every epoch's (a run of
10¹¹ epochs no longer allocates 10¹¹ permutations before its first step). The state is a few
kilobytes, so a checkpoint stores it instead of the orders.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# numpy's legacy MT19937 state: the 624-word key and the position in it.
KEY_WORDS = 624


class EpochOrders(Sequence):
    """``orders[e]``: the permutation of ``range(samples)`` epoch e trains in, for ``epochs`` epochs."""

    def __init__(self, key: np.ndarray, position: int, samples: int, epochs: int):
        key = np.asarray(key)
        if key.shape != (KEY_WORDS,) or key.dtype.kind not in "iu" or not 0 <= position <= KEY_WORDS:
            raise ValueError(f"not a generator state (key {key.shape} {key.dtype}, position {position})")
        self._start = (key.astype(np.uint32), int(position))
        self.samples, self.epochs = int(samples), int(epochs)
        self._generator = np.random.RandomState()
        self._next, self._current = 0, None  # the epoch whose order `_generator` draws next; the last one drawn

    @classmethod
    def from_global(cls, samples: int, epochs: int) -> EpochOrders:
        """The orders numpy's global generator would give from its state now (it is not advanced)."""
        _, key, position, *_ = np.random.get_state()
        return cls(key, position, samples, epochs)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """What a checkpoint stores to draw the same orders again."""
        key, position = self._start
        return {"order_key": key, "order_position": np.asarray(position), "order_samples": np.asarray(self.samples)}

    @classmethod
    def from_state_arrays(cls, arrays: dict[str, np.ndarray], epochs: int) -> EpochOrders:
        return cls(arrays["order_key"], int(arrays["order_position"]), int(arrays["order_samples"]), epochs)

    def __len__(self) -> int:
        return self.epochs

    def __getitem__(self, epoch):
        if isinstance(epoch, slice):
            return [self[e] for e in range(*epoch.indices(self.epochs))]
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} of {self.epochs}")
        if self._current is not None and epoch == self._next - 1:
            return self._current
        if epoch < self._next:  # going back (rare: a resumed or replayed epoch): start over
            self._next = 0
        if self._next == 0:
            key, position = self._start
            self._generator.set_state(("MT19937", key, position, 0, 0.0))
        while self._next <= epoch:
            self._current = self._generator.permutation(self.samples)
            self._next += 1
        return self._current

    def __eq__(self, other) -> bool:
        if not isinstance(other, EpochOrders):
            return NotImplemented
        return (
            self.samples == other.samples
            and self.epochs == other.epochs
            and self._start[1] == other._start[1]
            and np.array_equal(self._start[0], other._start[0])
        )

    __hash__ = None  # type: ignore[assignment]
