"""Reading back an interrupted run's checkpoint (written by `RunWriter.write_checkpoint`)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from weightlab.errors import RunDirError
from weightlab.store.format import CHECKPOINT


def read_checkpoint(directory: Path) -> tuple[dict, list[np.ndarray]]:
    """(saved, orders) as `RunWriter.write_checkpoint` stored them."""
    try:
        with np.load(directory / CHECKPOINT, allow_pickle=False) as archive:
            files = set(archive.files)

            def leaves(prefix: str) -> list[np.ndarray]:
                count = sum(1 for name in files if name.startswith(prefix))
                return [archive[f"{prefix}{i}"] for i in range(count)]

            saved = {
                "path": str(archive["path"]),
                "epochs_done": int(archive["epochs_done"]),
                "state": tuple(leaves(f"state_{group}_") for group in range(3)),
                "losses": archive["losses"],
                "corrects": archive["corrects"] if "corrects" in files else None,
                "norms": archive["norms"],
                "snapshot_steps": archive["snapshot_steps"].tolist(),
                "epoch_seconds": archive["epoch_seconds"].tolist(),
                "history": json.loads(str(archive["history"])),
            }
            return saved, list(archive["orders"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise RunDirError(
            f"{directory} holds no usable checkpoint ({error}); it cannot be resumed: start the run again"
        ) from error
