"""snapshots.h5, written as the snapshots are taken: `SnapshotFile`.

Every dataset is chunked and resizable: /steps and /epochs grow by one entry per snapshot and
each /weights/<layer>/<variable> by one (1, *shape) chunk, written and flushed as the trainer
hands it over. Memory holds at most the snapshot being written. After training the same file
receives the evaluation of every snapshot (/test_loss, /test_accuracy, /panel/…) and is closed.
A resumed run reopens its hidden directory's file and truncates it to the checkpoint's count.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from weightlab.errors import RunDirError
from weightlab.store.format import FORMAT_VERSION
from weightlab.train.snapshots import Snapshots

SNAPSHOTS = "snapshots.h5"
# Room kept free beyond the bytes about to be written, for HDF5's metadata (chunk index, headers).
METADATA_ROOM = 1 << 20


class SnapshotFile(Snapshots):
    """The snapshots of one run, streamed into an HDF5 file (see the module's docstring for its layout)."""

    def __init__(
        self, path: Path, names: Sequence[str], steps_per_epoch: float, resume_steps: Sequence[int] | None = None
    ):
        """A new file at ``path``; with ``resume_steps``, the existing one, cut back to exactly those snapshots."""
        import h5py

        self.path, self.names, self.steps_per_epoch = Path(path), list(names), steps_per_epoch
        if resume_steps is None:
            self._h5 = h5py.File(self.path, "w")
            self._h5.attrs["format_version"] = FORMAT_VERSION
            for name in ("steps", "epochs"):
                self._h5.create_dataset(
                    name,
                    shape=(0,),
                    maxshape=(None,),
                    chunks=(1024,),
                    dtype=np.int64 if name == "steps" else np.float64,
                )
            return
        try:
            self._h5 = h5py.File(self.path, "r+")
            kept = self._h5["steps"][: len(resume_steps)].tolist()
        except (OSError, KeyError) as error:
            raise RunDirError(
                f"{self.path} is missing or damaged ({error}); the run cannot be resumed: start it again"
            ) from error
        if kept != list(resume_steps):
            raise RunDirError(
                f"{self.path} does not hold the checkpoint's snapshots; the run cannot be resumed: start it again"
            )
        self.truncate(len(resume_steps))

    @classmethod
    def reading(cls, path: Path, names: Sequence[str]) -> SnapshotFile:
        """A finished run's file, open for reading only (``names`` in the model's order)."""
        import h5py

        store = cls.__new__(cls)
        store.path, store.names = Path(path), list(names)
        store._h5 = h5py.File(store.path, "r")
        steps = store._h5["steps"][()]
        store.steps_per_epoch = float(steps[-1] / store._h5["epochs"][-1]) if len(steps) > 1 and steps[-1] else 1.0
        return store

    def _weights(self, position: int):
        return self._h5[f"weights/{self.names[position]}"]

    @property
    def steps(self) -> np.ndarray:
        return self._h5["steps"][()]

    def _ensure_room(self, nbytes: int) -> None:
        """Raise ENOSPC unless the disk has room for ``nbytes`` more (and HDF5's metadata).

        HDF5 does not survive a write that fails for want of space (it can crash the process),
        so a full disk is caught here, before HDF5 writes, as the OSError every other file gives.
        """
        stats = os.statvfs(self.path.parent)
        if stats.f_bavail * stats.f_frsize < nbytes + METADATA_ROOM:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    def append(self, step: int, weights: Sequence[np.ndarray]) -> None:
        self.extend([step], [np.asarray(value)[None] for value in weights])

    def extend(self, steps: Sequence[int], stacks: Sequence[np.ndarray]) -> None:
        """One resize and one write per dataset for all of ``steps`` (a chunk's snapshots: ≈1 ms each one by one)."""
        added = len(steps)
        if not added:
            return
        self._ensure_room(sum(np.asarray(stack).size * 4 for stack in stacks))
        count = len(self._h5["steps"])
        if "weights" not in self._h5:
            for name, stack in zip(self.names, stacks):
                shape = np.shape(stack)[1:]
                self._h5.create_dataset(
                    f"weights/{name}", shape=(0, *shape), maxshape=(None, *shape), chunks=(1, *shape), dtype=np.float32
                )
        numbers = np.asarray(steps, dtype=np.int64)
        for name, entries in (("steps", numbers), ("epochs", numbers / self.steps_per_epoch)):
            self._h5[name].resize((count + added,))
            self._h5[name][count:] = entries
        for position, stack in enumerate(stacks):
            dataset = self._weights(position)
            dataset.resize(count + added, axis=0)
            dataset[count:] = np.asarray(stack, dtype=np.float32)

    def truncate(self, count: int) -> None:
        for name in ("steps", "epochs"):
            self._h5[name].resize((count,))
        if "weights" in self._h5:
            for position in range(len(self.names)):
                self._weights(position).resize(count, axis=0)

    def block(self, start: int, stop: int) -> list[np.ndarray]:
        return [self._weights(position)[start:stop] for position in range(len(self.names))]

    def rows(self, position: int, start: int, stop: int) -> np.ndarray:
        dataset = self._weights(position)
        return dataset[:, start:stop] if dataset.ndim > 1 else dataset[()]

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self._weights(position).shape[1:]) for position in range(len(self.names))]

    def flush(self) -> None:
        self._h5.flush()

    def write_evaluation(self, evaluation: dict[str, np.ndarray], attributes: dict[str, str]) -> None:
        """Each snapshot's evaluation (name -> array, names may hold '/') and the file's attributes."""
        self._ensure_room(sum(np.asarray(value).nbytes for value in evaluation.values()))
        for key, text in attributes.items():
            self._h5.attrs[key] = text
        for name, value in evaluation.items():
            if name in self._h5:
                del self._h5[name]
            self._h5.create_dataset(name, data=value)

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.close()
