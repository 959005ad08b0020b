"""The controls that turn "the weights changed" into "training optimised them". Pure numpy.

Weights are dicts name -> array ("hidden/kernel"), as stored in a run's snapshots.
"""

from __future__ import annotations

import numpy as np

Weights = dict[str, np.ndarray]


def interpolate(w0: Weights, w1: Weights, alpha: float) -> Weights:
    """W_0 + α (W_T − W_0), per variable: α = 0 is the initialisation, α = 1 the trained weights."""
    return {name: (w0[name] + np.float32(alpha) * (w1[name] - w0[name])).astype(np.float32) for name in w0}


def random_step(w0: Weights, w1: Weights, rng: np.random.Generator) -> Weights:
    """W_0 plus, per variable, a uniformly random direction scaled to ‖W_T − W_0‖.

    The step has the trained step's length in every variable; only its direction is random.
    """
    stepped = {}
    for name in w0:
        direction = rng.standard_normal(w0[name].shape)
        length = np.linalg.norm((w1[name] - w0[name]).astype(np.float64))
        norm = np.linalg.norm(direction)
        stepped[name] = (w0[name] + (length / norm if norm > 0 else 0.0) * direction).astype(np.float32)
    return stepped


def undo_layer(w0: Weights, w1: Weights, layer: str) -> Weights:
    """The trained weights with every variable of ``layer`` reset to its initial value."""
    return {name: (w0[name] if name.rpartition("/")[0] == layer else w1[name]) for name in w1}


def layers_of(weights: Weights) -> list[str]:
    """Layer names in order of first appearance ("hidden/kernel" -> "hidden")."""
    return list(dict.fromkeys(name.rpartition("/")[0] for name in weights))


def row_change_map(w0_kernel: np.ndarray, w1_kernel: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """‖ΔW[i, :]‖ for each input i of a first-layer kernel (inputs, units), laid out as the image."""
    change = w1_kernel.astype(np.float64) - w0_kernel.astype(np.float64)
    return np.sqrt(np.sum(change * change, axis=1)).reshape(image_shape)


def rises(values) -> list[int]:
    """Indices i where values[i + 1] > values[i]: where a curve that should fall does not."""
    values = np.asarray(values, dtype=np.float64)
    return [int(i) for i in np.nonzero(np.diff(values) > 0)[0]]


def rank_correlation(a, b) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks (ties get their mean rank)."""

    def ranks(x):
        x = np.asarray(x, dtype=np.float64).ravel()
        order = np.argsort(x, kind="mergesort")
        ranked = np.empty(len(x))
        ranked[order] = np.arange(len(x))
        for value in np.unique(x):  # average ranks of ties
            tied = x == value
            if tied.sum() > 1:
                ranked[tied] = ranked[tied].mean()
        return ranked

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")
