"""The path on the loss surface: PCA of the snapshots and the loss over its plane (landscape.npz)."""

import numpy as np
import pytest

import weightlab
from weightlab.analysis.path import combine, gram_matrix, principal_plane
from weightlab.train.snapshots import ChainedSnapshots, MemorySnapshots


def svd_plane(flat: np.ndarray):
    """The reference: numpy's SVD of the snapshots' rows centred over snapshots (sklearn's PCA)."""
    centred = flat - flat.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    return (s**2 / np.sum(s**2))[:2], u[:, :2] * s[:2], vt[:2]


def assert_same_up_to_sign(a: np.ndarray, b: np.ndarray, **tolerance):
    for k in range(a.shape[1]):
        sign = np.sign(np.dot(a[:, k], b[:, k])) or 1.0
        np.testing.assert_allclose(a[:, k], sign * b[:, k], **tolerance)


def random_walk_store(rng, steps=9):
    walk = np.cumsum(rng.normal(size=(steps, 20)), axis=0).astype(np.float32) + 10
    store = MemorySnapshots(["kernel", "bias", "scale"])
    for i, w in enumerate(walk):
        store.append(i, [w[:15].reshape(5, 3), w[15:19], w[19]])
    return store, walk.astype(np.float64)


def test_the_gram_route_is_the_svd_of_the_centred_snapshots():
    store, flat = random_walk_store(np.random.default_rng(0))
    plane = principal_plane(gram_matrix(store))
    ratio, path, directions = svd_plane(flat)
    np.testing.assert_allclose(plane.explained_variance_ratio, ratio, rtol=1e-9)
    assert_same_up_to_sign(plane.path, path, atol=1e-9)
    assert np.all(plane.path[-1] >= plane.path[0])  # the sign convention: the path ends further along
    combined = combine(store, np.column_stack([np.full(9, 1 / 9), plane.coefficients]))
    as_rows = np.concatenate([c.reshape(3, -1) for c in combined], axis=1)
    np.testing.assert_allclose(as_rows[0], flat.mean(axis=0), rtol=1e-6)
    assert_same_up_to_sign(as_rows[1:].T, directions.T, atol=1e-6)


def test_two_runs_in_one_plane_and_degenerate_paths():
    rng = np.random.default_rng(1)
    (a, flat_a), (b, flat_b) = random_walk_store(rng), random_walk_store(rng, steps=5)
    plane = principal_plane(gram_matrix(ChainedSnapshots([a, b])))
    ratio, path, _ = svd_plane(np.concatenate([flat_a, flat_b]))
    np.testing.assert_allclose(plane.explained_variance_ratio, ratio, rtol=1e-9)
    assert_same_up_to_sign(plane.path, path, atol=1e-9)
    two = MemorySnapshots(["w"])
    two.append(0, [np.zeros(3)]), two.append(1, [np.ones(3)])  # a straight path has one direction
    line = principal_plane(gram_matrix(two))
    assert line.explained_variance_ratio.tolist() == [1.0, 0.0] and np.all(line.path[:, 1] == 0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return weightlab.run(
        dataset="synthetic", epochs=2, hidden=8, seed=2, out=tmp_path_factory.mktemp("r"), report=False
    )


@pytest.fixture(scope="module")
def stored(run):
    steps, _, weights = run.snapshots()
    flat = np.concatenate([stack.reshape(len(steps), -1) for stack in weights.values()], axis=1).astype(np.float64)
    with np.load(run.path / "landscape.npz") as archive:
        return flat, weights, {key: archive[key] for key in archive.files}


def test_landscape_matches_numpy_svd_of_the_stored_snapshots(stored):
    flat, _, land = stored
    ratio, path, _ = svd_plane(flat)
    np.testing.assert_allclose(land["explained_variance_ratio"], ratio, rtol=1e-6)
    assert_same_up_to_sign(land["path"], path, rtol=1e-5, atol=1e-6)
    assert (
        land["grid_loss"].shape == (len(land["grid_b"]), len(land["grid_a"])) and np.isfinite(land["grid_loss"]).all()
    )
    # the grid spans the path
    assert land["grid_a"][0] < land["path"][:, 0].min() and land["path"][:, 0].max() < land["grid_a"][-1]
    assert land["grid_b"][0] < land["path"][:, 1].min() and land["path"][:, 1].max() < land["grid_b"][-1]


def sample_loss(run, weights_list, sample):
    from weightlab import data
    from weightlab.backend import keras_for
    from weightlab.experiments.run import training_labels
    from weightlab.models import build
    from weightlab.train.keras_fit import evaluate, to_inputs

    dataset = data.load("synthetic")
    x, y = to_inputs(dataset.x_train)[sample], training_labels(dataset.y_train, run.config)[sample]
    return evaluate(build(run.config, keras_for("jax")), x, y, weights_list)[0]


def test_path_loss_is_the_training_loss_at_the_snapshots(run, stored):
    _, weights, land = stored
    for index in (3, 40):
        expected = sample_loss(run, [stack[index] for stack in weights.values()], land["sample_indices"])
        np.testing.assert_allclose(land["path_loss"][index], expected, rtol=1e-5)


def test_grid_loss_is_the_loss_at_the_planes_points(run, stored):
    """The three-product shortcut of the first layer gives the loss of the model at W̄ + a·d1 + b·d2."""
    flat, weights, land = stored
    _, _, directions = svd_plane(flat)
    signs = [np.sign(np.dot(land["path"][:, k], (flat - flat.mean(0)) @ directions[k])) for k in range(2)]
    for i, j in ((3, 20), (12, 12)):
        a, b = land["grid_a"][j], land["grid_b"][i]
        point = flat.mean(axis=0) + a * signs[0] * directions[0] + b * signs[1] * directions[1]
        shapes, offset, point_weights = [s.shape[1:] for s in weights.values()], 0, []
        for shape in shapes:
            size = int(np.prod(shape))
            point_weights.append(point[offset : offset + size].reshape(shape).astype(np.float32))
            offset += size
        expected = sample_loss(run, point_weights, land["sample_indices"])
        np.testing.assert_allclose(land["grid_loss"][i, j], expected, rtol=1e-4)


def test_the_whole_model_route_agrees_with_the_shortcut(run):
    from weightlab.backend import keras_for
    from weightlab.evaluation import landscape
    from weightlab.models import build

    rng = np.random.default_rng(3)
    model = build(run.config, keras_for("jax"))
    mean = [np.asarray(v.value) for v in model.trainable_variables]
    first, second = ([rng.normal(size=w.shape).astype(np.float32) * 0.01 for w in mean] for _ in range(2))
    points = rng.normal(size=(7, 2)).astype(np.float32)
    x, y = rng.random((50, 784)).astype(np.float32), rng.integers(0, 10, 50)

    def grid(kind):
        return landscape._grid_program(
            model, kind, landscape._arguments(model, kind, mean, first, second, points, x, y)
        )()

    np.testing.assert_allclose(grid("dense-first"), grid("whole"), rtol=1e-5)
    np.testing.assert_allclose(
        landscape._grid_by_loop(model, mean, first, second, points, x, y), grid("whole"), rtol=1e-5
    )


def test_a_proof_draws_both_paths_of_its_first_seed_in_one_plane(tmp_path):
    from weightlab.experiments.prove import prove
    from weightlab.store import read_run

    proof = prove(dataset="synthetic", epochs=1, hidden=8, seeds=2, out=tmp_path, report=False)
    entry = proof.result["landscape"]
    assert entry["file"] == "landscape.npz" and entry["seed"] == 0
    with np.load(proof.path / entry["file"]) as archive:
        land = {key: archive[key] for key in archive.files}
    flats = []
    for name in ("trained", "shuffled_labels"):
        steps, _, weights = read_run(proof.path / "runs" / entry["runs"][name]).snapshots()
        assert np.array_equal(land[f"steps_{name}"], steps)
        flats.append(np.concatenate([s.reshape(len(steps), -1) for s in weights.values()], axis=1).astype(np.float64))
    ratio, path, _ = svd_plane(np.concatenate(flats))
    np.testing.assert_allclose(land["explained_variance_ratio"], ratio, rtol=1e-6)
    both = np.concatenate([land["path_trained"], land["path_shuffled_labels"]])
    assert_same_up_to_sign(both, path, rtol=1e-5, atol=1e-6)
    # on the true labels, only the trained path goes downhill: moving is not improving
    assert land["path_loss_trained"][-1] < land["path_loss_shuffled_labels"][-1] - 0.3


def test_a_comparisons_variants_share_their_snapshot_steps(tmp_path):
    from weightlab.experiments.compare import compare
    from weightlab.store import read_run

    result = compare(dataset="synthetic", epochs=1, seeds=1, values=[4, 8], out=tmp_path, report=False).result
    replay = result["replay"]
    assert replay["aligned_by"] == "step" and len(replay["snapshot_steps"]) == 48
    (comparison,) = tmp_path.iterdir()
    for variant in result["variants"]:
        steps, _, _ = read_run(comparison / "runs" / variant["runs"][0]).snapshots()
        assert steps.tolist() == replay["snapshot_steps"]
