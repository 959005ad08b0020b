"""An interrupted run's checkpoint: written with a digest, read back only if it cannot lie.

`RunWriter.write_checkpoint` stores every array of the training state, the generator state the
data orders are drawn from, the SHA-256 of the config it belongs to, and a digest over all of
them. `read_checkpoint` refuses a checkpoint whose digest does not match (altered or damaged) or
whose config is not the directory's (foreign); `check_resumable` then checks it against the model
and data it will continue: epochs done within range, one loss per step done, state shapes equal
to the model's, orders over the right number of samples. A refused checkpoint is never resumed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from weightlab import safeio
from weightlab.store.files import reading
from weightlab.store.format import CHECKPOINT
from weightlab.store.schema import SchemaError
from weightlab.train.orders import EpochOrders

RESTART = "no usable checkpoint, so the run cannot be resumed: start it again"
TRAINING_PATHS = ("fused-jax", "keras.fit")


def config_digest(config: dict) -> str:
    """The SHA-256 of a config, as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """The SHA-256 over every array's name, dtype, shape and bytes, in name order (the digest itself left out)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name == "digest":
            continue
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def snapshot_digest(weights: list[np.ndarray]) -> str:
    """The SHA-256 of one snapshot: every variable's dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_snapshots(directory: Path, saved: dict, store) -> None:
    """Refuse a resume whose hidden snapshots.h5 no longer holds the snapshots the checkpoint recorded."""
    expected = saved.get("snapshot_sha256")
    if expected is None:
        return
    with reading(directory / CHECKPOINT, RESTART):
        if store.count != len(expected):
            raise SchemaError(f"records {len(expected)} snapshots but snapshots.h5 holds {store.count}")
        for index, digest in enumerate(expected):
            if snapshot_digest(store.at(index)) != digest:
                raise SchemaError(
                    f"records snapshot {index} other than snapshots.h5 holds it: the snapshots were altered"
                )


def checkpoint_arrays(
    saved: dict, orders: EpochOrders, config: dict, snapshot_digests: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Everything `write_checkpoint` stores: the state's arrays, the orders' generator state, the config's digest,
    and the digest of each snapshot already in the hidden directory's snapshots.h5."""
    arrays = {
        "path": np.asarray(saved["path"]),  # the training path that wrote it, and must continue it
        "epochs_done": np.asarray(saved["epochs_done"]),
        **orders.state_arrays(),
        "losses": saved["losses"],
        "norms": saved["norms"],
        "snapshot_steps": np.asarray(saved["snapshot_steps"], dtype=np.int64),
        "epoch_seconds": np.asarray(saved["epoch_seconds"], dtype=np.float64),
        "history": np.asarray(json.dumps(saved["history"])),
        "config_sha256": np.asarray(config_digest(config)),
    }
    if snapshot_digests is not None:
        arrays["snapshot_sha256"] = np.asarray(snapshot_digests, dtype=str)
    if saved.get("corrects") is not None:  # per-step correct counts: the fused path's accuracy
        arrays["corrects"] = saved["corrects"]
    for group, leaves in enumerate(saved["state"]):
        for index, leaf in enumerate(leaves):
            arrays[f"state_{group}_{index}"] = np.asarray(leaf)
    for k, snapshot in enumerate(saved.get("snapshots") or []):
        for index, leaf in enumerate(snapshot):
            arrays[f"snapshot_{k}_{index}"] = np.asarray(leaf)
    arrays["digest"] = np.asarray(arrays_digest(arrays))
    return arrays


def read_checkpoint(directory: Path, config: dict) -> tuple[dict, EpochOrders]:
    """(saved, orders) as `RunWriter.write_checkpoint` stored them, for a run of ``config``; RunDirError if it may lie."""
    path = directory / CHECKPOINT
    with reading(path, RESTART):
        if not path.is_file():
            raise SchemaError("is missing: the run stopped before its first epoch ended")
        arrays = safeio.npz_arrays(path)
        if "digest" not in arrays or arrays["digest"].dtype.kind != "U" or arrays["digest"].shape != ():
            raise SchemaError("carries no digest (written by an older weightlab, or altered)")
        if str(arrays["digest"]) != arrays_digest(arrays):
            raise SchemaError("does not match its digest: it was altered or damaged")
        if str(arrays.get("config_sha256", "")) != config_digest(config):
            raise SchemaError("belongs to another config than its directory's config.json")
        return _saved(arrays, config["epochs"])


def _leaves(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix))
    return [arrays[f"{prefix}{i}"] for i in range(count)]


def _saved(arrays: dict[str, np.ndarray], epochs: int) -> tuple[dict, EpochOrders]:
    snapshots: list[list[np.ndarray]] = []  # (older checkpoints held them; now snapshots.h5 does)
    while f"snapshot_{len(snapshots)}_0" in arrays:
        snapshots.append(_leaves(arrays, f"snapshot_{len(snapshots)}_"))
    history = json.loads(str(arrays["history"]))
    saved = {
        "path": str(arrays["path"]),
        "epochs_done": int(arrays["epochs_done"]),
        "state": tuple(_leaves(arrays, f"state_{group}_") for group in range(3)),
        "losses": arrays["losses"],
        "corrects": arrays.get("corrects"),
        "norms": arrays["norms"],
        "snapshot_steps": arrays["snapshot_steps"].tolist(),
        "snapshot_sha256": arrays["snapshot_sha256"].tolist() if "snapshot_sha256" in arrays else None,
        "epoch_seconds": arrays["epoch_seconds"].tolist(),
        "history": history,
    }
    if snapshots:
        saved["snapshots"] = snapshots
    return saved, EpochOrders.from_state_arrays(arrays, epochs)


def check_resumable(
    directory: Path, saved: dict, orders: EpochOrders, model, fit_samples: int, steps_per_epoch: int, epochs: int
):
    """Raise RunDirError unless the checkpoint fits the model and data it is to continue."""
    with reading(directory / CHECKPOINT, RESTART):
        done = saved["epochs_done"]
        if saved["path"] not in TRAINING_PATHS:
            raise SchemaError(f"names the training path {saved['path']!r}, not one of {', '.join(TRAINING_PATHS)}")
        if not 1 <= done <= epochs:
            raise SchemaError(f"says {done} epochs are done, outside 1..{epochs}")
        if orders.samples != fit_samples:
            raise SchemaError(f"orders {orders.samples} samples, not the {fit_samples} this dataset trains on")
        steps = done * steps_per_epoch
        for name in ("losses", "norms", "corrects"):
            array = saved.get(name)
            if array is not None and (array.ndim < 2 or array.shape[:2] != (1, steps)):
                raise SchemaError(f"holds {name} of shape {array.shape}, not one per step of {done} epochs ({steps})")
        if len(saved["epoch_seconds"]) != done or not _history_fits(saved["history"], done):
            raise SchemaError(f"holds a record of another length than its {done} epochs")
        trainable, non_trainable, _ = saved["state"]
        for kind, leaves, variables in (
            ("trainable", trainable, model.trainable_variables),
            ("non-trainable", non_trainable, model.non_trainable_variables),
        ):
            want = [(1, *variable.shape) for variable in variables]
            if [tuple(leaf.shape) for leaf in leaves] != want:
                raise SchemaError(
                    f"holds {kind} state of shapes {[leaf.shape for leaf in leaves][:4]}…, not the model's {want[:4]}…"
                )
        snapshot_steps = saved["snapshot_steps"]
        if snapshot_steps != sorted(set(snapshot_steps)) or any(not 0 <= s <= steps for s in snapshot_steps):
            raise SchemaError(
                f"holds snapshot steps {snapshot_steps[:6]}… that are not increasing steps within 0..{steps}"
            )
        snapshots = saved.get("snapshots") or []
        if snapshots and len(snapshots) != len(snapshot_steps):
            raise SchemaError(f"holds {len(snapshots)} snapshots for {len(snapshot_steps)} snapshot steps")
        for snapshot in snapshots:
            if [tuple(leaf.shape) for leaf in snapshot] != [tuple(leaf.shape) for leaf in trainable]:
                raise SchemaError("holds a snapshot whose shapes are not the model's")


def _history_fits(history, done: int) -> bool:
    return (
        isinstance(history, list)
        and len(history) == 1
        and isinstance(history[0], dict)
        and all(isinstance(values, list) and len(values) == done for values in history[0].values())
    )
