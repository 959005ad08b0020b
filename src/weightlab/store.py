"""The run directory: a public format, written atomically, read back into a `Run`.

    runs/<run-id>/
      config.json     the config, the dataset's source and every version that made the numbers
      history.csv     per epoch: loss, accuracy, val_loss, val_accuracy, seconds
      steps.npz       per step: loss and, per variable, distance from init, update norm, weight norm
      snapshots.h5    weights at step 0, each epoch's end and every N steps if asked
      predictions.npz the trained model's prediction and confidence for every test image
      summary.json    the numbers asked first (see the README for its keys)
      report.html     the report, self-contained

A run directory is complete or absent: it is written under a hidden temporary name in the
same parent and renamed into place only once every file is on disk.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import math
import os
import secrets
import shutil
import zipfile
from pathlib import Path

import numpy as np

from weightlab.config import RunConfig
from weightlab.errors import RunDirError
from weightlab.fileio import atomic_write

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.npz"  # in an unfinished run's hidden directory only
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
_TEMP_PREFIX = ".incomplete-"


def new_run_id(config: RunConfig) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.dataset}-h{config.hidden}-s{config.seed}-{secrets.token_hex(2)}"


def jsonable(value):
    """``value`` with numpy scalars and arrays made plain, and NaN/inf made None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value) -> str:
    return json.dumps(jsonable(value), indent=2, allow_nan=False)


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
            self.temp = self.out / f"{_TEMP_PREFIX}{run_id}"
            if not adopt:
                self.temp.mkdir()
        except OSError as error:
            raise RunDirError(
                f"cannot create a directory in {self.out} ({error.strerror}); pass a writable --out"
            ) from error
        self.path = self.out / run_id
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

    def write_snapshots(self, tracked, attributes: dict[str, str]) -> None:
        import h5py

        with h5py.File(self.temp / "snapshots.h5", "w") as h5:
            h5.attrs["format_version"] = FORMAT_VERSION
            for key, value in attributes.items():
                h5.attrs[key] = value
            h5.create_dataset("steps", data=tracked.snapshot_steps)
            h5.create_dataset("epochs", data=tracked.snapshot_epochs)
            for name, stack in tracked.snapshots.items():
                h5.create_dataset(f"weights/{name}", data=stack.astype(np.float32))

    def write_checkpoint(self, saved: dict, orders: list[np.ndarray]) -> None:
        """Everything needed to continue this run from the epoch just finished (replaced each epoch)."""
        arrays = {
            "path": np.asarray(saved["path"]),  # the training path that wrote it, and must continue it
            "epochs_done": np.asarray(saved["epochs_done"]),
            "orders": np.stack(orders),
            "losses": saved["losses"],
            "norms": saved["norms"],
            "snapshot_steps": np.asarray(saved["snapshot_steps"]),
            "epoch_seconds": np.asarray(saved["epoch_seconds"]),
            "history": np.asarray(json.dumps(saved["history"])),
        }
        if saved.get("corrects") is not None:  # per-step correct counts: the fused path's accuracy
            arrays["corrects"] = saved["corrects"]
        for group, leaves in enumerate(saved["state"]):
            for index, leaf in enumerate(leaves):
                arrays[f"state_{group}_{index}"] = leaf
        for k, snapshot in enumerate(saved["snapshots"]):
            for index, leaf in enumerate(snapshot):
                arrays[f"snapshot_{k}_{index}"] = leaf
        with atomic_write(self.temp / CHECKPOINT, "wb") as handle:
            np.savez(handle, **arrays)

    def commit(self) -> Path:
        """Make the run visible: flush every file, then one rename."""
        (self.temp / CHECKPOINT).unlink(missing_ok=True)  # for --resume only; a finished run needs none
        for file in self.temp.iterdir():
            if file.is_file():  # subdirectories (a proof's runs) were committed on their own
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        os.rename(self.temp, self.path)
        return self.path


def read_checkpoint(directory: Path) -> tuple[dict, list[np.ndarray]]:
    """(saved, orders) as `RunWriter.write_checkpoint` stored them."""
    try:
        with np.load(directory / CHECKPOINT, allow_pickle=False) as archive:
            files = set(archive.files)

            def leaves(prefix: str) -> list[np.ndarray]:
                count = sum(1 for name in files if name.startswith(prefix))
                return [archive[f"{prefix}{i}"] for i in range(count)]

            snapshots: list[list[np.ndarray]] = []
            while f"snapshot_{len(snapshots)}_0" in files:
                snapshots.append(leaves(f"snapshot_{len(snapshots)}_"))
            saved = {
                "path": str(archive["path"]),
                "epochs_done": int(archive["epochs_done"]),
                "state": tuple(leaves(f"state_{group}_") for group in range(3)),
                "losses": archive["losses"],
                "corrects": archive["corrects"] if "corrects" in files else None,
                "norms": archive["norms"],
                "snapshots": snapshots,
                "snapshot_steps": archive["snapshot_steps"].tolist(),
                "epoch_seconds": archive["epoch_seconds"].tolist(),
                "history": json.loads(str(archive["history"])),
            }
            return saved, list(archive["orders"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise RunDirError(
            f"{directory} holds no usable checkpoint ({error}); it cannot be resumed: start the run again"
        ) from error


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A finished run: its directory and the numbers in it. Loads the bulky arrays on demand."""

    path: Path
    config: RunConfig
    summary: dict

    @property
    def test_accuracy(self) -> float:
        return self.summary["test_accuracy_after"]

    @contextlib.contextmanager
    def _reading(self, name: str):
        """Turn a missing or damaged file into one line that names it."""
        try:
            yield self.path / name
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise RunDirError(
                f"{self.path / name} is missing or damaged ({type(error).__name__}: {str(error)[:120]}); rerun the experiment"
            ) from error

    def history(self) -> dict[str, list[float]]:
        with self._reading("history.csv") as path, open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
            return {column: [float(row[column]) for row in rows] for column in HISTORY_COLUMNS}

    def steps(self) -> dict[str, np.ndarray]:
        with self._reading("steps.npz") as path, np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def predictions(self) -> dict[str, np.ndarray]:
        """label, predicted (uint8) and confidence (float32) for every test image."""
        with self._reading("predictions.npz") as path, np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def snapshots(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(steps, epochs, name -> (n, *shape) weights) from snapshots.h5."""
        import h5py

        with self._reading("snapshots.h5") as path, h5py.File(path, "r") as h5:
            weights: dict[str, np.ndarray] = {}
            h5["weights"].visititems(
                lambda name, node: weights.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None
            )
            # HDF5 lists groups alphabetically; the model's order is the summary's.
            order = [layer["name"] for layer in self.summary["layers"]]
            return h5["steps"][()], h5["epochs"][()], {name: weights[name] for name in sorted(weights, key=order.index)}

    def _repr_html_(self) -> str:
        import html

        s = self.summary

        def loss(value):
            return "—" if value is None else f"{value:.3f}"

        status = (
            "" if s["status"] == "complete" else f" · <b>{html.escape(s['status'])}</b> at step {s['diverged']['step']}"
        )
        return (
            f"<b>weightlab run</b> <code>{html.escape(str(self.path))}</code>{status}<br>"
            f"{html.escape(s['dataset'])} · {html.escape(s['backend'])} · hidden {s['config']['hidden']} · seed {s['config']['seed']}<br>"
            f"test accuracy {s['test_accuracy_before']:.4f} → <b>{s['test_accuracy_after']:.4f}</b>, "
            f"loss {loss(s['test_loss_before'])} → {loss(s['test_loss_after'])}, {s['steps']} steps in {s['train_seconds']:.1f} s"
        )


def read_run(path: str | os.PathLike) -> Run:
    """The run stored at ``path``, or RunDirError saying why it is not one."""
    path = Path(path)
    summary_file = path / "summary.json"
    if not path.is_dir() or not summary_file.is_file():
        raise RunDirError(
            f"{path} is not a weightlab run directory (no summary.json); pass a directory made by `weightlab run`"
        )
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RunDirError(f"{summary_file} is unreadable ({error}); the run is damaged: rerun it") from error
    version = summary.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise RunDirError(
            f"{path} was written by a newer weightlab (format {version} > {FORMAT_VERSION}); upgrade weightlab to read it"
        )
    return Run(path=path, config=RunConfig.from_dict(summary["config"]), summary=summary)
