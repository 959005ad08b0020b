"""What a run's finish will need, made ready while the run trains.

Training runs inside XLA, without Python's interpreter lock. Each evaluation after it (the test
set, the snapshots, the loss landscape) first traces its program and compiles or loads it, and
the report first imports its modules and compiles its template: ≈0.1 s each, on the critical
path (measured). A thread does that work meanwhile, from the models' shapes alone, so that the
finish finds the programs ready (`programs.PROGRAMS`). It only prepares: the finish computes
everything itself, and does whatever the thread has not done.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import numpy as np

from weightlab.config import RunConfig


def starting_after_first_epoch(progress: Callable | None, prepare: Callable[[], None]) -> Callable:
    """A progress hook that starts ``prepare`` in a thread at its first call, then passes every call on to ``progress``.

    The first call comes after the first chunk of steps, once the training program is compiled
    and running: started earlier, the thread's tracing would compete with the training's own.
    """
    started = threading.Event()

    def hook(*arguments) -> None:
        if not started.is_set():
            started.set()
            threading.Thread(target=_quietly, args=(prepare,), name="weightlab-ahead", daemon=True).start()
        if progress is not None:
            progress(*arguments)

    return hook


def _quietly(prepare: Callable[[], None]) -> None:
    # Preparation only saves time: whatever fails here, the finish does again in its own thread and reports it there.
    with contextlib.suppress(Exception):
        prepare()


def finish_preparation(
    models: list, config: RunConfig, dataset, *, landscape: bool, report: bool
) -> Callable[[], None]:
    """The preparation of `run._finish` for these models (one per architecture is enough) trained as ``config`` says."""

    def prepare() -> None:
        import keras

        if keras.backend.backend() != "jax":
            return
        from weightlab import models as model_kinds
        from weightlab.analysis.panel import panel_indices
        from weightlab.evaluation.landscape import compile_ahead as compile_landscape
        from weightlab.evaluation.outputs import compile_ahead as compile_outputs
        from weightlab.evaluation.snapshots import compile_ahead as compile_snapshots
        from weightlab.experiments.run import training_labels
        from weightlab.train.keras_fit import steps_per_epoch, to_inputs
        from weightlab.train.schedule import snapshot_schedule

        samples = len(dataset.x_train)
        fit_samples = config.fit_samples(samples)
        count = len(
            snapshot_schedule(steps_per_epoch(samples, config), config.epochs, config.snapshots, config.snapshot_every)
        )
        panel = panel_indices(dataset.y_test)
        for model in models:
            shape = model_kinds.input_shape(model)
            x_test = to_inputs(dataset.inputs("test"), shape)
            if not model.non_trainable_variables:  # `keras_fit.predict`'s programs
                compile_outputs(model, x_test, np.asarray(dataset.y_test).astype(np.int64))
            compile_snapshots(model, count, x_test, np.asarray(dataset.y_test), x_test[panel])
            if landscape and fit_samples:
                x_train = to_inputs(dataset.inputs("train"), shape)
                labels = training_labels(dataset.y_train, config)
                compile_landscape(model, count, x_train, labels, fit_samples, config.seed)
        if report:
            from weightlab.report.html import ready

            ready()

    return prepare
