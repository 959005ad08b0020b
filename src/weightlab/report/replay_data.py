"""What the replay needs, computed once in numpy and packed small enough to ship inside the page.

The first layer's pictures at every snapshot are the bulk: 48 snapshots of 64 MNIST units are
2.4 M weights. They travel as W₀ (uint8 over ±max|W₀|) plus each snapshot's W_t − W₀ as uint8
codes on a square-root scale shared by all snapshots (fine near zero, where the first steps'
small changes lie; nothing clipped), differenced along time (consecutive snapshots are alike,
which zlib then finds) and deflated; the page inflates them with the browser's own
DecompressionStream.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

from weightlab.report.tiles import Tiling

HISTOGRAM_BINS = 60
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def packed(raw: bytes) -> str:
    """base64 of the zlib-deflated bytes (the page reverses both)."""
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")  # level 6 is no smaller here, and 5× slower


def symmetric_limit(values: np.ndarray, percentile: float = 99.5) -> float:
    """A colour scale's half-width: a high percentile of |values|, so a few extreme weights do not wash out the rest."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, percentile)) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def quantised_changes(mosaics: np.ndarray, scale: float) -> np.ndarray:
    """(n, H, W) uint8: c = M_t − M_0 as 127 + round(127·sign(c)·√(|c| / scale)), 0..254, gutters 127.

    The page decodes k = code − 127 as sign(k)·(k / 127)²·scale: with ``scale`` = max |c| nothing is
    clipped, and a change of 1% of the largest still gets 13 of the 127 levels."""
    change = np.nan_to_num(mosaics - mosaics[:1])
    return np.round(127 + 127 * np.sign(change) * np.sqrt(np.minimum(np.abs(change) / scale, 1.0))).astype(np.uint8)


def pictures_payload(tiling: Tiling, kernels: np.ndarray) -> dict:
    """The first layer's pictures at every snapshot, packed (see the module's docstring); rows run bottom to top,
    as Bokeh draws an image. ``change_limit`` is the shared colour scale of the change, ``change_limits`` each
    snapshot's own (for the page's "each snapshot on its own scale")."""
    mosaics = tiling.mosaics(kernels)[:, ::-1]
    changes = np.abs(mosaics - mosaics[:1]).reshape(len(mosaics), -1)
    changes[np.isnan(changes)] = 0.0  # gutters; float32 kept (percentiles of float64 copies took twice as long)
    scale = float(changes.max()) or 1.0
    own_limits = np.percentile(changes, 99.5, axis=1)
    codes = quantised_changes(mosaics, scale)
    # consecutive differences mod 256: the page restores codes with a running sum
    steps = np.diff(codes, axis=0, prepend=np.zeros_like(codes[:1]))
    initial = mosaics[0]
    initial_limit = float(np.nanmax(np.abs(initial))) or 1.0  # W₀ quantised without clipping: 0..254, gutters 255
    initial_codes = np.where(np.isnan(initial), 255, np.round(np.nan_to_num(initial) / initial_limit * 127 + 127))
    return {
        "variable": tiling.variable,
        "height": int(mosaics.shape[1]),
        "width": int(mosaics.shape[2]),
        "initial": packed(initial_codes.astype(np.uint8).tobytes()),
        "initial_limit": initial_limit,
        "changes": packed(steps.tobytes()),
        "change_scale": scale,
        "change_limit": symmetric_limit(mosaics[-1] - mosaics[0]),
        "change_limits": np.where(own_limits > 0, own_limits, 1.0).tolist(),
        "weight_limit": symmetric_limit(mosaics[[0, -1]]),
    }


def histogram_edges(stack: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Shared bin edges covering every snapshot of a variable."""
    low, high = float(stack.min()), float(stack.max())
    return np.linspace(low, high if high > low else low + 1e-6, bins + 1)


def histograms_over_time(stack: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n, bins) int: the counts of each snapshot's values in the shared, evenly spaced bins (the last bin closed)."""
    flat = stack.reshape(len(stack), -1)
    bins = len(edges) - 1
    width = (edges[-1] - edges[0]) / bins
    index = np.clip(((flat - edges[0]) / width).astype(np.int32), 0, bins - 1)
    index += (bins * np.arange(len(flat), dtype=np.int32))[:, None]
    return np.bincount(index.ravel(), minlength=bins * len(flat)).reshape(len(flat), bins)


def quantiles_over_time(stack: np.ndarray, quantiles=QUANTILES) -> np.ndarray:
    """(len(quantiles), n): each snapshot's quantiles of its values."""
    return np.quantile(stack.reshape(len(stack), -1), quantiles, axis=1)


def histograms_payload(weights: dict[str, np.ndarray]) -> dict:
    """Per variable: the shared bin edges and every snapshot's counts (the replay shows one over the initial)."""
    payload = {}
    for name, stack in weights.items():
        edges = histogram_edges(stack)
        payload[name] = {"edges": edges.tolist(), "counts": histograms_over_time(stack, edges).tolist()}
    return payload


def panel_payload(evaluations: dict) -> dict | None:
    """The panel's labels and per-snapshot probabilities (3 decimals), if the run stored a panel."""
    if "panel/probabilities" not in evaluations:
        return None
    return {
        "labels": evaluations["panel/labels"].astype(int).tolist(),
        "probabilities": np.round(evaluations["panel/probabilities"].astype(np.float64), 3).tolist(),
    }


def replay_payload(
    steps: np.ndarray, epochs: np.ndarray, weights: dict, tiling: Tiling | None, evaluations: dict
) -> dict:
    """Everything the replay moves through, keyed as the page's script reads it."""
    return {
        "steps": steps.astype(int).tolist(),
        "epochs": np.round(epochs.astype(np.float64), 3).tolist(),
        "test_accuracy": evaluations["test_accuracy"].tolist() if "test_accuracy" in evaluations else None,
        "test_loss": evaluations["test_loss"].tolist() if "test_loss" in evaluations else None,
        "pictures": pictures_payload(tiling, weights[tiling.variable]) if tiling else None,
        "histograms": histograms_payload(weights),
        "panel": panel_payload(evaluations),
    }
