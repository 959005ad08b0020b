"""What a run's finish will need, made ready while the run trains.

Training runs inside XLA, without Python's interpreter lock. Each evaluation after it (the test
set, the snapshots, the loss landscape) first traces its program and compiles or loads it, and
the report first imports its modules and compiles its template: ≈0.1 s each, on the critical
path (measured). A thread does that work meanwhile, from the models' shapes alone, so that the
finish finds the programs ready (`programs.PROGRAMS`). Then it scores the snapshots already taken
on the test set (`EarlyScores`: most of a run's snapshots come in its first epoch), block by
block, so that the finish scores only the last few. Everything else the finish computes itself,
and it does whatever the thread has not done.

The thread never outlives the run: it stops between steps when the run ends or is interrupted,
and is joined (a process must not exit while a thread is inside XLA).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from weightlab.config import RunConfig

Step = Callable[[], None]


@contextlib.contextmanager
def preparing(progress: Callable | None, steps: list[Step], early: EarlyScores | None = None) -> Iterator[Callable]:
    """A progress hook for the training: its first call starts ``steps`` in a thread, every call goes on to ``progress``.

    The first call comes after the first chunk of steps, once the training program is compiled
    and running: started earlier, the thread's tracing would compete with the training's own.
    With ``early``, every call also hands it the snapshots taken so far, and the thread scores
    them after its steps. On leaving the block the scoring is closed, the thread told to stop
    after its current step, and joined.
    """
    stop = threading.Event()
    threads: list[threading.Thread] = []
    steps = steps + [early.work] if early is not None and steps else steps

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
        if early is not None:
            early.taken()
        if progress is not None:
            progress(*arguments)

    try:
        yield hook
    finally:
        stop.set()
        if early is not None:
            early.close()  # its `work` ends after the block under way, which the join waits for
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
    from weightlab.train.keras_fit import to_inputs

    fit_samples = config.fit_samples(len(dataset.x_train))
    count = snapshot_count(config, dataset)
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


def snapshot_count(config: RunConfig, dataset) -> int:
    """How many snapshots a run of ``config`` on ``dataset`` takes (if it does not diverge)."""
    from weightlab.train.keras_fit import steps_per_epoch
    from weightlab.train.schedule import snapshot_schedule

    per_epoch = steps_per_epoch(len(dataset.x_train), config)
    return len(snapshot_schedule(per_epoch, config.epochs, config.snapshots, config.snapshot_every))


def early_scores(models: Sequence, stores: Sequence, config: RunConfig, dataset, x_test, x_test_device) -> EarlyScores:
    """`EarlyScores` for these runs' models and snapshot stores, on the test set (``x_test`` as the models take it)."""
    from weightlab.analysis.panel import panel_indices

    y_test = np.asarray(dataset.y_test)
    return EarlyScores(
        models, stores, x_test_device, y_test, x_test[panel_indices(y_test)], snapshot_count(config, dataset)
    )


class EarlyScores:
    """Runs' snapshots scored on the test set in the preparation thread, block by block, while the runs still train.

    After each chunk of training, `taken` (in the main thread, from the progress hook) notes how
    many snapshots each run's store holds; `work` (the thread's last step) reads and scores each
    complete block as it becomes available, one block at a time (so memory holds one block, however
    many snapshots wait), in order. When training ends, `close` lets the block under way finish and
    starts no other, and `of` gives a run's scores so far, for its first snapshots: its finish
    scores the rest. Blocks are `evaluation.snapshots.block_size` long, as the finish's are, so both
    use one compiled program. A model with non-trainable state is scored with its final state
    (`evaluation.snapshots`), which exists only after training: such models are left to the finish.
    """

    def __init__(self, models: Sequence, stores: Sequence, x_test, y_test: np.ndarray, panel_x: np.ndarray, count: int):
        from weightlab.evaluation.snapshots import block_size, stored_bytes

        self._models, self._stores = list(models), list(stores)
        self._arrays = (x_test, y_test, panel_x)  # x_test may be on the device
        self._sizes = [block_size(count, stored_bytes(model)) for model in self._models]
        self._scorable = [not model.non_trainable_variables for model in self._models]
        self._available = [0] * len(self._stores)  # snapshots in each store at the last `taken`
        self._scored: list[list[dict]] = [[] for _ in self._stores]
        self._changed = threading.Condition()
        self._closed = self._busy = False

    def taken(self) -> None:
        """Note how many snapshots the runs' stores hold now. It never fails the training: on any error, scoring stops."""
        try:
            counts = [store.count for store in self._stores]
        except Exception:
            counts = None
        with self._changed:
            if counts is None:
                self._closed = True
            else:
                self._available = counts
            self._changed.notify_all()

    def work(self) -> None:
        """Score complete blocks as they become available, until `close` (`preparing`'s thread's last step)."""
        from weightlab.evaluation.snapshots import score_block

        while True:
            with self._changed:
                while not self._closed and (block := self._next_block()) is None:
                    self._changed.wait()
                if self._closed:
                    return
                run, start = block
                self._busy = True
            try:
                stop = start + self._sizes[run]
                scores = score_block(
                    self._models[run], self._stores[run].block(start, stop), stop - start, *self._arrays
                )
            except BaseException:
                with self._changed:  # a gap would misplace every later block's scores: the finish scores the rest
                    self._closed, self._busy = True, False
                    self._changed.notify_all()
                raise
            with self._changed:
                self._scored[run].append(scores)
                self._busy = False
                self._changed.notify_all()

    def _next_block(self) -> tuple[int, int] | None:
        """(run, first snapshot) of the next complete block not yet scored, the runs in turn; None if there is none."""
        for run, size in enumerate(self._sizes):
            start = size * len(self._scored[run])
            if self._scorable[run] and self._available[run] - start >= size:
                return run, start
        return None

    def close(self) -> None:
        """Start no more blocks (the one under way, if any, finishes). It only takes the lock: it never waits for XLA."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def of(self, run: int) -> list[dict]:
        """Run ``run``'s scores (`score_block`'s) of its first snapshots, block by block: closes, and waits for the
        block under way."""
        self.close()
        with self._changed:
            while self._busy:
                self._changed.wait()
            return list(self._scored[run])
