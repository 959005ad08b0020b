"""The fused JAX loop against Keras's own model.fit: same seed, same weights."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import adam_kernel_ready
from weightlab.backend import keras_for

keras = keras_for("jax")
from weightlab import data, models  # noqa: E402
from weightlab.config import RunConfig  # noqa: E402
from weightlab.train import fused_jax, keras_fit  # noqa: E402


@pytest.fixture(scope="module")
def small():
    arrays = data.load("synthetic")
    # 600 images: 540 to fit (17 batches of 32, the last of 28) and 60 to validate
    return keras_fit.to_inputs(arrays.x_train[:600]), arrays.y_train[:600]


def train(module, x, y, config, evaluate_first=False):
    keras.utils.set_random_seed(config.seed)
    model = models.build(config, keras)
    if evaluate_first:  # a built model: model.fit skips its data-drawing build pass
        model.evaluate(x[:10], y[:10], verbose=0)
    return model, module.fit(model, x, y, config)


@pytest.mark.parametrize("snapshot_every, evaluate_first", [(0, False), (7, True)])
def test_fused_path_matches_model_fit(small, snapshot_every, evaluate_first):
    config = RunConfig(dataset="synthetic", epochs=2, hidden=16, seed=3, snapshot_every=snapshot_every)
    reference_model, reference = train(keras_fit, *small, config, evaluate_first)
    fused_model, fused = train(fused_jax, *small, config, evaluate_first)
    assert fused.path == "fused-jax" and reference.path == "keras.fit"
    # same initialisation, same data order, same updates: the weights agree to float32 rounding
    for a, b in zip(fused_model.get_weights(), reference_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fused.tracked.snapshot_steps.tolist() == reference.tracked.snapshot_steps.tolist()
    for name in fused.tracked.variable_names:
        np.testing.assert_allclose(
            fused.tracked.snapshots[name], reference.tracked.snapshots[name], rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(fused.tracked.loss, reference.tracked.loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        fused.tracked.distance_from_init, reference.tracked.distance_from_init, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(fused.tracked.update_norm, reference.tracked.update_norm, rtol=1e-3, atol=1e-6)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(fused.history[key], reference.history[key], rtol=1e-5, atol=1e-6)
    assert fused.steps == reference.steps == 2 * 17


def test_keras_fit_path_is_the_tutorials_model_fit_bit_for_bit(small):
    """weightlab's keras.fit path feeds each epoch its own drawn order: on JAX exactly Keras's own shuffle."""
    x, y = small
    config = RunConfig(dataset="synthetic", epochs=3, hidden=16, seed=3)
    keras.utils.set_random_seed(config.seed)
    plain = models.build(config, keras)
    history = plain.fit(x, y, epochs=3, batch_size=32, validation_split=0.1, verbose=0).history
    model, result = train(keras_fit, x, y, config)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        assert np.array_equal(a, b)
    assert result.history == {key: [float(v) for v in values] for key, values in history.items()}


def test_chunks_are_epochs_unless_the_snapshot_buffer_overflows():
    from weightlab.train.schedule import plan_chunks

    schedule = np.array([0, 3, 5, 6, 9, 10])  # every 3 global steps and the epoch ends 5, 10
    # a buffer that holds an epoch's snapshots: one chunk per epoch, each snapshot at its step's index
    assert plan_chunks(schedule, 5, 2, capacity=3) == [
        (0, 0, 5, [(2, 3), (4, 5)]),
        (1, 0, 5, [(0, 6), (3, 9), (4, 10)]),
    ]
    # one slot: a chunk ends at every snapshot
    assert plan_chunks(schedule, 5, 2, capacity=1) == [
        (0, 0, 3, [(2, 3)]),
        (0, 3, 2, [(1, 5)]),
        (1, 0, 1, [(0, 6)]),
        (1, 1, 3, [(2, 9)]),
        (1, 4, 1, [(0, 10)]),
    ]


def test_run_picks_the_path_it_claims(tmp_path):
    import weightlab
    from weightlab.experiments.run import training_path

    model = models.build(RunConfig(dataset="synthetic"), keras)
    assert training_path(model, RunConfig(backend="jax")) is fused_jax
    assert training_path(model, RunConfig(backend="jax", training_path="keras.fit")) is keras_fit
    assert training_path(model, RunConfig(backend="tensorflow")) is keras_fit
    run = weightlab.run(dataset="synthetic", epochs=1, out=tmp_path, backend="jax", training_path="keras.fit")
    assert run.summary["training_path"] == "keras.fit"
    run = weightlab.run(dataset="synthetic", epochs=1, out=tmp_path, backend="jax")
    assert run.summary["training_path"] == "fused-jax"


def test_shared_evaluation_equals_model_evaluate(small):
    x, y = small
    keras.utils.set_random_seed(5)
    model = models.build(RunConfig(dataset="synthetic", hidden=16), keras)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    loss, accuracy = keras_fit.evaluate(model, x, y)
    reference = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert loss == pytest.approx(reference["loss"], rel=1e-5) and accuracy == pytest.approx(
        reference["accuracy"], abs=1e-7
    )
    np.testing.assert_allclose(keras_fit.predict(model, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
    # with weights given, it evaluates those and leaves them in the model
    initial = [np.zeros_like(w) for w in model.get_weights()]
    loss_zero, _ = keras_fit.evaluate(model, x, y, weights=initial)
    assert loss_zero == pytest.approx(np.log(10), rel=1e-5)  # all-zero weights: a uniform softmax


@pytest.mark.parametrize("vmapped", [False, True])
def test_runs_trained_together_match_runs_trained_alone(tmp_path, monkeypatch, vmapped):
    """run_many trains runs that differ in seed and labels together; each keeps its own init, order and labels.

    On the CPU they train side by side, each through the unbatched program: bit for bit as alone.
    Vmapped (an accelerator's way, forced here) the batched arithmetic rounds differently.
    """
    from weightlab.experiments.run import run
    from weightlab.experiments.together import run_many
    from weightlab.train.fused_program import _Program

    monkeypatch.setattr(_Program, "vmap_runs", vmapped)

    base = RunConfig(dataset="synthetic", epochs=2, hidden=8, backend="jax")
    configs = [
        dataclasses.replace(base, seed=1),
        dataclasses.replace(base, seed=2, shuffle_labels=True),
        dataclasses.replace(base, seed=1, hidden=4),
    ]
    together = run_many(configs, out=tmp_path / "together")
    alone = [run(config, out=tmp_path / "alone", report=False) for config in configs]
    for a, b in zip(together, alone):
        assert a.config == b.config
        _, _, wa = a.snapshots()
        _, _, wb = b.snapshots()
        for name in wa:
            if vmapped:  # batched arithmetic rounds differently; the runs are the same runs
                np.testing.assert_allclose(wa[name], wb[name], rtol=1e-3, atol=1e-4)
            else:
                np.testing.assert_array_equal(wa[name], wb[name])
        assert a.summary["test_accuracy_after"] == pytest.approx(b.summary["test_accuracy_after"], abs=0.01)
    # the hidden=4 run could not join the others and ran alone: bit for bit the same
    np.testing.assert_array_equal(together[2].snapshots()[2]["hidden/kernel"], alone[2].snapshots()[2]["hidden/kernel"])
    assert together[1].summary["test_accuracy_after"] < 0.5  # the shuffled-labels control learned nothing


def test_which_runs_train_together():
    from weightlab.experiments.together import _trained_together

    base = RunConfig(dataset="synthetic", backend="jax")
    grid = [dataclasses.replace(base, hidden=h, seed=s) for h in (16, 64) for s in (0, 1, 2)]
    # a comparison: each seed's two widths are one pack; the three seeds one vmapped group
    assert _trained_together(grid) == [[[0, 3], [1, 4], [2, 5]]]
    # widths with different seeds cannot share batches: each width is its own group
    uneven = grid[:3] + [dataclasses.replace(base, hidden=64, seed=0)]
    assert _trained_together(uneven) == [[[0], [1], [2]], [[3]]]
    # anything else that differs (here the learning rate) keeps runs apart
    apart = [base, dataclasses.replace(base, learning_rate=0.01)]
    assert _trained_together(apart) == [[[0]], [[1]]]


def test_widths_trained_as_branches_match_runs_trained_alone(tmp_path):
    """A comparison's variants of one seed train as branches of one network: each as it would alone."""
    from weightlab.experiments.run import run
    from weightlab.experiments.together import run_many

    base = RunConfig(dataset="synthetic", epochs=2, backend="jax", snapshot_every=10)
    configs = [dataclasses.replace(base, hidden=h, seed=s) for h in (4, 8) for s in (1, 2)]
    together = run_many(configs, out=tmp_path / "together")
    alone = [run(config, out=tmp_path / "alone", report=False) for config in configs]
    for a, b in zip(together, alone):
        assert a.config == b.config and a.summary["parameters"] == b.summary["parameters"]
        steps_a, _, wa = a.snapshots()
        steps_b, _, wb = b.snapshots()
        assert steps_a.tolist() == steps_b.tolist()
        for name in wa:  # a different program rounds differently; the runs are the same runs
            assert wa[name].shape == wb[name].shape
            np.testing.assert_allclose(wa[name], wb[name], rtol=1e-3, atol=1e-4)
        for key in ("loss", "distance_from_init", "update_norm"):
            np.testing.assert_allclose(a.steps()[key], b.steps()[key], rtol=1e-3, atol=1e-5)
        for key, values in b.summary["history"].items():
            np.testing.assert_allclose(a.summary["history"][key], values, rtol=1e-3, atol=1e-4)
        assert a.summary["test_accuracy_after"] == pytest.approx(b.summary["test_accuracy_after"], abs=0.01)


def test_branches_that_diverge_stop_where_they_would_alone(tmp_path):
    """Branches share no weights: each stops at its own first non-finite loss (replayed per branch) and keeps finite weights."""
    from weightlab.experiments.run import run
    from weightlab.experiments.together import run_many

    base = RunConfig(dataset="synthetic", epochs=2, backend="jax", learning_rate=1e38)
    configs = [dataclasses.replace(base, hidden=h, seed=3) for h in (4, 32)]
    together = run_many(configs, out=tmp_path / "together")
    alone = [run(config, out=tmp_path / "alone", report=False) for config in configs]
    for a, b in zip(together, alone):
        assert a.summary["status"] == b.summary["status"] == "diverged"
        assert a.summary["diverged"]["step"] == b.summary["diverged"]["step"]
        _, _, weights = a.snapshots()
        assert all(np.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("every, hidden", [(1, 8), (3, 8), (3, 335)])
def test_step_norms_are_exact_where_taken_and_absent_between(small, every, hidden):
    """The fused path's norms against numpy's, from the same training's weights kept at every step (--snapshot-every 1).

    At width 335 the first kernel (784×335) is the fused Adam kernel's: it takes that kernel's norms in its update's
    pass (the other variables' are summed in the loop).
    """
    from weightlab.kernels import adam as adam_kernel

    x, y = small
    base = RunConfig(dataset="synthetic", epochs=2, hidden=hidden, snapshots=6)
    _, every_step = train(fused_jax, x, y, dataclasses.replace(base, snapshot_every=1))
    model, strided = train(fused_jax, x, y, dataclasses.replace(base, step_stats_every=every))
    assert bool(adam_kernel.served_variables([model])) == (hidden == 335)
    adam_kernel_ready()  # in use, unless this machine's own check refused it (then Keras's update: the same weights)
    weights = every_step.tracked
    assert weights.snapshot_steps.tolist() == list(range(len(weights.loss) + 1))
    tracked = strided.tracked
    np.testing.assert_array_equal(tracked.loss, weights.loss)  # the stride changes nothing but what is measured
    steps_per_epoch = len(tracked.loss) // base.epochs
    taken = np.isfinite(tracked.distance_from_init[:, 0])
    steps = np.arange(1, len(taken) + 1)
    expected = (
        (steps % every == 0) | (steps == 1) | (steps % steps_per_epoch == 0) | np.isin(steps, tracked.snapshot_steps)
    )
    assert taken.tolist() == expected.tolist() and (every == 1 or not taken.all())
    for v, name in enumerate(weights.variable_names):
        stack = weights.snapshots[name]
        w = stack.astype(np.float64).reshape(len(stack), -1)
        references = (
            np.linalg.norm(w[1:] - w[0], axis=1),
            np.linalg.norm(w[1:] - w[:-1], axis=1),
            np.linalg.norm(w[1:], axis=1),
        )
        for recorded, reference in zip(
            (tracked.distance_from_init, tracked.update_norm, tracked.weight_norm), references
        ):
            np.testing.assert_allclose(recorded[taken, v], reference[taken], rtol=2e-5, atol=1e-7)
            assert np.isnan(recorded[~taken, v]).all()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_loop_segments_cover_each_step_once_and_end_at_every_marked_step(data):
    from weightlab.train.fused_chunks import loop_segments

    rows = data.draw(st.integers(1, 40), label="rows")
    length = data.draw(st.integers(1, rows), label="length")
    measured = np.array(data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
    slots = np.where(np.array(data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows))), 0, -1)
    ends, norm_rows, count = loop_segments(measured, slots, length)
    ends, norm_rows = ends[:count], norm_rows[:count]
    firsts = np.concatenate([[0], ends[:-1] + 1])
    covered = np.concatenate([np.arange(first, end + 1) for first, end in zip(firsts, ends)])
    assert np.array_equal(covered, np.arange(length))  # every real step once, in order; padding never
    marked = (measured | (slots >= 0))[:length]
    assert set(np.flatnonzero(marked)) <= set(ends.tolist()) and ends[-1] == length - 1
    assert np.array_equal(norm_rows, np.where(marked[ends], ends, rows))  # unmarked ends: the scratch row
