"""The schema of every file weightlab reads back (see `schema` for the mechanism, the README for the keys).

Keys that newer writers add are `Opt`: absent, the feature they feed is absent. Dimensions
named in shapes ("steps", "variables", "snapshots", "test", "history_epochs") tie the files of
one run together.
"""

from __future__ import annotations

import dataclasses

from weightlab.config import RunConfig
from weightlab.errors import ConfigError
from weightlab.store.schema import (
    FRACTION,
    INT,
    REAL,
    REAL_OR_NULL,
    Array,
    Flag,
    ListOf,
    MapOf,
    Num,
    Opt,
    Record,
    SchemaError,
    Text,
)

# The most bytes a JSON file of weightlab's may hold (a proof's per-pixel maps are the largest, ≈1 MB).
JSON_LIMIT = 256 << 20
STATUSES = ("complete", "diverged")
NONNEGATIVE = Num(low=0.0)
NONNEGATIVE_OR_NULL = Num(low=0.0, null=True)


@dataclasses.dataclass(frozen=True)
class Config:
    """A RunConfig's dict: valid exactly when `RunConfig.from_dict` accepts it (the one validation).

    Returned complete: a field the file lacks (written before the field existed) has its default.
    """

    def check(self, value, at: str, dims):
        try:
            return RunConfig.from_dict(value).to_dict()
        except (ConfigError, TypeError, ValueError) as error:
            raise SchemaError(f"{at} is not a usable config ({str(error)[:140]})") from error


CONFIG = Config()


@dataclasses.dataclass(frozen=True)
class NumberGrid:
    """A rectangular list (of lists) of numbers, None for a missing one: a map over an image's pixels, or a row."""

    null: bool = False

    def check(self, value, at: str, dims):
        if value is None and self.null:
            return None
        if not isinstance(value, list) or not value:
            raise SchemaError(f"{at} is not a non-empty list of numbers")
        rows = value if all(isinstance(row, list) for row in value) else [value]
        width = len(rows[0])
        for index, row in enumerate(rows):  # one or two dimensions, rectangular, numbers or null
            if not isinstance(row, list) or len(row) != width:
                raise SchemaError(f"{at} is not a rectangular grid of numbers (row {index})")
            for column, item in enumerate(row):
                REAL_OR_NULL.check(item, f"{at}[{index}][{column}]", dims)
        return value


VERSIONED = {"format_version": INT}  # every file weightlab writes says which format it is

# -- a run --------------------------------------------------------------------------------------

LAYER = Record(
    {
        "name": Text(),
        "shape": ListOf(INT),
        "size": INT,
        "l2_init": NONNEGATIVE,
        "l2_final": NONNEGATIVE,
        "l2_distance": NONNEGATIVE,
        "relative_change": NONNEGATIVE_OR_NULL,
        "cosine_to_init": Num(low=-1.0 - 1e-6, high=1.0 + 1e-6, null=True),
        "frac_sign_flipped": FRACTION,
        "frac_unchanged": FRACTION,
    }
)
PIXEL = ListOf(INT, least=1)
FROZEN_INPUTS = Record(
    {
        "images": INT,
        "inputs": INT,
        "units": INT,
        "kernel_size": Num(integer=True, low=1),
        "never_active_inputs": INT,
        "never_active_pixels": ListOf(PIXEL),
        "weights_of_never_active_inputs": INT,
        "never_active_rows_unchanged": Flag(),
        "unchanged_weights": INT,
        "unchanged_elsewhere": INT,
        "median_activity_of_other_unchanged": NONNEGATIVE_OR_NULL,
        "busiest_pixel": PIXEL,
        "busiest_pixel_index": INT,
        "busiest_pixel_activity": INT,
        "busiest_row_unchanged": INT,
    },
    null=True,  # no Dense layer on raw inputs: see frozen_inputs_note
)  # (null once models without a Dense layer on raw inputs write it: see frozen_inputs_note)
SAMPLE = Record({"variable": Text(), "before": ListOf(REAL), "after": ListOf(REAL)})
SUMMARY = Record(
    {
        **VERSIONED,
        "status": Text(STATUSES),
        "diverged": Record({"step": INT, "epoch": INT, "kept_steps": INT}, null=True),
        "run_id": Text(),
        "backend": Text(),
        "training_path": Text(),
        "dataset": Text(),
        "dataset_source": Text(),
        "data_seconds": NONNEGATIVE,
        "config": CONFIG,
        "parameters": INT,
        "samples": Record({"train": INT, "validation": INT, "test": Num(integer=True, low=1, dim="test")}),
        "test_accuracy_before": FRACTION,
        "test_loss_before": NONNEGATIVE_OR_NULL,
        "test_accuracy_after": FRACTION,
        "test_loss_after": NONNEGATIVE_OR_NULL,
        "train_seconds": NONNEGATIVE,
        "steps": Num(integer=True, low=1, dim="steps"),
        "history": MapOf(ListOf(REAL_OR_NULL, length="history_epochs")),
        "layers": ListOf(LAYER, length="variables", least=1),
        "frozen_inputs": FROZEN_INPUTS,
        "weight_samples": ListOf(SAMPLE),
        "moved_sample": Opt(
            Record({"variable": Text(), "row": INT, "before": ListOf(REAL), "after": ListOf(REAL)}, null=True)
        ),
        # Added by this session's writers; absent in older runs.
        "model": Opt(Text()),
        "input_shape": Opt(ListOf(Num(integer=True, low=1), least=1)),
        "image_shape": Opt(ListOf(Num(integer=True, low=1), null=True)),
        "classes": Opt(Num(integer=True, low=2)),
        "frozen_inputs_note": Opt(Text(null=True)),
    }
)
CONFIG_FILE = Record(
    {
        **VERSIONED,
        "config": CONFIG,
        "dataset_source": Opt(Text()),
        "versions": Opt(MapOf(Text())),
        "model_sha256": Opt(Text(null=True)),
        "dataset_sha256": Opt(Text(null=True)),
    }
)
HISTORY_FILE = {  # history.csv's columns, one row per epoch
    "epoch": Num(integer=True, low=1),
    "loss": REAL_OR_NULL,
    "accuracy": REAL_OR_NULL,
    "val_loss": REAL_OR_NULL,
    "val_accuracy": REAL_OR_NULL,
    "seconds": NONNEGATIVE,
}
STEPS_FILE = {
    "step": Array("iu", ("steps",)),
    "epoch": Array("iu", ("steps",)),
    "loss": Array("f", ("steps",)),
    "variables": Array("U", ("variables",)),
    "distance_from_init": Array("f", ("steps", "variables")),
    "update_norm": Array("f", ("steps", "variables")),
    "weight_norm": Array("f", ("steps", "variables")),
    "update_ratio": Array("f", ("steps", "variables")),
}
PREDICTIONS_FILE = {
    "label": Array("iu", ("test",), low=0),
    "predicted": Array("iu", ("test",), low=0),
    "confidence": Array("f", ("test",), low=0.0, high=1.0 + 1e-6, finite=False),  # NaN from a diverged model
}
# Datasets of snapshots.h5 that are written together: present all, or none.
SNAPSHOT_GROUPS = (
    ("test_loss", "test_accuracy"),
    ("panel/indices", "panel/labels", "panel/inputs", "panel/probabilities"),
)
SNAPSHOTS_FILE = {  # snapshots.h5; /weights/<layer>/<variable> are checked against summary.json's layers
    "steps": Array("iu", ("snapshots",), low=0),
    "epochs": Array("fiu", ("snapshots",), low=0),
    "test_loss": Opt(Array("f", ("snapshots",))),
    "test_accuracy": Opt(Array("f", ("snapshots",))),
    "panel/indices": Opt(Array("iu", ("panel",), low=0)),
    "panel/labels": Opt(Array("iu", ("panel",), low=0)),
    "panel/inputs": Opt(Array("f", None)),
    "panel/probabilities": Opt(Array("f", ("snapshots", "panel", "classes"))),
}
LANDSCAPE_FILE = {
    "explained_variance_ratio": Array("f", (2,), low=0.0, high=1.0 + 1e-6, finite=False),
    "path": Array("f", ("snapshots", 2)),
    "path_loss": Array("f", ("snapshots",)),
    "grid_a": Array("f", ("grid_a",)),
    "grid_b": Array("f", ("grid_b",)),
    "grid_loss": Array("f", ("grid_b", "grid_a")),
    "sample_indices": Array("iu", ("landscape_samples",), low=0),
}

DIGESTS_FILE = Record({**VERSIONED, "sha256": MapOf(Text())})

# -- a checkpoint (an interrupted run's hidden directory) ---------------------------------------

CHECKPOINT_META = Record(
    {
        "path": Text(),
        "epochs_done": Num(integer=True, low=1),
        "snapshot_steps": ListOf(INT),
        "epoch_seconds": ListOf(NONNEGATIVE, length="epochs_done"),
        "history": ListOf(MapOf(ListOf(REAL_OR_NULL, length="epochs_done")), least=1),
        "config_sha256": Text(),
        "digest": Text(),
    }
)
