"""WeightTracker inside a user's own model.fit, checked against the weights it records."""

import numpy as np
import pytest

from weightlab.backend import keras_for

keras = keras_for(None)
from weightlab import WeightTracker  # noqa: E402

SAMPLES, BATCH, STEPS_PER_EPOCH = 100, 32, 4  # the last batch of each epoch holds 4 samples


def numpy_loss(weights, x, y):
    """Sparse categorical cross-entropy of the 2-layer ReLU/softmax MLP, in plain numpy."""
    k1, b1, k2, b2 = (w.astype(np.float64) for w in weights)
    hidden = np.maximum(x @ k1 + b1, 0)
    logits = hidden @ k2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def users_fit(tracker, epochs=2):
    """A user's own model and model.fit, with the tracker dropped in."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[tracker])
    return model, tracker.result(), history.history, (x, y)


@pytest.fixture(scope="module")
def every_step():
    return users_fit(WeightTracker(snapshot_every=1, batch_size=BATCH, samples=SAMPLES))


def test_snapshots_hold_the_models_weights(every_step):
    model, tracked, _, _ = every_step
    assert tracked.snapshot_steps.tolist() == list(range(9))
    assert tracked.snapshot_epochs[[0, 4, 8]].tolist() == [0.0, 1.0, 2.0]
    assert [name.split("/")[-1] for name in tracked.variable_names] == ["kernel", "bias", "kernel", "bias"]
    for name, weight in zip(tracked.variable_names, model.get_weights()):
        np.testing.assert_array_equal(tracked.snapshots[name][-1], weight)
        assert tracked.snapshots[name].dtype == np.float32


def test_per_step_norms_agree_with_the_snapshots(every_step):
    _, tracked, _, _ = every_step
    assert tracked.distance_from_init.shape == (8, 4) and tracked.update_norm.shape == (8, 4)
    for v, name in enumerate(tracked.variable_names):
        flat = tracked.snapshots[name].astype(np.float64).reshape(9, -1)
        np.testing.assert_allclose(
            tracked.distance_from_init[:, v], np.linalg.norm(flat[1:] - flat[0], axis=1), rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(
            tracked.update_norm[:, v], np.linalg.norm(flat[1:] - flat[:-1], axis=1), rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose(tracked.weight_norm[:, v], np.linalg.norm(flat[1:], axis=1), rtol=1e-5, atol=1e-7)
    # the triangle inequality: the path is at least as long as the distance travelled
    assert np.all(np.cumsum(tracked.update_norm, axis=0) >= tracked.distance_from_init * (1 - 1e-5))
    np.testing.assert_allclose(tracked.update_ratio, tracked.update_norm / tracked.weight_norm)


def test_per_step_loss_is_each_batchs_own_loss(every_step):
    _, tracked, history, (x, y) = every_step
    for step in range(8):
        start = (step % STEPS_PER_EPOCH) * BATCH
        batch = slice(start, start + BATCH)
        weights_before_step = [tracked.snapshots[name][step] for name in tracked.variable_names]
        assert tracked.loss[step] == pytest.approx(numpy_loss(weights_before_step, x[batch], y[batch]), rel=2e-4)
    # and the batch-size-weighted mean over an epoch is Keras's epoch loss
    sizes = np.array([32, 32, 32, 4])
    for epoch in range(2):
        losses = tracked.loss[tracked.epoch == epoch]
        assert (losses * sizes).sum() / sizes.sum() == pytest.approx(history["loss"][epoch], rel=1e-5)


def test_every_n_steps_adds_snapshots_without_duplicates_and_the_tracker_can_be_reused():
    tracker = WeightTracker(snapshot_every=3, snapshots=0)
    _, first, _, _ = users_fit(tracker)
    assert first.snapshot_steps.tolist() == [0, 3, 4, 6, 8]  # every 3 steps, plus each epoch's end
    _, second, _, _ = users_fit(tracker, epochs=1)
    assert second.snapshot_steps.tolist() == [0, 3, 4] and len(second.loss) == 4


def test_negative_snapshot_interval_is_refused():
    with pytest.raises(ValueError):
        WeightTracker(snapshot_every=-1)


def test_save_turns_a_users_own_fit_on_flat_data_into_a_run_that_reports(tmp_path, capsys):
    """A user's model.fit on non-image vectors -> tracker.save -> an ordinary run directory -> weightlab report."""
    import json

    import weightlab
    from weightlab.cli import main

    tracker = WeightTracker(batch_size=BATCH, samples=SAMPLES)
    model, tracked, history, (x, y) = users_fit(tracker, epochs=3)
    run = tracker.save(tmp_path / "mine", model, test_data=(x[:40], y[:40]), train_data=(x, y), report=False)
    assert run.path == tmp_path / "mine" and weightlab.read_run(run.path).summary == run.summary
    s = run.summary
    assert s["training_path"] == "model.fit" and s["image_shape"] is None and s["input_shape"] == [12]
    assert s["classes"] == 4 and s["parameters"] == model.count_params() and s["steps"] == 3 * STEPS_PER_EPOCH
    assert s["history"]["loss"] == pytest.approx(history["loss"])
    assert [layer["name"] for layer in s["layers"]] == tracked.variable_names
    _, _, snapshots = run.snapshots()
    for name, weight in zip(tracked.variable_names, model.get_weights()):
        assert np.array_equal(snapshots[name][-1], weight)
    # the test set scored with the trained weights is what the model itself says
    expected = float(np.mean(np.argmax(model.predict(x[:40], verbose=0), axis=1) == y[:40]))
    assert s["test_accuracy_after"] == pytest.approx(expected)
    assert s["frozen_inputs"]["inputs"] == 12 and s["frozen_inputs"]["never_active_inputs"] == 0
    assert main(["report", str(run.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["report"].endswith("report.html")
    assert (run.path / "report.html").stat().st_size > 10_000
    with pytest.raises(weightlab.RunDirError):  # never over an existing directory
        tracker.save(tmp_path / "mine", model, test_data=(x[:40], y[:40]))


@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (0, 3), (7,), (5, 9), (3, 3, 2, 4), (520, 512)])
def test_variable_norms_match_numpy_for_every_rank_and_size(shape):
    """Both arrangements (stacked below COLUMN_FIRST_ELEMENTS, column-first above) sum every element once."""
    from weightlab.train.norms import COLUMN_FIRST_ELEMENTS, sum_of_squares, variable_norms

    rng = np.random.default_rng(len(shape))
    current, initial, previous = (np.asarray(rng.normal(size=shape), dtype=np.float32) for _ in range(3))
    wide = [a.astype(np.float64) for a in (current - initial, current - previous, current)]
    expected = np.sqrt([np.sum(a**2) for a in wide])
    norms = keras.ops.convert_to_numpy(variable_norms(current, initial, previous))
    np.testing.assert_allclose(norms, expected, rtol=1e-6)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(sum_of_squares(current))), expected[2] ** 2, rtol=1e-6)
    assert (np.prod(shape) >= COLUMN_FIRST_ELEMENTS) == (shape == (520, 512))  # both arrangements are tested


def test_variable_norms_of_half_precision_weights_are_summed_in_float32():
    """float16 squares of 1e-4 underflow to 0 (and of 300 overflow): the norms are taken in float32."""
    from weightlab.train.norms import variable_norms

    current = np.full((6, 4), 3e-4, np.float16)
    initial, previous = np.zeros_like(current), np.full_like(current, 300.0)
    norms = keras.ops.convert_to_numpy(variable_norms(current, initial, previous))
    wide = [a.astype(np.float64) for a in (current - initial, current - previous, current)]
    np.testing.assert_allclose(norms, [np.sqrt(np.sum(a**2)) for a in wide], rtol=1e-3)
