"""What a run's finish will need, made ready while the run trains.

Training runs inside XLA, without Python's interpreter lock. Each evaluation after it (the test
set, the snapshots, the loss landscape) first traces its program and compiles or loads it, and
the report first imports its modules and compiles its template: ≈0.1 s each, on the critical
path (measured). A thread does that work meanwhile, from the models' shapes alone, so that the
finish finds the programs ready (`programs.PROGRAMS`). It only prepares: the finish computes
everything itself, and does whatever the thread has not done.

The thread never outlives the run: it stops between steps when the run ends or is interrupted,
and is joined (a process must not exit while a thread is inside XLA).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator

import numpy as np

from weightlab.config import RunConfig

Step = Callable[[], None]


@contextlib.contextmanager
def preparing(progress: Callable | None, steps: list[Step]) -> Iterator[Callable]:
    """A progress hook for the training: its first call starts ``steps`` in a thread, every call goes on to ``progress``.

    The first call comes after the first chunk of steps, once the training program is compiled
    and running: started earlier, the thread's tracing would compete with the training's own.
    On leaving the block the thread is told to stop after its current step, and joined.
    """
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def work() -> None:
        for step in steps:
            if stop.is_set():
                return
            # Preparation only saves time: whatever fails here, the finish does again and reports it there.
            with contextlib.suppress(Exception):
                step()

    def hook(*arguments) -> None:
        if steps and not threads:
            threads.append(threading.Thread(target=work, name="weightlab-ahead", daemon=True))
            threads[0].start()
        if progress is not None:
            progress(*arguments)

    try:
        yield hook
    finally:
        stop.set()
        for thread in threads:
            _join_through_interrupts(thread)


def _join_through_interrupts(thread: threading.Thread) -> None:
    """Wait for ``thread`` even through a second Ctrl-C (then raised once it has ended): a process that exits while
    the thread is inside XLA aborts. The wait is at most the step under way (one program's compilation)."""
    interrupted: BaseException | None = None
    while thread.is_alive():
        try:
            thread.join()
        except BaseException as interruption:
            interrupted = interrupted or interruption
    if interrupted is not None:
        raise interrupted


def finish_steps(models: list, config: RunConfig, dataset, *, landscape: bool, report: bool) -> list[Step]:
    """The preparation of `finish.finish` for these models (one per architecture is enough) trained as ``config`` says."""
    import keras

    if keras.backend.backend() != "jax":
        return []
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
    y_test = np.asarray(dataset.y_test)
    panel = panel_indices(y_test)
    steps: list[Step] = []
    for model in models:
        x_test = to_inputs(dataset.inputs("test"), model_kinds.input_shape(model))
        if not model.non_trainable_variables:  # `keras_fit.predict`'s programs
            steps.append(functools.partial(compile_outputs, model, x_test, y_test.astype(np.int64)))
        steps.append(functools.partial(compile_snapshots, model, count, x_test, y_test, x_test[panel]))
        if landscape and fit_samples:
            x_train = to_inputs(dataset.inputs("train"), model_kinds.input_shape(model))
            labels = training_labels(dataset.y_train, config)
            steps.append(functools.partial(compile_landscape, model, count, x_train, labels, fit_samples, config.seed))
    if report:
        from weightlab.report.html import ready

        steps.append(ready)
    return steps
