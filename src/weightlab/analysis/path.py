"""The training path in the plane that holds most of it: PCA of the snapshots, by the n × n Gram matrix.

Each snapshot is all trainable weights flattened and concatenated, a point W_i in R^P. Centred
over the n snapshots (as sklearn's PCA centres the rows W_i − W̄), the principal directions are
d_k = Σ_i v_ik (W_i − W̄) / √λ_k, where (λ_k, v_k) are the eigenpairs of the centred Gram
matrix C = J G J, G_ij = (W_i − W_0)·(W_j − W_0), J = I − 11ᵀ/n. Since n ≪ P this is an n × n
eigenproblem instead of an SVD of an n × P matrix; the coordinates of the path are
(W_i − W̄)·d_k = √λ_k v_ik and the explained-variance ratios λ_k / Σλ.

The snapshots are read in slabs of rows of one variable across all snapshots (at most
`SLAB_BYTES` at a time), so the weights never have to fit in memory together. Pure numpy: a
store is anything with ``count``, ``shapes()`` and ``rows(position, start, stop)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SLAB_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True, eq=False)
class PathPlane:
    """The top two principal directions of a path of n snapshots."""

    explained_variance_ratio: np.ndarray  # (2,) λ_k / Σλ
    path: np.ndarray  # (n, 2) each snapshot's coordinates (W_i − W̄)·d_k
    coefficients: np.ndarray  # (n, 2) d_k = Σ_i coefficients[i, k] · W_i (unit vectors)


def _slabs(snapshots, budget: int = SLAB_BYTES):
    """(variable position, first row, last row + 1, the rows of every snapshot as an (n, m) float64 array)."""
    for position, shape in enumerate(snapshots.shapes()):
        if not shape:  # a scalar variable
            yield position, 0, 1, np.asarray(snapshots.rows(position, 0, 1), np.float64).reshape(snapshots.count, 1)
            continue
        row_size = int(np.prod(shape[1:]))
        rows = max(1, budget // (8 * snapshots.count * max(row_size, 1)))
        for start in range(0, shape[0], rows):
            stop = min(start + rows, shape[0])
            slab = np.asarray(snapshots.rows(position, start, stop), dtype=np.float64)
            yield position, start, stop, slab.reshape(snapshots.count, -1)


def gram_matrix(snapshots) -> np.ndarray:
    """(n, n) G_ij = (W_i − W_0)·(W_j − W_0) over all variables, in float64, in one pass over the snapshots.

    Measured from W_0 rather than from the origin: the path's extent is small next to ‖W‖, and
    differences keep the digits that centring would otherwise cancel.
    """
    gram = np.zeros((snapshots.count, snapshots.count))
    for _, _, _, slab in _slabs(snapshots):
        moved = slab - slab[:1]
        gram += moved @ moved.T
    return gram


def principal_plane(gram: np.ndarray) -> PathPlane:
    """The top two principal directions from the Gram matrix (see the module's docstring).

    Each direction's sign is chosen so that the path ends at a larger coordinate than it starts.
    A direction with no variance (fewer than three snapshots, a straight path) gets zero coefficients.
    """
    n = len(gram)
    centring = np.eye(n) - 1.0 / n
    centred = centring @ gram @ centring
    values, vectors = np.linalg.eigh((centred + centred.T) / 2)
    order = np.argsort(values)[::-1][:2]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    if len(values) < 2:
        values, vectors = np.append(values, 0.0), np.column_stack([vectors, np.zeros(n)])
    total = max(float(np.trace(centred)), 0.0)
    usable = values > 1e-12 * max(total, np.finfo(float).tiny)
    roots = np.sqrt(np.where(usable, values, 1.0))
    path = np.where(usable, vectors * roots, 0.0)
    coefficients = np.where(usable, vectors / roots, 0.0)
    signs = np.where(path[-1] < path[0], -1.0, 1.0)
    return PathPlane(
        explained_variance_ratio=np.where(usable, values / total, 0.0) if total > 0 else np.zeros(2),
        path=path * signs,
        coefficients=coefficients * signs,
    )


def combine(snapshots, coefficients: np.ndarray) -> list[np.ndarray]:
    """Per variable, the (c, *shape) float32 combinations Σ_i coefficients[i, j] · W_i, in one pass over the snapshots."""
    coefficients = np.asarray(coefficients, dtype=np.float64)
    out = [np.zeros((coefficients.shape[1], *shape), dtype=np.float32) for shape in snapshots.shapes()]
    for position, start, stop, slab in _slabs(snapshots):
        combined = coefficients.T @ slab
        target = out[position]
        if target.ndim == 1:
            target[:] = combined[:, 0]
        else:
            target[:, start:stop] = combined.reshape((len(combined), stop - start) + target.shape[2:])
    return out


def grid_axes(coordinates: np.ndarray, points: int = 25, margin: float = 0.25) -> np.ndarray:
    """``points`` evenly spaced values spanning ``coordinates`` plus ``margin`` of their range on each side."""
    low, high = float(np.min(coordinates)), float(np.max(coordinates))
    spread = high - low if high > low else 1.0
    return np.linspace(low - margin * spread, high + margin * spread, points)
