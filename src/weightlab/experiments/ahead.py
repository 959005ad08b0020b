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

import collections
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
        if early is not None:
            early.taken()
        if steps and not threads:
            threads.append(threading.Thread(target=work, name="weightlab-ahead", daemon=True))
            threads[0].start()
        if progress is not None:
            progress(*arguments)

    try:
        yield hook
    finally:
        if early is not None:
            early.close()  # its `work` ends
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

    After each chunk of training, `taken` (in the main thread, from the progress hook) queues every
    complete block of snapshots now in a run's store; `work` (the thread's last step) scores the
    queued blocks in order. When training ends, `close` drops the blocks not started and waits for
    the one under way, and `of` gives a run's scores so far, for its first snapshots: its finish
    scores the rest. Blocks are `evaluation.snapshots.block_size` long, as the finish's are, so both
    use one compiled program. A model with non-trainable state is scored with its final state
    (`evaluation.snapshots`), which exists only after training: such models are left to the finish.
    """

    def __init__(self, models: Sequence, stores: Sequence, x_test, y_test: np.ndarray, panel_x: np.ndarray, count: int):
        from weightlab.evaluation.snapshots import block_size, stored_bytes

        self._models, self._stores = list(models), list(stores)
        self._arrays = (x_test, y_test, panel_x)  # x_test may be on the device
        self._sizes = [block_size(count, stored_bytes(model)) for model in self._models]
        self._queued = [0 if not model.non_trainable_variables else None for model in self._models]
        self._scored: list[list[dict]] = [[] for _ in self._stores]
        self._pending: collections.deque = collections.deque()
        self._changed = threading.Condition()
        self._closed = self._busy = False

    def taken(self) -> None:
        """Queue the complete blocks of snapshots the runs' stores hold now (main thread: the stores are its own)."""
        with self._changed:
            if self._closed:
                return
            for run, (store, size) in enumerate(zip(self._stores, self._sizes)):
                while self._queued[run] is not None and store.count - self._queued[run] >= size:
                    start = self._queued[run]
                    self._pending.append((run, store.block(start, start + size)))
                    self._queued[run] = start + size
            self._changed.notify_all()

    def work(self) -> None:
        """Score queued blocks until `close` (`preparing`'s thread's last step: `preparing` closes before joining)."""
        from weightlab.evaluation.snapshots import score_block

        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                run, stacks = self._pending.popleft()
                self._busy = True
            try:
                scores = score_block(self._models[run], stacks, self._sizes[run], *self._arrays)
            except BaseException:
                with self._changed:  # a gap would misplace every later block's scores: the finish scores the rest
                    self._closed, self._busy = True, False
                    self._pending.clear()
                    self._changed.notify_all()
                raise
            with self._changed:
                self._scored[run].append(scores)
                self._busy = False
                self._changed.notify_all()

    def close(self) -> None:
        """No more scoring: the blocks not started are dropped, the one under way is waited for."""
        with self._changed:
            self._closed = True
            self._pending.clear()
            self._changed.notify_all()
            while self._busy:
                self._changed.wait()

    def of(self, run: int) -> list[dict]:
        """Run ``run``'s scores (`score_block`'s) of its first snapshots, block by block, once closed."""
        self.close()
        return list(self._scored[run])
