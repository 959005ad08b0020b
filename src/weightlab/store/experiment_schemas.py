"""The schema of the files `prove`, `compare` and `sweep` write and read back (proof.json, its
landscape, comparison.json, sweep.json) and of a sweep's grid file; a run directory's own files
are in `schemas` (see `schema` for the mechanism, the README for the keys).
"""

from __future__ import annotations

from weightlab.store.schema import (
    INT,
    REAL,
    REAL_OR_NULL,
    Anything,
    Array,
    Flag,
    ListOf,
    MapOf,
    Num,
    Opt,
    Record,
    Text,
)
from weightlab.store.schemas import CONFIG, VERSIONED, NumberGrid

# -- proof, comparison, sweep --------------------------------------------------------------------

STATS = Record(
    {
        "n": INT,
        "mean": REAL_OR_NULL,
        "std": REAL_OR_NULL,
        "ci_low": REAL_OR_NULL,
        "ci_high": REAL_OR_NULL,
        "values": ListOf(REAL_OR_NULL),
    }
)
TEST = Record({"t": REAL_OR_NULL, "df": REAL_OR_NULL, "p": REAL_OR_NULL, "hedges_g": REAL_OR_NULL})
CONTROL = Record(
    {
        "test_accuracy": STATS,
        "test_loss": STATS,
        "accuracy_vs_trained": TEST,
        "loss_vs_trained": Opt(TEST),
        "distance": Opt(STATS),
    }
)
PROOF_FILE = Record(
    {
        **VERSIONED,
        "config": CONFIG,
        "seeds": ListOf(INT, length="seeds", least=1),
        "runs": ListOf(Record({"trained": Text(), "shuffled_labels": Text()}), length="seeds"),
        "trained": Record(
            {
                key: STATS
                for key in (
                    "test_accuracy_before",
                    "test_loss_before",
                    "test_accuracy_after",
                    "test_loss_after",
                    "distance",
                )
            }
        ),
        "controls": MapOf(CONTROL, keys=("initial_weights", "shuffled_labels", "random_step")),
        "line": Record(
            {
                "alphas": ListOf(REAL, length="alphas", least=2),
                "test_loss": ListOf(ListOf(REAL_OR_NULL, length="alphas"), length="seeds"),
                "test_accuracy": ListOf(ListOf(REAL_OR_NULL, length="alphas"), length="seeds"),
                "test_loss_mean": ListOf(REAL_OR_NULL, length="alphas"),
                "test_accuracy_mean": ListOf(REAL_OR_NULL, length="alphas"),
                "rises_before_1": ListOf(REAL),
            }
        ),
        "where": Record(
            {
                "pixel_change": NumberGrid(null=True),  # null without a Dense first layer
                "pixel_activity": NumberGrid(null=True),
                "change_activity_rank_correlation": REAL_OR_NULL,
                "never_active_inputs": Num(integer=True, low=0, null=True),
                "note": Opt(Text(null=True)),
            }
        ),
        "verdict": Record({"holds": Flag(), "sentences": ListOf(Text())}),
        "landscape": Opt(
            Record(
                {
                    "file": Text(),
                    "seed": INT,
                    "runs": Record({"trained": Text(), "shuffled_labels": Text()}),
                    "explained_variance_ratio": ListOf(REAL, length=2),
                },
                null=True,
            )
        ),
    }
)
PROOF_LANDSCAPE_FILE = {  # the first seed's trained and shuffled-labels paths in one plane
    "explained_variance_ratio": Array("f", (2,), low=0.0, high=1.0 + 1e-6, finite=False),
    "path_trained": Array("f", ("trained_snapshots", 2)),
    "path_shuffled_labels": Array("f", ("shuffled_snapshots", 2)),
    "path_loss_trained": Array("f", ("trained_snapshots",)),
    "path_loss_shuffled_labels": Array("f", ("shuffled_snapshots",)),
    "steps_trained": Array("iu", ("trained_snapshots",), low=0),
    "steps_shuffled_labels": Array("iu", ("shuffled_snapshots",), low=0),
    "grid_a": Array("f", ("grid_a",)),
    "grid_b": Array("f", ("grid_b",)),
    "grid_loss": Array("f", ("grid_b", "grid_a")),
    "sample_indices": Array("iu", ("landscape_samples",), low=0),
}
VARIANT = Record(
    {
        "value": Anything(),
        "parameters": INT,
        "runs": ListOf(Text(), length="seeds"),
        "test_accuracy_after": STATS,
        "test_loss_after": STATS,
        "train_seconds": STATS,
        "layers": MapOf(MapOf(STATS), least=1),
        "history_mean": MapOf(ListOf(REAL_OR_NULL)),
    }
)
COMPARISON_FILE = Record(
    {
        **VERSIONED,
        "axis": Text(),
        "values": ListOf(Anything(), length="variants", least=2),
        "seeds": ListOf(INT, length="seeds", least=1),
        "config": CONFIG,
        "variants": ListOf(VARIANT, length="variants"),
        "differences": ListOf(
            Record({"a": Anything(), "b": Anything(), "test_accuracy_after": Record({"mean": REAL_OR_NULL})})
        ),
        "statements": ListOf(Text()),
        "replay": Opt(
            Record({"aligned_by": Text(("step", "epoch")), "snapshot_steps": ListOf(INT, null=True)}, null=True)
        ),
    }
)
CELL_STATUSES = ("complete", "failed", "pending")
SWEEP_FILE = Record(
    {
        **VERSIONED,
        "config": CONFIG,
        "grid": MapOf(ListOf(Anything(), least=1), least=1),
        "seeds": Num(integer=True, low=1),
        "cells": ListOf(
            Record(
                {
                    "cell": Text(),
                    "point": MapOf(Anything()),
                    "seed": INT,
                    "status": Text(CELL_STATUSES),
                    "error": Opt(Text(null=True)),
                }
            )
        ),
        "points": ListOf(
            Record(
                {
                    "point": MapOf(Anything()),
                    "finished": INT,
                    "of": INT,
                    "test_accuracy_after": Opt(STATS),
                    "test_loss_after": Opt(STATS),
                    "train_seconds": Opt(STATS),
                }
            ),
            least=1,
        ),
        "counts": Record({state: INT for state in CELL_STATUSES}),
    }
)

# -- a sweep's grid file (TOML) -----------------------------------------------------------------

SCALAR = Anything()
GRID_FILE = Record(
    {
        "seeds": Opt(Num(integer=True, low=1)),
        "config": Opt(MapOf(SCALAR)),
        "grid": Opt(MapOf(SCALAR)),  # a list of values, or one value
    }
)
