"""Names and encodings shared by every file of the run directory."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import secrets
from pathlib import Path, PurePath

import numpy as np

from weightlab.config import RunConfig, hidden_text

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.npz"  # in an unfinished run's hidden directory only
DIGESTS = "digests.json"  # the SHA-256 of every other file, written when the directory is committed
UNDIGESTED = ("report.html", DIGESTS)  # a report is rendered again at will; it is never read back
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
TEMP_PREFIX = ".incomplete-"


def new_run_id(config: RunConfig) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{short_name(config)}-s{config.seed}-{secrets.token_hex(2)}"


def short_name(config: RunConfig) -> str:
    """The dataset and model in a file name: "mnist-h64", "mnist-cnn-h64", "mydata-mymodel" (files by their stem)."""
    dataset = PurePath(config.dataset).stem if config.dataset.endswith(".npz") else config.dataset
    if config.model.endswith(".keras"):
        return f"{dataset}-{PurePath(config.model).stem}"
    model = "" if config.model == "mlp" else f"{config.model}-"
    return f"{dataset}-{model}h{hidden_text(config.hidden)}"


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


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
