"""`WeightTracker.save`: a user's own ``model.fit``, recorded by a tracker, stored as an ordinary run.

The model, its data and its training are the user's; weightlab adds what a run adds — the
test set scored before and after, the change metrics, the files — through the same code as
`weightlab run`, so `weightlab report`, `read_run` and every reader take it as any other run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightlab.config import EXTERNAL, OPTIMIZERS, RunConfig
from weightlab.errors import ConfigError
from weightlab.store import Run, RunWriter

TRAINING_PATH = "model.fit"


def save(tracker, path, model, test_data, train_data=None, report: bool = True) -> Run:
    """See `WeightTracker.save`."""
    import keras

    from weightlab.data import Dataset
    from weightlab.experiments.finish import finish
    from weightlab.train.keras_fit import FitResult

    tracked = tracker.result()
    if not tracked.variable_names or not len(tracked.loss):
        raise ConfigError("the tracker has recorded no training: pass it to model.fit(..., callbacks=[tracker]) first")
    x_test, y_test = (np.asarray(a) for a in test_data)
    x_train, y_train = (
        (np.asarray(a) for a in train_data)
        if train_data is not None
        else (np.zeros((0, *x_test.shape[1:]), x_test.dtype), np.zeros(0, np.int64))
    )
    if len(x_test) != len(y_test) or y_test.ndim != 1 or y_test.dtype.kind not in "ui":
        raise ConfigError(
            f"test_data must be (inputs, integer labels) of one length; got {x_test.shape} and {y_test.shape} {y_test.dtype}"
        )
    from weightlab.models.outputs import cannot_score_labels

    unscored = cannot_score_labels(model, int(max(y_test.max(initial=0), y_train.max(initial=0))) + 1)
    if unscored:
        raise ConfigError(f"the model: {unscored}")
    dataset = Dataset(EXTERNAL, x_train, y_train, x_test, y_test, source=TRAINING_PATH, seconds=0.0, verified=False)
    optimizer = type(model.optimizer).__name__.lower()
    config = RunConfig(
        dataset=EXTERNAL,
        model=EXTERNAL,
        epochs=max(1, len(tracker.epoch_seconds)),
        batch_size=tracker.batch_size or 32,  # Keras's default, unless the tracker was told
        validation_split=0.0,
        snapshot_every=tracker.snapshot_every,
        step_stats=tracker.step_stats,
        backend=keras.backend.backend(),
        optimizer=optimizer if optimizer in OPTIMIZERS else RunConfig.optimizer,
        learning_rate=_learning_rate(model.optimizer),
    )
    fitted = FitResult(
        history=tracker.history,
        epoch_seconds=list(tracker.epoch_seconds),
        train_seconds=float(sum(tracker.epoch_seconds)),
        steps=len(tracked.loss),
        tracked=tracked,
        path=TRAINING_PATH,
        diverged=tracker.diverged,
    )
    path = Path(path)
    with RunWriter(path.parent, path.name) as writer:
        return finish(
            keras,
            writer,
            config,
            dataset,
            model,
            fitted,
            report,
            "your own model.fit, recorded by a WeightTracker",
            x_test=x_test.astype(np.float32, copy=False),
            x_train=x_train.astype(np.float32, copy=False),
        )


def _learning_rate(optimizer) -> float:
    try:
        rate = float(optimizer.learning_rate)
    except TypeError:  # a schedule: the config keeps the tutorial's; summary.json's "compile" says what it was
        return RunConfig.learning_rate
    return rate if rate > 0 else RunConfig.learning_rate
