"""A stored run, read back: `read_run` and the `Run` it returns."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from weightlab.config import RunConfig, hidden_text
from weightlab.errors import RunDirError
from weightlab.store import schemas
from weightlab.store.files import read_csv, read_h5, read_json, read_npz, reading
from weightlab.store.format import DIGESTS, FORMAT_VERSION
from weightlab.store.schema import Dims, Record, SchemaError


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A finished run: its directory and the numbers in it. Loads the bulky arrays on demand.

    ``summary`` has been checked against its schema; every other file is checked, as a whole and
    against ``summary`` (lengths, names, shapes, headline numbers), when it is read.
    """

    path: Path
    config: RunConfig
    summary: dict
    digests: dict = dataclasses.field(default_factory=dict)  # file name -> SHA-256, from digests.json

    @property
    def test_accuracy(self) -> float:
        return self.summary["test_accuracy_after"]

    def _dims(self) -> Dims:
        """The summary's dimensions (steps, variables, test samples, epochs): every other file must agree."""
        dims = Dims()
        schemas.SUMMARY.check(self.summary, "", dims)
        return Dims({name: (value, f"{self.path / 'summary.json'} ({where})") for name, (value, where) in dims.items()})

    def config_file(self) -> dict:
        """config.json: the config, the dataset's source, the versions that made the numbers."""
        path = self.path / "config.json"
        content = read_json(path, schemas.CONFIG_FILE, digests=self.digests)
        with reading(path):
            if content["config"] != self.summary["config"]:
                raise SchemaError("holds another config than summary.json: it is another run's")
        return content

    def history(self) -> dict[str, list[float]]:
        """history.csv's columns; its rows must be the summary's history."""
        path = self.path / "history.csv"
        history = read_csv(path, schemas.HISTORY_FILE, self._dims(), digests=self.digests)
        with reading(path):
            for key, values in self.summary["history"].items():
                if key in history and not _same(history[key], values):
                    raise SchemaError(f"column {key} differs from summary.json's history: it is another run's")
        return history

    def steps(self) -> dict[str, np.ndarray]:
        path = self.path / "steps.npz"
        steps = read_npz(path, schemas.STEPS_FILE, self._dims(), digests=self.digests)
        with reading(path):
            if steps["variables"].tolist() != self._names():
                raise SchemaError(f"names variables {steps['variables'].tolist()}, not summary.json's {self._names()}")
            # The last step's norms are the final weights' (where step statistics were kept).
            for column, layer in enumerate(self.summary["layers"]):
                for key, metric in (("distance_from_init", "l2_distance"), ("weight_norm", "l2_final")):
                    value = float(steps[key][-1, column])
                    if math.isfinite(value) and not math.isclose(value, layer[metric], rel_tol=1e-3, abs_tol=1e-5):
                        raise SchemaError(
                            f"ends with {key} {value:.6g} for {layer['name']}, not summary.json's {metric} {layer[metric]:.6g}: "
                            "it is another run's"
                        )
        return steps

    def predictions(self) -> dict[str, np.ndarray]:
        """label, predicted (uint8) and confidence (float32) for every test image."""
        path = self.path / "predictions.npz"
        predictions = read_npz(path, schemas.PREDICTIONS_FILE, self._dims(), digests=self.digests)
        with reading(path):
            accuracy = float(np.mean(predictions["label"] == predictions["predicted"]))
            if not math.isclose(accuracy, self.summary["test_accuracy_after"], abs_tol=1e-9):
                raise SchemaError(
                    f"scores {accuracy:.6f}, not summary.json's test accuracy {self.summary['test_accuracy_after']:.6f}"
                )
        return predictions

    def snapshots(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(steps, epochs, name -> (n, *shape) weights) from snapshots.h5, in the model's order."""
        path = self.path / "snapshots.h5"
        named, weights = self._checked_snapshot_file(path, load=True)
        order = self._names()
        with reading(path):
            for layer in self.summary["layers"]:
                stack = weights[layer["name"]]
                for index, key in ((0, "l2_init"), (-1, "l2_final")):
                    norm = float(np.linalg.norm(stack[index].astype(np.float64)))
                    if not math.isclose(norm, layer[key], rel_tol=1e-4, abs_tol=1e-5):
                        raise SchemaError(
                            f"{layer['name']} has norm {norm:.6g}, not summary.json's {key} {layer[key]:.6g}"
                        )
        # HDF5 lists groups alphabetically; the model's order is the summary's.
        return named["steps"], named["epochs"], {name: weights[name] for name in order}

    def _checked_snapshot_file(self, path: Path, load: bool):
        """(named datasets, weights or their shapes) of snapshots.h5, checked against the summary."""
        named, weights = self._snapshot_file(path, load)
        with reading(path):
            steps = named["steps"]
            if len(steps) < 2 or np.any(np.diff(steps) <= 0) or steps[-1] > self.summary["steps"]:
                raise SchemaError(
                    f"holds snapshot steps {steps.tolist()[:6]}…: not ≥ 2 increasing steps within the run"
                )
            if sorted(weights) != sorted(self._names()):
                raise SchemaError(f"holds the variables {sorted(weights)}, not summary.json's {self._names()}")
            for group in schemas.SNAPSHOT_GROUPS:
                present = [name for name in group if name in named]
                if present and len(present) != len(group):
                    raise SchemaError(
                        f"holds {', '.join(present)} without {', '.join(sorted(set(group) - set(present)))}"
                    )
        return named, weights

    def _snapshot_file(self, path: Path, load: bool = True):
        dims = self._dims()
        shapes = {layer["name"]: tuple(layer["shape"]) for layer in self.summary["layers"]}

        def check_weights(name: str, shape: tuple[int, ...], dtype) -> None:
            if name not in shapes:
                raise SchemaError(f"weights/{name} is not a variable of summary.json's layers")
            if dtype.kind != "f" or tuple(shape[1:]) != shapes[name]:
                raise SchemaError(f"weights/{name} is {dtype} {tuple(shape)}, not float (n, {shapes[name]})")
            dims.bind("snapshots", shape[0], f"weights/{name}")

        return read_h5(
            path, schemas.SNAPSHOTS_FILE, "weights", check_weights, dims, digests=self.digests, load_tree=load
        )

    def landscape(self) -> dict[str, np.ndarray] | None:
        """landscape.npz (the PCA path and the loss surface), or None for a run that has none."""
        path = self.path / "landscape.npz"
        if not path.is_file():
            return None
        dims = self._dims()
        with reading(self.path / "snapshots.h5"):
            import h5py

            with h5py.File(self.path / "snapshots.h5", "r") as h5:
                dims.bind("snapshots", len(h5["steps"]), "snapshots.h5")
        return read_npz(path, schemas.LANDSCAPE_FILE, dims, digests=self.digests)

    def _names(self) -> list[str]:
        return [layer["name"] for layer in self.summary["layers"]]

    def snapshot_store(self):
        """snapshots.h5 open for reading as a `Snapshots` store (read one snapshot, block or slab at a time); close it after."""
        from weightlab.store.snapshots import SnapshotFile

        path = self.path / "snapshots.h5"
        self._checked_snapshot_file(path, load=False)  # shapes and steps checked; the weights stay on disk
        with reading(path):
            return SnapshotFile.reading(path, self._names())

    def snapshot_evaluations(self) -> dict[str, np.ndarray]:
        """What snapshots.h5 holds besides the weights, where present: ``test_loss`` and ``test_accuracy`` (n,)
        and the panel's ``indices``, ``labels``, ``inputs`` and ``probabilities`` (n, P, classes) under ``panel/...``.
        Runs written before these existed give an empty dict. Checked against the snapshots and the summary."""
        named, _ = self._checked_snapshot_file(self.path / "snapshots.h5", load=False)
        return {name: value for name, value in named.items() if name not in ("steps", "epochs")}

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


def _same(a: list, b: list) -> bool:
    """Two lists of numbers (None for NaN) equal to float rounding."""
    return len(a) == len(b) and all(
        (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12))
        for x, y in zip(a, b)
    )


def read_run(path: str | os.PathLike) -> Run:
    """The run stored at ``path``, its summary checked against the schema, or RunDirError saying why it is not one."""
    path = Path(path)
    summary_file = path / "summary.json"
    if not path.is_dir() or not summary_file.is_file():
        raise RunDirError(
            f"{path} is not a weightlab run directory (no summary.json); pass a directory made by `weightlab run`"
        )
    digests = read_digests(path)
    check_version(read_json(summary_file, Record(schemas.VERSIONED)), path)
    summary = read_json(summary_file, schemas.SUMMARY, digests=digests)
    with reading(summary_file):
        if (summary["status"] == "diverged") != (summary["diverged"] is not None):
            raise SchemaError(f"says status {summary['status']!r} with diverged {summary['diverged']!r}")
    return Run(path=path, config=RunConfig.from_dict(summary["config"]), summary=summary, digests=digests)


def read_digests(directory: Path) -> dict[str, str]:
    """digests.json's file name -> SHA-256 (empty for a directory written before weightlab recorded them)."""
    path = directory / DIGESTS
    return read_json(path, schemas.DIGESTS_FILE)["sha256"] if path.is_file() else {}


def check_version(content: dict, path: Path) -> None:
    """Refuse a directory written by a newer weightlab (its files may mean other things)."""
    version = content.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise RunDirError(
            f"{path} was written by a newer weightlab (format {version} > {FORMAT_VERSION}); upgrade weightlab to read it"
        )


def read_config(directory: str | os.PathLike) -> RunConfig:
    """The config in a run's (or an interrupted run's) config.json, checked."""
    return RunConfig.from_dict(read_config_file(directory)["config"])


def read_config_file(directory: str | os.PathLike) -> dict:
    """A run's (or an interrupted run's) config.json, checked: its config, and the SHA-256 of the user's files."""
    return read_json(Path(directory) / "config.json", schemas.CONFIG_FILE)
