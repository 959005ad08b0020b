"""Where a run's snapshots go as they are taken: `Snapshots`, and its in-memory form.

A trainer appends each snapshot (the step, every trainable variable's weights) the moment it
reaches the host; it never collects them. The run directory's form streams them into
``snapshots.h5`` (`weightlab.store.snapshots.SnapshotFile`), so memory does not grow with
their number; `MemorySnapshots` keeps them in RAM, for a `WeightTracker` used on its own.

Read back, a `Snapshots` is a mapping from variable name to its (n, *shape) stack, and gives
single snapshots (`at`) and blocks of consecutive ones (`block`) without loading the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np


class Snapshots(Mapping):
    """Snapshots of named variables at increasing steps; appended one at a time, read back by index or by name."""

    names: list[str]

    # -- what a store implements ---------------------------------------------------------
    @property
    def steps(self) -> np.ndarray:
        """(n,) int64: the global step of each snapshot."""
        raise NotImplementedError

    def append(self, step: int, weights: Sequence[np.ndarray]) -> None:
        """Keep ``weights`` (one array per variable, in ``names``' order) as the snapshot of ``step``."""
        raise NotImplementedError

    def extend(self, steps: Sequence[int], stacks: Sequence[np.ndarray]) -> None:
        """Keep several snapshots at once: ``stacks`` holds one (len(steps), *shape) array per variable."""
        for index, step in enumerate(steps):
            self.append(step, [stack[index] for stack in stacks])

    def truncate(self, count: int) -> None:
        """Keep only the first ``count`` snapshots."""
        raise NotImplementedError

    def block(self, start: int, stop: int) -> list[np.ndarray]:
        """Snapshots start..stop-1: one (stop − start, *shape) float32 array per variable."""
        raise NotImplementedError

    def flush(self) -> None:
        """Make what was appended durable (a no-op in memory)."""

    def rows(self, position: int, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 (along the first axis) of variable ``position`` in every snapshot: (n, stop − start, …).

        One pass over these slabs reads every snapshot once while holding only a slab of each.
        A scalar variable has no rows: all of it, (n,), comes back.
        """
        stack = self.block(0, self.count)[position]
        return stack[:, start:stop] if stack.ndim > 1 else stack

    # -- derived -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.steps)

    def at(self, index: int) -> list[np.ndarray]:
        """One snapshot (negative indices count from the end): one array per variable."""
        index = index % self.count
        return [stack[0] for stack in self.block(index, index + 1)]

    def initial(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.at(0)))

    def final(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.at(-1)))

    def bytes_per_snapshot(self) -> int:
        return sum(int(np.prod(shape)) * 4 for shape in self.shapes())

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(stack.shape[1:]) for stack in self.block(0, 1)]

    # Mapping: name -> (n, *shape), the whole stack of one variable (loaded on access).
    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return self._stack(self.names.index(name))

    def _stack(self, position: int) -> np.ndarray:
        return self.block(0, self.count)[position]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class MemorySnapshots(Snapshots):
    """Snapshots kept in RAM (each appended array copied as float32)."""

    def __init__(self, names: Sequence[str] = ()):
        self.names = list(names)
        self._steps: list[int] = []
        self._weights: list[list[np.ndarray]] = []

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(self._steps, dtype=np.int64)

    def append(self, step: int, weights: Sequence[np.ndarray]) -> None:
        self._steps.append(int(step))
        self._weights.append([np.array(w, dtype=np.float32, copy=True) for w in weights])

    def truncate(self, count: int) -> None:
        del self._steps[count:], self._weights[count:]

    def block(self, start: int, stop: int) -> list[np.ndarray]:
        return [np.stack([snapshot[i] for snapshot in self._weights[start:stop]]) for i in range(len(self.names))]

    def at(self, index: int) -> list[np.ndarray]:
        return list(self._weights[index])


class ChainedSnapshots(Snapshots):
    """Several runs' snapshots read as one sequence (a proof's two paths in one plane); read-only."""

    def __init__(self, parts: Sequence[Snapshots]):
        self.parts = list(parts)
        self.names = list(parts[0].names)

    @property
    def steps(self) -> np.ndarray:
        return np.concatenate([part.steps for part in self.parts])

    def block(self, start: int, stop: int) -> list[np.ndarray]:
        pieces, offset = [], 0
        for part in self.parts:
            low, high = max(start - offset, 0), min(stop - offset, part.count)
            if low < high:
                pieces.append(part.block(low, high))
            offset += part.count
        return [np.concatenate([piece[i] for piece in pieces]) for i in range(len(self.names))]

    def rows(self, position: int, start: int, stop: int) -> np.ndarray:
        return np.concatenate([part.rows(position, start, stop) for part in self.parts])

    def shapes(self) -> list[tuple[int, ...]]:
        return self.parts[0].shapes()
