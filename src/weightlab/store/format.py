"""Names and encodings shared by every file of the run directory."""

from __future__ import annotations

import datetime
import json
import math
import secrets
from pathlib import PurePath

import numpy as np

from weightlab.config import RunConfig, hidden_text

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.npz"  # in an unfinished run's hidden directory only
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
