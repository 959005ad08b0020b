"""How weights changed: pure functions over numpy arrays, each named for what it returns.

Nothing here imports Keras or matplotlib. Norms are accumulated in float64 so that the
numbers do not depend on the summation order of a float32 backend.
"""

from __future__ import annotations

import numpy as np


def l2_norm(w: np.ndarray) -> float:
    """‖w‖ = sqrt(Σ w²)."""
    w = np.asarray(w, dtype=np.float64)
    return float(np.sqrt(np.sum(w * w)))


def l2_distance(w0: np.ndarray, w1: np.ndarray) -> float:
    """‖w1 − w0‖."""
    return l2_norm(np.asarray(w1, dtype=np.float64) - np.asarray(w0, dtype=np.float64))


def relative_change(w0: np.ndarray, w1: np.ndarray) -> float:
    """‖w1 − w0‖ / ‖w0‖; NaN when ‖w0‖ = 0 (biases start at zero, so any change is infinite)."""
    norm0 = l2_norm(w0)
    return l2_distance(w0, w1) / norm0 if norm0 > 0 else float("nan")


def cosine_similarity(w0: np.ndarray, w1: np.ndarray) -> float:
    """⟨w0, w1⟩ / (‖w0‖ ‖w1‖); NaN when either is all zeros."""
    a = np.asarray(w0, dtype=np.float64).ravel()
    b = np.asarray(w1, dtype=np.float64).ravel()
    denominator = l2_norm(a) * l2_norm(b)
    return float(a @ b / denominator) if denominator > 0 else float("nan")


def frac_sign_flipped(w0: np.ndarray, w1: np.ndarray) -> float:
    """Fraction of weights whose sign strictly reversed: w0 · w1 < 0 (a zero never counts as flipped)."""
    product = np.asarray(w0, dtype=np.float64) * np.asarray(w1, dtype=np.float64)
    return float(np.mean(product < 0)) if product.size else 0.0


def unchanged_mask(w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """True where a weight is bit-identical to its initial value (compares the raw bits, so −0.0 ≠ 0.0)."""
    w0, w1 = np.ascontiguousarray(w0), np.ascontiguousarray(w1)
    if w0.shape != w1.shape or w0.dtype != w1.dtype:
        raise ValueError(f"cannot compare weights of shape {w0.shape} {w0.dtype} and {w1.shape} {w1.dtype}")
    as_bits = np.dtype(f"u{w0.dtype.itemsize}")
    return w0.view(as_bits) == w1.view(as_bits)


def frac_unchanged(w0: np.ndarray, w1: np.ndarray) -> float:
    """Fraction of weights bit-identical to their initial value."""
    mask = unchanged_mask(w0, w1)
    return float(mask.mean()) if mask.size else 0.0


def variable_change(name: str, w0: np.ndarray, w1: np.ndarray) -> dict:
    """Every change metric of one variable, as a JSON-ready dict (NaN becomes None)."""
    layer, _, variable = name.rpartition("/")
    metrics = {
        "l2_init": l2_norm(w0),
        "l2_final": l2_norm(w1),
        "l2_distance": l2_distance(w0, w1),
        "relative_change": relative_change(w0, w1),
        "cosine_to_init": cosine_similarity(w0, w1),
        "frac_sign_flipped": frac_sign_flipped(w0, w1),
        "frac_unchanged": frac_unchanged(w0, w1),
    }
    return {
        "name": name,
        "layer": layer,
        "variable": variable,
        "shape": list(np.shape(w0)),
        "size": int(np.size(w0)),
        **{key: (None if np.isnan(value) else value) for key, value in metrics.items()},
    }


def layer_changes(initial: dict[str, np.ndarray], final: dict[str, np.ndarray]) -> list[dict]:
    """`variable_change` for each variable, in the order given."""
    return [variable_change(name, initial[name], final[name]) for name in initial]
