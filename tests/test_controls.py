"""The controls' math on hand-made weights, and `prove` end to end on the synthetic set."""

import math

import numpy as np
import pytest

from weightlab.analysis import controls


def weights(*values):
    return {
        "a/kernel": np.array(values[0], np.float32),
        "a/bias": np.array(values[1], np.float32),
        "b/kernel": np.array(values[2], np.float32),
    }


W0 = weights([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], [[2.0]])
W1 = weights([[2.0, 0.0], [0.0, 3.0]], [1.0, -1.0], [[0.0]])


def test_interpolation_ends_at_the_endpoints():
    for name in W0:
        np.testing.assert_array_equal(controls.interpolate(W0, W1, 0.0)[name], W0[name])
        np.testing.assert_array_equal(controls.interpolate(W0, W1, 1.0)[name], W1[name])
    np.testing.assert_allclose(controls.interpolate(W0, W1, 0.5)["a/kernel"], [[1.5, 0.0], [0.0, 2.0]])


def test_random_step_has_the_trained_length_in_every_variable():
    rng = np.random.default_rng(0)
    stepped = controls.random_step(W0, W1, rng)
    for name in W0:
        assert np.linalg.norm(stepped[name] - W0[name]) == pytest.approx(np.linalg.norm(W1[name] - W0[name]), rel=1e-6)
    assert not np.allclose(stepped["a/kernel"], W1["a/kernel"])


def test_undo_layer_resets_exactly_one_layer():
    undone = controls.undo_layer(W0, W1, "a")
    np.testing.assert_array_equal(undone["a/kernel"], W0["a/kernel"])
    np.testing.assert_array_equal(undone["a/bias"], W0["a/bias"])
    np.testing.assert_array_equal(undone["b/kernel"], W1["b/kernel"])
    assert controls.layers_of(W0) == ["a", "b"]


def test_row_change_map_and_rises():
    change = controls.row_change_map(W0["a/kernel"], W1["a/kernel"], image_shape=(1, 2))
    np.testing.assert_allclose(change, [[1.0, 2.0]])
    assert controls.rises([3, 2, 2.5, 1, 1]) == [1]
    assert controls.rises([3, 2, 1]) == []


def test_rank_correlation_against_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 40)  # with ties
    b = a + rng.normal(size=40)
    assert controls.rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert math.isnan(controls.rank_correlation([1, 1], [2, 3]))


@pytest.fixture(scope="module")
def proof(tmp_path_factory):
    from weightlab.experiments.prove import prove

    return prove(
        dataset="synthetic", epochs=2, hidden=32, seeds=3, out=tmp_path_factory.mktemp("proofs"), backend="jax"
    )


def test_trained_beats_every_control_on_a_learnable_problem(proof):
    result = proof.result
    trained = result["trained"]["test_accuracy_after"]["values"]
    for name in ("initial_weights", "shuffled_labels", "random_step"):
        control = result["controls"][name]["test_accuracy"]["values"]
        assert min(trained) > max(control) + 0.5, name  # the synthetic set is easy; the controls are at chance
    assert result["verdict"]["holds"] is True
    assert result["controls"]["shuffled_labels"]["distance"]["mean"] > 0  # it did move, just not anywhere useful


def test_line_endpoints_are_the_stored_evaluations(proof):
    result = proof.result
    line, alphas = result["line"], result["line"]["alphas"]
    for seed, loss, accuracy in zip(range(3), line["test_loss"], line["test_accuracy"]):
        assert loss[alphas.index(0.0)] == pytest.approx(result["trained"]["test_loss_before"]["values"][seed], rel=1e-6)
        assert loss[alphas.index(1.0)] == pytest.approx(result["trained"]["test_loss_after"]["values"][seed], rel=1e-6)
        assert accuracy[alphas.index(1.0)] == pytest.approx(result["trained"]["test_accuracy_after"]["values"][seed])


def test_proof_directory_holds_its_runs_and_json(proof):
    import json

    stored = json.loads((proof.path / "proof.json").read_text())
    assert stored == proof.result
    runs = sorted(p.name for p in (proof.path / "runs").iterdir())
    assert len(runs) == 6 and all((proof.path / "runs" / r / "summary.json").is_file() for r in runs)
    assert sorted(stored["runs"][0].values())[0] in runs
    assert np.array(stored["where"]["pixel_change"]).shape == (28, 28)
    for name, control in stored["controls"].items():
        assert len(control["test_accuracy"]["values"]) == 3 and "p" in control["accuracy_vs_trained"], name
