"""RunWriter: a run directory written under a hidden name and renamed into place when complete."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from weightlab.errors import RunDirError
from weightlab.fileio import atomic_write
from weightlab.store.format import (
    CHECKPOINT,
    DIGESTS,
    FORMAT_VERSION,
    HISTORY_COLUMNS,
    TEMP_PREFIX,
    UNDIGESTED,
    dumps,
    file_digest,
)
from weightlab.store.snapshots import SNAPSHOTS, SnapshotFile


class RunWriter:
    """Writes one run (or proof, comparison) directory under a temporary name; `commit` renames it into place.

    Created before training starts, so an unusable ``--out`` fails in a second, not after
    the training. Used as a context manager, a failure removes the temporary directory.
    """

    def __init__(self, out: str | os.PathLike, run_id: str, adopt: bool = False):
        """``adopt=True`` continues an interrupted run's existing temporary directory (``--resume``)."""
        self.out = Path(out)
        self.run_id = run_id
        self.adopted = adopt
        if self.out.exists() and not self.out.is_dir():
            raise RunDirError(f"--out {self.out} is a file; pass a directory (it is created if missing)")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.temp = self.out / f"{TEMP_PREFIX}{run_id}"
            if not adopt:
                self.temp.mkdir()
        except OSError as error:
            raise RunDirError(
                f"cannot create a directory in {self.out} ({error.strerror}); pass a writable --out"
            ) from error
        self.path = self.out / run_id
        self._snapshot_files: list[SnapshotFile] = []
        self._snapshot_digest_cache: list[str] = []  # digests of the snapshots already streamed, for checkpoints
        if self.path.exists():
            if not adopt:  # an adopted directory is an interrupted run: never the writer's to remove
                shutil.rmtree(self.temp, ignore_errors=True)
            raise RunDirError(f"{self.path} already exists; it is never overwritten: pass another --out or remove it")

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        # Stopped (Ctrl-C, a full disk, any failure) after an epoch's checkpoint: keep the hidden
        # directory, whose checkpoint is consistent (written atomically); `--resume` continues it.
        # A directory adopted to resume is never the writer's to remove, whatever happened.
        for store in self._snapshot_files:
            store.close()
        os_error = isinstance(error, OSError) and not isinstance(error, RunDirError)
        resumable = self.adopted or (self.temp / CHECKPOINT).is_file()
        if self.temp.exists() and not resumable:
            shutil.rmtree(self.temp, ignore_errors=True)
        if os_error:
            reason = error.strerror or str(error)
            if resumable:
                raise RunDirError(
                    f"could not write {self.path} ({reason}); the run up to its last finished epoch is kept in {self.temp}: "
                    f"free space and continue it with `weightlab run --resume {self.temp}`"
                ) from error
            raise RunDirError(
                f"could not write {self.path} ({reason}); nothing of it was kept: free space or pick another --out and rerun"
            ) from error

    def write_json(self, name: str, value) -> None:
        (self.temp / name).write_text(dumps(value) + "\n")

    def write_history(self, history: dict[str, list[float]], epoch_seconds: list[float]) -> None:
        with open(self.temp / "history.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HISTORY_COLUMNS)
            for epoch, seconds in enumerate(epoch_seconds):
                row = [epoch + 1] + [history.get(key, [math.nan] * (epoch + 1))[epoch] for key in HISTORY_COLUMNS[1:-1]]
                writer.writerow(row + [seconds])

    def write_steps(self, tracked) -> None:
        np.savez(
            self.temp / "steps.npz",
            step=np.arange(1, len(tracked.loss) + 1),
            epoch=tracked.epoch,
            loss=tracked.loss,
            variables=np.asarray(tracked.variable_names),
            distance_from_init=tracked.distance_from_init,
            update_norm=tracked.update_norm,
            weight_norm=tracked.weight_norm,
            update_ratio=tracked.update_ratio,
        )

    def write_predictions(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        """The trained model's answer for every test image: what it predicted, and how sure it was."""
        probabilities = np.asarray(probabilities)
        np.savez(
            self.temp / "predictions.npz",
            label=np.asarray(labels, dtype=np.uint8),
            predicted=probabilities.argmax(axis=1).astype(np.uint8),
            confidence=probabilities.max(axis=1).astype(np.float32),
        )

    def snapshot_store(
        self, names: list[str], steps_per_epoch: float, resume_steps: list[int] | None = None
    ) -> SnapshotFile:
        """snapshots.h5 of this run, to stream snapshots into as they are taken (``resume_steps``: reopen it, cut to those)."""
        store = SnapshotFile(self.temp / SNAPSHOTS, names, steps_per_epoch, resume_steps=resume_steps)
        self._snapshot_files.append(store)
        return store

    def write_snapshots(
        self, tracked, attributes: dict[str, str], evaluation: dict[str, np.ndarray] | None = None
    ) -> None:
        """Finish snapshots.h5: each snapshot's ``evaluation`` and the ``attributes``; then close it.

        Snapshots streamed into this run's own file are there already; others (kept in memory)
        are copied in first, one at a time.
        """
        store = tracked.snapshots
        if not (isinstance(store, SnapshotFile) and store.path == self.temp / SNAPSHOTS):
            steps = np.asarray(tracked.snapshot_steps)
            per_epoch = float(steps[-1] / tracked.snapshot_epochs[-1]) if len(steps) > 1 and steps[-1] else 1.0
            copy = self.snapshot_store(list(tracked.variable_names), per_epoch)
            for index, step in enumerate(steps):
                copy.append(int(step), store.at(index))
            store = copy
        store.write_evaluation(evaluation or {}, attributes)
        store.close()

    def write_landscape(self, landscape: dict[str, np.ndarray], name: str = "landscape.npz") -> None:
        np.savez(self.temp / name, **landscape)  # type: ignore[arg-type]

    def write_checkpoint(self, saved: dict, orders) -> None:
        """Everything needed to continue this run from the epoch just finished (replaced each epoch).

        The snapshots are not in it: they are in the hidden directory's snapshots.h5 already, which
        a resumed run cuts back to the checkpoint's ``snapshot_steps``. It is stored with the digest
        of the config in this directory's config.json and a digest of every array (see `checkpoint`),
        so that an altered or foreign checkpoint is refused, not resumed.
        """
        from weightlab.store.checkpoint import checkpoint_arrays

        config = json.loads((self.temp / "config.json").read_text())["config"]
        arrays: dict = checkpoint_arrays(saved, orders, config, self._snapshot_digests(len(saved["snapshot_steps"])))
        with atomic_write(self.temp / CHECKPOINT, "wb") as handle:
            np.savez(handle, **arrays)

    def _snapshot_digests(self, count: int) -> list[str] | None:
        """The digests of the first ``count`` snapshots streamed into this directory's snapshots.h5 (each read once)."""
        from weightlab.store.checkpoint import snapshot_digest

        stores = [store for store in self._snapshot_files if store.path == self.temp / SNAPSHOTS]
        if not stores:
            return None
        known = self._snapshot_digest_cache
        del known[count:]
        known.extend(snapshot_digest(stores[-1].at(index)) for index in range(len(known), count))
        return list(known)

    def commit(self) -> Path:
        """Make the run visible: flush every file, then one rename."""
        for store in self._snapshot_files:
            store.close()
        (self.temp / CHECKPOINT).unlink(missing_ok=True)  # for --resume only; a finished run needs none
        # Every file's digest: a reader refuses a file damaged or swapped after this moment.
        digests = {
            file.name: file_digest(file)
            for file in sorted(self.temp.iterdir())
            if file.is_file() and file.name not in UNDIGESTED
        }
        self.write_json(DIGESTS, {"format_version": FORMAT_VERSION, "sha256": digests})
        for file in self.temp.iterdir():
            if file.is_file():  # subdirectories (a proof's runs) were committed on their own
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        os.rename(self.temp, self.path)
        return self.path
