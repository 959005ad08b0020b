"""A stored run, read back: `read_run` and the `Run` it returns."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from weightlab.config import RunConfig, hidden_text
from weightlab.errors import RunDirError
from weightlab.store.format import FORMAT_VERSION, HISTORY_COLUMNS


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

    def snapshot_store(self):
        """snapshots.h5 open for reading as a `Snapshots` store (read one snapshot, block or slab at a time); close it after."""
        from weightlab.store.snapshots import SnapshotFile

        with self._reading("snapshots.h5") as path:
            return SnapshotFile.reading(path, [layer["name"] for layer in self.summary["layers"]])

    def snapshot_evaluations(self) -> dict[str, np.ndarray]:
        """What snapshots.h5 holds besides the weights, where present: ``test_loss`` and ``test_accuracy`` (n,)
        and the panel's ``indices``, ``labels``, ``inputs`` and ``probabilities`` (n, P, classes) under ``panel/...``.
        Runs written before these existed give an empty dict."""
        import h5py

        with self._reading("snapshots.h5") as path, h5py.File(path, "r") as h5:
            found = {name: h5[name][()] for name in ("test_loss", "test_accuracy") if name in h5}
            if "panel" in h5:
                found.update({f"panel/{name}": node[()] for name, node in h5["panel"].items()})
            return found

    def landscape(self) -> dict[str, np.ndarray] | None:
        """landscape.npz (the snapshots' path on the top two principal directions, the loss around it), if written."""
        return read_landscape(self.path)

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
            f"{html.escape(s['dataset'])} · {html.escape(s['backend'])} · {html.escape(s.get('model', 'mlp'))} · "
            f"hidden {hidden_text(s['config']['hidden'])} · seed {s['config']['seed']}<br>"
            f"test accuracy {s['test_accuracy_before']:.4f} → <b>{s['test_accuracy_after']:.4f}</b>, "
            f"loss {loss(s['test_loss_before'])} → {loss(s['test_loss_after'])}, {s['steps']} steps in {s['train_seconds']:.1f} s"
        )


def read_landscape(directory: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays of a run's, proof's or comparison's landscape.npz, None if it has none; RunDirError if it is damaged."""
    path = Path(directory) / "landscape.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise RunDirError(
            f"{path} is damaged ({type(error).__name__}: {str(error)[:120]}); rerun the experiment"
        ) from error


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
