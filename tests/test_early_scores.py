"""Snapshots scored while the runs train (`experiments.ahead.EarlyScores`): the same scores as scored after, in order."""

import threading
import time

import numpy as np
import pytest

from weightlab.config import RunConfig
from weightlab.evaluation import snapshots as evaluation
from weightlab.experiments.ahead import EarlyScores, preparing
from weightlab.experiments.finish import evaluated_snapshots


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model, x_test, y_test, panel inputs) of a tiny synthetic run."""
    from weightlab.analysis.panel import panel_indices
    from weightlab.experiments import run as run_module
    from weightlab.models import input_shape
    from weightlab.train.keras_fit import to_inputs

    config = RunConfig(dataset="synthetic", epochs=1, hidden=[7]).resolved()
    keras, dataset = run_module.keras_and_data(config, tmp_path_factory.mktemp("data"))
    model = run_module.prepare(keras, config, dataset)[0]
    x_test = to_inputs(dataset.inputs("test"), input_shape(model))
    y_test = np.asarray(dataset.y_test)
    return model, x_test, y_test, x_test[panel_indices(y_test)]


def snapshots_of(model, count: int):
    from weightlab.train.snapshots import MemorySnapshots
    from weightlab.train.tracker import variable_names

    rng = np.random.default_rng(count)
    store = MemorySnapshots(variable_names(model))
    for step in range(count):
        store.append(step, [v.numpy() + rng.normal(0, 0.05 * step, v.shape) for v in model.trainable_variables])
    return store


def scorer(tiny, store, count: int, model=None) -> EarlyScores:
    own_model, x_test, y_test, panel_x = tiny
    return EarlyScores([model or own_model], [store], x_test, y_test, panel_x, count)


def drained(early: EarlyScores, seconds: float = 10) -> None:
    """Wait until every complete block available is scored (or scoring closed)."""
    deadline = time.monotonic() + seconds
    while (early._next_block() is not None or early._busy) and not early._closed and time.monotonic() < deadline:
        time.sleep(0.005)


def scored(early: EarlyScores) -> list[dict]:
    """What a thread scores of the blocks available now, once it has scored them all."""
    thread = threading.Thread(target=early.work)
    thread.start()
    early.taken()
    drained(early)
    scores = early.of(0)
    thread.join(10)
    assert not thread.is_alive()  # `of` closes the scoring, and its work ends
    return scores


@pytest.mark.parametrize("count", [21, 16])  # the finish scores the last five, or nothing
def test_scores_made_while_training_are_those_made_after_and_the_finish_makes_only_the_rest(tiny, monkeypatch, count):
    model, x_test, y_test, _ = tiny
    store = snapshots_of(model, count)
    early = scored(scorer(tiny, store, count))
    assert [len(block["loss"]) for block in early] == [8, 8]  # complete blocks only

    starts = []
    evaluate = evaluation.evaluate_snapshots
    monkeypatch.setattr(
        evaluation, "evaluate_snapshots", lambda *a, **k: starts.append(k["start"]) or evaluate(*a, **k)
    )
    with_early = evaluated_snapshots(model, store, x_test, y_test, early=early)
    assert starts == ([16] if count > 16 else [])
    monkeypatch.undo()
    alone = evaluated_snapshots(model, store, x_test, y_test)
    for key in ("test_loss", "test_accuracy", "panel/probabilities"):
        assert with_early[key].shape[0] == count
        assert np.array_equal(with_early[key], alone[key]), key


def test_a_block_is_scored_once_the_store_holds_all_of_it_and_read_only_by_the_thread(tiny):
    from weightlab.train.snapshots import MemorySnapshots

    model = tiny[0]
    full = snapshots_of(model, 16)
    store = MemorySnapshots(full.names)
    reads = []
    block = store.block
    store.block = lambda start, stop: reads.append((threading.current_thread().name, start, stop)) or block(start, stop)
    early = scorer(tiny, store, 16)
    thread = threading.Thread(target=early.work, name="scorer")
    thread.start()
    for count, blocks in ((7, 0), (8, 1), (15, 1), (16, 2)):
        while store.count < count:
            store.append(store.count, full.at(store.count))
        early.taken()
        drained(early)
        assert len(early._scored[0]) == blocks, count
    early.close()
    thread.join(10)
    # One block in memory at a time, read where it is scored: the training's thread reads nothing.
    assert reads == [("scorer", 0, 8), ("scorer", 8, 16)]


def test_a_block_that_fails_keeps_the_blocks_before_it_and_drops_those_after(tiny, monkeypatch):
    calls = []
    score = evaluation.score_block

    def failing_second(*arguments):
        calls.append(arguments[1][0][:, 0, 0].copy())  # the block's first weights, to tell blocks apart
        if len(calls) == 2:
            raise RuntimeError("the device is gone")
        return score(*arguments)

    monkeypatch.setattr(evaluation, "score_block", failing_second)
    store = snapshots_of(tiny[0], 24)
    early = scorer(tiny, store, 24)
    failures = []

    def work():
        try:
            early.work()
        except RuntimeError as failure:  # `preparing` suppresses it; the finish then scores the rest
            failures.append(failure)

    thread = threading.Thread(target=work)
    thread.start()
    early.taken()
    thread.join(10)
    assert not thread.is_alive() and len(calls) == 2 and failures  # it stopped at the failure, not after it
    assert np.array_equal(calls[0], store.block(0, 8)[0][:, 0, 0])
    assert [len(block["loss"]) for block in early.of(0)] == [8]  # no gap: the finish scores from 8 on


def test_a_store_that_cannot_be_read_stops_the_scoring_not_the_training(tiny):
    class Broken:
        @property
        def count(self):
            raise OSError("the disk is gone")

    early = EarlyScores([tiny[0]], [Broken()], *tiny[1:], 16)
    early.taken()  # the progress hook: it must not raise into the training
    assert early._closed and early.of(0) == []


def test_a_model_with_non_trainable_state_is_left_to_the_finish(tiny):
    from weightlab.backend import keras_for

    keras = keras_for("jax")
    normalised = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    early = scorer(tiny, snapshots_of(tiny[0], 16), 16, model=normalised)
    early.taken()
    assert early._next_block() is None and early.of(0) == []  # its final statistics exist only after training


def test_the_preparation_closes_the_scoring_before_it_joins_its_thread(tiny):
    early = scorer(tiny, snapshots_of(tiny[0], 3), 3)
    finished = threading.Event()

    def block():
        with preparing(None, [lambda: None], early) as hook:
            hook(1, 10, None)  # starts the thread: its last step is the scoring, which waits for blocks
            time.sleep(0.1)
        finished.set()

    threading.Thread(target=block, daemon=True).start()
    assert finished.wait(10)  # it would wait forever if the scoring were not closed
    assert not any(thread.name == "weightlab-ahead" for thread in threading.enumerate())


def test_runs_trained_together_each_store_their_own_snapshots_scores(tmp_path, monkeypatch):
    """A comparison's runs, with every available block scored during training, store exactly the scores they store
    when everything is scored after it: no run gets another's."""
    from weightlab.experiments.together import run_many

    configs = [
        RunConfig(dataset="synthetic", epochs=2, hidden=[width], seed=seed, snapshots=20)
        for width in (5, 9)
        for seed in (0, 1)
    ]
    taken, of = EarlyScores.taken, EarlyScores.of
    early_blocks = []
    monkeypatch.setattr(EarlyScores, "taken", lambda self: taken(self) or drained(self))  # scored as training goes
    monkeypatch.setattr(EarlyScores, "of", lambda self, run: early_blocks.append(len(of(self, run))) or of(self, run))
    during = run_many(configs, out=tmp_path / "during")
    assert len(early_blocks) == 4 and all(early_blocks)

    monkeypatch.setattr(EarlyScores, "_next_block", lambda self: None)  # nothing scored during training
    after = run_many(configs, out=tmp_path / "after")
    for one, other in zip(during, after):
        mine, theirs = one.snapshot_evaluations(), other.snapshot_evaluations()
        for key in ("test_loss", "test_accuracy", "panel/probabilities"):
            assert np.array_equal(mine[key], theirs[key]), (one.config.hidden, one.config.seed, key)
