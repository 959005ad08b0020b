"""Export a run to TensorBoard event files: per-epoch and per-step scalars, weight histograms per snapshot.

Uses TensorFlow's summary writer (TensorFlow is installed with weightlab), so the files are
exactly what TensorBoard reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from weightlab.errors import ConfigError


def export(stored_run, logdir: str | os.PathLike, max_points: int = 1000) -> Path:
    """Write ``stored_run`` as TensorBoard events under ``logdir``; returns the directory written.

    Per-step scalars are written for at most ``max_points`` evenly spaced steps.
    """
    # Every file is read (and checked) before TensorFlow starts: a damaged run fails in one line.
    history, steps = stored_run.history(), stored_run.steps()
    snapshot_steps, _, weights = stored_run.snapshots()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorboard  # noqa: F401  (TensorFlow's summary ops are implemented there)
    except ImportError as error:
        raise ConfigError(
            "exporting for TensorBoard needs the tensorboard package: pip install 'weightlab[tensorboard]'"
        ) from error
    import tensorflow as tf

    logdir = Path(logdir)
    steps_per_epoch = max(1, stored_run.summary["steps"] // max(1, stored_run.config.epochs))
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for index, epoch in enumerate(history["epoch"]):
            step = int(epoch) * steps_per_epoch
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if key in history:
                    tf.summary.scalar(f"epoch/{key}", history[key][index], step=step)
        # Every step's scalars would be 9 eager summary ops × 8,440 steps (≈20 s); TensorBoard
        # shows at most 1,000 points per tag anyway, so every k-th step is written.
        stride = max(1, len(steps["step"]) // max_points)
        for index in range(0, len(steps["step"]), stride):
            tf.summary.scalar("step/loss", float(steps["loss"][index]), step=int(steps["step"][index]))
        # The norms exist at the steps where they were taken (--step-stats-every), likewise thinned.
        measured = np.flatnonzero(np.isfinite(steps["distance_from_init"]).all(axis=1))
        for index in measured[:: max(1, len(measured) // max_points)]:
            step = steps["step"][index]
            for column, name in enumerate(steps["variables"]):
                tf.summary.scalar(
                    f"distance_from_init/{name}", float(steps["distance_from_init"][index, column]), step=int(step)
                )
                tf.summary.scalar(f"update_ratio/{name}", float(steps["update_ratio"][index, column]), step=int(step))
        for index, step in enumerate(snapshot_steps):
            for name, stack in weights.items():
                tf.summary.histogram(f"weights/{name}", stack[index], step=int(step))
        summary = stored_run.summary
        tf.summary.scalar("test/accuracy", summary["test_accuracy_before"], step=0)
        tf.summary.scalar("test/accuracy", summary["test_accuracy_after"], step=int(summary["steps"]))
    writer.flush()
    writer.close()
    return logdir
