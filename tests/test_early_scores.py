"""Snapshots scored while the runs train (`experiments.ahead.EarlyScores`): the same scores as scored after, in order."""

import threading
import time

import numpy as np
import pytest

from weightlab.config import RunConfig
from weightlab.evaluation import snapshots as evaluation
from weightlab.experiments.ahead import EarlyScores, preparing
from weightlab.experiments.finish import evaluated_snapshots

COUNT = 21  # two complete blocks of 8 and a partial one


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, snapshot store of COUNT snapshots, x_test, y_test, panel inputs) of a tiny synthetic run."""
    from weightlab.analysis.panel import panel_indices
    from weightlab.experiments import run as run_module
    from weightlab.models import input_shape
    from weightlab.train.keras_fit import to_inputs
    from weightlab.train.snapshots import MemorySnapshots
    from weightlab.train.tracker import variable_names

    config = RunConfig(dataset="synthetic", epochs=1, hidden=[7]).resolved()
    keras, dataset = run_module.keras_and_data(config, tmp_path_factory.mktemp("data"))
    model = run_module.prepare(keras, config, dataset)[0]
    rng = np.random.default_rng(0)
    store = MemorySnapshots(variable_names(model))
    for step in range(COUNT):
        store.append(step, [v.numpy() + rng.normal(0, 0.05 * step, v.shape) for v in model.trainable_variables])
    x_test = to_inputs(dataset.inputs("test"), input_shape(model))
    y_test = np.asarray(dataset.y_test)
    return model, store, x_test, y_test, x_test[panel_indices(y_test)]


def scorer(trained, model=None) -> EarlyScores:
    own_model, store, x_test, y_test, panel_x = trained
    return EarlyScores([model or own_model], [store], x_test, y_test, panel_x, COUNT)


def scored_after_queueing(early: EarlyScores, blocks: int) -> list[dict]:
    """Queue what the store holds, let a thread score it, and take the scores once ``blocks`` are done (or 10 s)."""
    thread = threading.Thread(target=early.work)
    thread.start()
    early.taken()
    deadline = time.monotonic() + 10
    while len(early._scored[0]) < blocks and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    scores = early.of(0)
    thread.join(10)
    assert not thread.is_alive()  # `of` closes the scoring, and its work ends
    return scores


def test_scores_made_while_training_are_those_made_after_and_the_finish_makes_only_the_rest(trained, monkeypatch):
    model, store, x_test, y_test, _ = trained
    early = scored_after_queueing(scorer(trained), blocks=2)
    assert [len(block["loss"]) for block in early] == [8, 8]  # complete blocks only: 16 of 21

    starts = []
    evaluate = evaluation.evaluate_snapshots
    monkeypatch.setattr(
        evaluation, "evaluate_snapshots", lambda *a, **k: starts.append(k["start"]) or evaluate(*a, **k)
    )
    with_early = evaluated_snapshots(model, store, x_test, y_test, early=early)
    assert starts == [16]  # the finish scored the last five only
    monkeypatch.undo()
    alone = evaluated_snapshots(model, store, x_test, y_test)
    for key in ("test_loss", "test_accuracy", "panel/probabilities"):
        assert with_early[key].shape[0] == COUNT
        assert np.array_equal(with_early[key], alone[key]), key


def test_a_block_that_fails_keeps_the_blocks_before_it_and_drops_those_after(trained, monkeypatch):
    calls = []
    score = evaluation.score_block

    def failing_second(*arguments):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the device is gone")
        return score(*arguments)

    monkeypatch.setattr(evaluation, "score_block", failing_second)
    early = scorer(trained)
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
    assert not thread.is_alive() and len(calls) == 2 and failures  # it stopped at the failure
    assert [len(block["loss"]) for block in early.of(0)] == [8]  # no gap: the finish scores from 8 on


def test_a_model_with_non_trainable_state_is_left_to_the_finish(trained):
    from weightlab.backend import keras_for

    keras = keras_for("jax")
    normalised = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    early = scorer(trained, model=normalised)
    early.taken()
    assert not early._pending and early.of(0) == []  # its final statistics exist only after training


def test_the_preparation_closes_the_scoring_before_it_joins_its_thread(trained):
    early = scorer(trained)
    finished = threading.Event()

    def block():
        with preparing(None, [lambda: None], early) as hook:
            hook(1, 10, None)  # starts the thread: its last step is the scoring, which waits for blocks
            time.sleep(0.1)
        finished.set()

    threading.Thread(target=block, daemon=True).start()
    assert finished.wait(10)  # it would wait forever if the scoring were not closed first
    assert not any(thread.name == "weightlab-ahead" for thread in threading.enumerate())
