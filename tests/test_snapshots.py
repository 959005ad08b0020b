"""Snapshots: the schedule, the chunks that carry them, the file they stream into, their evaluation."""

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import weightlab
from weightlab.analysis.panel import panel_indices
from weightlab.train.schedule import plan_chunks, snapshot_schedule


def test_the_default_schedule_on_mnist_is_dense_in_the_first_epoch():
    steps = snapshot_schedule(1688, 5, 48)  # MNIST's defaults: 54,000 images in batches of 32, 5 epochs
    assert len(steps) == 48 and steps[0] == 0 and steps[-1] == 5 * 1688
    assert set(1688 * np.arange(1, 6)) <= set(steps.tolist())  # every epoch's end
    assert (steps <= 1688).sum() >= 15  # most of them where the weights move fastest
    assert np.all(np.diff(steps) > 0) and np.all(np.diff(np.log(steps[1:])) > 0)


@settings(max_examples=200, deadline=None)
@given(per_epoch=st.integers(1, 400), epochs=st.integers(1, 6), count=st.integers(0, 120), every=st.integers(0, 50))
def test_schedule_keeps_the_ends_and_the_count_asked(per_epoch, epochs, count, every):
    total = per_epoch * epochs
    steps = snapshot_schedule(per_epoch, epochs, count, every)
    required = {0, total} | {per_epoch * (e + 1) for e in range(epochs)}
    assert required <= set(steps.tolist()) and np.all(np.diff(steps) > 0) and steps[-1] == total
    without_every = snapshot_schedule(per_epoch, epochs, count)
    assert len(without_every) == min(max(count, len(required)), total + 1)
    if every:  # --snapshot-every adds its steps on top
        assert set(steps.tolist()) == set(without_every.tolist()) | set(range(every, total + 1, every))


@settings(max_examples=100, deadline=None)
@given(per_epoch=st.integers(1, 60), epochs=st.integers(1, 4), count=st.integers(0, 80), capacity=st.integers(1, 9))
def test_chunks_cover_every_step_once_and_carry_each_snapshot(per_epoch, epochs, count, capacity):
    schedule = snapshot_schedule(per_epoch, epochs, count)
    chunks = plan_chunks(schedule, per_epoch, epochs, capacity)
    covered, carried = [], []
    for epoch, first, length, taken in chunks:
        assert length > 0 and len(taken) <= capacity
        covered.extend(range(epoch * per_epoch + first, epoch * per_epoch + first + length))
        carried.extend(step for _, step in taken)
        # the slot's index is the step within the chunk after which the weights are the snapshot's
        assert all(epoch * per_epoch + first + index + 1 == step for index, step in taken)
    assert covered == list(range(per_epoch * epochs)) and carried == schedule[1:].tolist()


def test_the_panel_is_stratified_and_fixed():
    labels = np.random.default_rng(1).integers(0, 10, size=1000)
    panel = panel_indices(labels)
    assert len(panel) == 24 and len(set(panel.tolist())) == 24
    counts = np.bincount(labels[panel], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts[:4].tolist() == [3, 3, 3, 3]
    assert np.array_equal(panel, panel_indices(labels.copy()))  # the labels decide it, nothing else
    assert list(labels[panel]) == sorted(labels[panel])
    assert len(panel_indices(np.array([0, 0, 1]))) == 3  # a test set smaller than the panel: all of it


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return weightlab.run(
        dataset="synthetic", epochs=2, hidden=8, seed=1, out=tmp_path_factory.mktemp("runs"), report=False
    )


def test_a_default_run_keeps_48_snapshots_streamed_one_per_chunk(run):
    steps, epochs, weights = run.snapshots()
    assert len(steps) == 48 and steps[0] == 0 and steps[-1] == run.summary["steps"]
    assert np.array_equal(epochs, steps / 68)
    with h5py.File(run.path / "snapshots.h5") as h5:
        for name in weights:
            dataset = h5[f"weights/{name}"]
            assert dataset.chunks == (1, *dataset.shape[1:]) and dataset.maxshape[0] is None


def test_every_snapshot_is_evaluated_on_the_whole_test_set(run):
    from weightlab import data
    from weightlab.backend import keras_for
    from weightlab.models import build
    from weightlab.train.keras_fit import evaluate, predict, to_inputs

    s = run.summary
    with h5py.File(run.path / "snapshots.h5") as h5:
        loss, accuracy = h5["test_loss"][()], h5["test_accuracy"][()]
        panel, labels, inputs, probabilities = (
            h5[f"panel/{key}"][()] for key in ("indices", "labels", "inputs", "probabilities")
        )
    assert loss.shape == accuracy.shape == (48,) and probabilities.shape == (48, 24, 10)
    assert accuracy[-1] == s["test_accuracy_after"] and accuracy[0] == s["test_accuracy_before"]
    np.testing.assert_allclose([loss[0], loss[-1]], [s["test_loss_before"], s["test_loss_after"]], rtol=1e-6)
    dataset = data.load("synthetic")
    x_test = to_inputs(dataset.x_test)
    assert np.array_equal(panel, panel_indices(dataset.y_test)) and np.array_equal(labels, dataset.y_test[panel])
    assert np.array_equal(inputs, x_test[panel])
    # a snapshot in the middle, loaded into a fresh model and evaluated as every command evaluates
    keras = keras_for("jax")
    model = build(run.config, keras)
    _, _, weights = run.snapshots()
    middle = [stack[20] for stack in weights.values()]
    np.testing.assert_allclose(evaluate(model, x_test, dataset.y_test, middle), (loss[20], accuracy[20]), rtol=1e-6)
    np.testing.assert_allclose(predict(model, inputs), probabilities[20], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("activation_bytes", [256 << 20, 1])  # the whole set in one batch; batches of 500
def test_the_keras_loop_evaluates_as_the_batched_program_does(run, monkeypatch, activation_bytes):
    from weightlab import data
    from weightlab.backend import keras_for
    from weightlab.evaluation import snapshots as evaluation
    from weightlab.models import build
    from weightlab.train.keras_fit import to_inputs
    from weightlab.train.snapshots import MemorySnapshots

    _, _, weights = run.snapshots()
    store = MemorySnapshots(list(weights))
    for index in (0, 5, 47):
        store.append(index, [stack[index] for stack in weights.values()])
    dataset = data.load("synthetic")
    x, y = to_inputs(dataset.x_test)[:700], dataset.y_test[:700]  # in batches of 500, a last, partial one
    model = build(run.config, keras_for("jax"))
    monkeypatch.setattr(evaluation, "ACTIVATION_BYTES", activation_bytes)
    assert evaluation.test_batch(model, len(x), activation_bytes) == (len(x) if activation_bytes > 1 else 500)
    batched = evaluation._evaluate_jax(model, store, x, y, x[:3])
    looped = evaluation._evaluate_by_loop(model, store, x, y, x[:3])
    np.testing.assert_allclose(batched["loss"], looped["loss"], rtol=1e-6)
    assert np.array_equal(batched["accuracy"], looped["accuracy"])
    np.testing.assert_allclose(batched["panel_probabilities"], looped["panel_probabilities"], rtol=1e-5, atol=1e-7)


def test_test_batches_are_as_large_as_the_layer_outputs_allow():
    from weightlab.backend import keras_for
    from weightlab.evaluation.snapshots import SMALLEST_BATCH, test_batch

    keras = keras_for("jax")
    dense = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64), keras.layers.Dense(10)])
    assert test_batch(dense, 10_000) == 10_000 and test_batch(dense, 10_000, budget=8 * 74 * 600) == 600
    conv = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3), keras.layers.Flatten()])
    feature_maps = 2 * 26 * 26 * 16  # the convolution's outputs, and the same flattened
    assert test_batch(conv, 10_000, budget=256 << 20) == (256 << 20) // (8 * feature_maps) < 10_000

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 784), np.float32))
    assert test_batch(subclassed, 10_000) == SMALLEST_BATCH


def test_cutting_epochs_into_chunks_for_a_small_buffer_changes_nothing(run, tmp_path, monkeypatch):
    from weightlab.train import fused_chunks

    monkeypatch.setattr(fused_chunks, "SNAPSHOT_BUFFER_BYTES", 1)  # one slot: a chunk ends at every snapshot
    cut = weightlab.run(run.config, out=tmp_path, report=False)
    steps_a, _, weights_a = run.snapshots()
    steps_b, _, weights_b = cut.snapshots()
    assert np.array_equal(steps_a, steps_b)
    for name in weights_a:
        assert np.array_equal(weights_a[name], weights_b[name]), name
    assert np.array_equal(run.steps()["loss"], cut.steps()["loss"])
