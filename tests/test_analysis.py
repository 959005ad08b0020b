import numpy as np
import pytest

from weightlab.analysis import weights as W
from weightlab.analysis.inputs import frozen_inputs, pixel_activity


def test_norms_and_distances_match_hand_computed_values():
    w0 = np.array([[3.0, 0.0], [0.0, 4.0]], dtype=np.float32)
    w1 = np.array([[3.0, 1.0], [0.0, 4.0]], dtype=np.float32)
    assert W.l2_norm(w0) == 5.0
    assert W.l2_distance(w0, w1) == 1.0
    assert W.relative_change(w0, w1) == pytest.approx(0.2)
    # <w0, w1> = 9 + 16 = 25; |w1| = sqrt(26)
    assert W.cosine_similarity(w0, w1) == pytest.approx(25 / (5 * np.sqrt(26)))


def test_relative_change_and_cosine_are_undefined_from_zero():
    zeros, moved = np.zeros(3, np.float32), np.array([0.1, 0, 0], np.float32)
    assert np.isnan(W.relative_change(zeros, moved))
    assert np.isnan(W.cosine_similarity(zeros, moved))
    change = W.variable_change("dense/bias", zeros, moved)
    assert change["relative_change"] is None and change["cosine_to_init"] is None
    assert change["layer"] == "dense" and change["variable"] == "bias" and change["shape"] == [3]


def test_sign_flips_count_strict_reversals_only():
    w0 = np.array([1.0, -1.0, 2.0, 0.0, -3.0], dtype=np.float32)
    w1 = np.array([-1.0, -2.0, 0.0, 5.0, 3.0], dtype=np.float32)
    # reversed: index 0 and 4; a move to or from zero is not a flip
    assert W.frac_sign_flipped(w0, w1) == pytest.approx(2 / 5)


def test_unchanged_means_bit_identical():
    w0 = np.array([0.5, 0.0, 1.0, np.float32(0.1)], dtype=np.float32)
    w1 = w0.copy()
    w1[1] = -0.0  # equal as numbers, different bits: it did move through zero
    w1[2] = np.nextafter(np.float32(1.0), np.float32(2.0))  # the smallest possible step
    assert W.unchanged_mask(w0, w1).tolist() == [True, False, False, True]
    assert W.frac_unchanged(w0, w1) == 0.5
    with pytest.raises(ValueError):
        W.unchanged_mask(w0, w1[:2])


def test_metrics_against_numpy_formulas_on_random_arrays():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(7, 5)).astype(np.float32)
    w1 = (w0 + rng.normal(scale=0.3, size=w0.shape)).astype(np.float32)
    w1[2] = w0[2]
    change = W.variable_change("a/kernel", w0, w1)
    a, b = w0.astype(np.float64), w1.astype(np.float64)
    assert change["l2_distance"] == pytest.approx(np.linalg.norm(b - a))
    assert change["relative_change"] == pytest.approx(np.linalg.norm(b - a) / np.linalg.norm(a))
    assert change["cosine_to_init"] == pytest.approx((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))
    assert change["frac_sign_flipped"] == pytest.approx(np.mean(np.sign(a) != np.sign(b)))
    assert change["frac_unchanged"] == pytest.approx(5 / 35)


def test_frozen_inputs_accounts_for_never_active_pixels():
    images = np.zeros((4, 2, 3), dtype=np.uint8)
    images[:, 0, 1] = 9  # pixel (0,1) always lit
    images[0, 1, 2] = 1  # pixel (1,2) lit once
    assert pixel_activity(images).tolist() == [0, 4, 0, 0, 0, 1]
    w0 = np.arange(12, dtype=np.float32).reshape(6, 2)
    w1 = w0.copy()
    w1[1] += 1  # the busy pixel's weights moved
    w1[5, 0] += 1  # the rare pixel moved for one unit only
    report = frozen_inputs(images, w0, w1, image_shape=(2, 3))
    assert report["never_active_inputs"] == 4
    assert report["never_active_pixels"] == [[0, 0], [0, 2], [1, 0], [1, 1]]
    assert report["weights_of_never_active_inputs"] == 8
    assert report["never_active_rows_unchanged"] is True
    assert report["unchanged_weights"] == 9
    assert report["unchanged_elsewhere"] == 1
    assert report["median_activity_of_other_unchanged"] == 1.0
    assert report["busiest_pixel"] == [0, 1] and report["busiest_pixel_activity"] == 4
