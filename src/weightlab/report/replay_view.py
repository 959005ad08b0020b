"""One run's part of the replay: its figures (named for the page's script), its data, its static pictures."""

from __future__ import annotations

import numpy as np

from weightlab.report import png, replay_charts, replay_data
from weightlab.report.html import ReplayTrack, StaticImage
from weightlab.report.tiles import Tiling


def panel_images(inputs: np.ndarray, image_shape: tuple[int, ...] | None) -> np.ndarray | None:
    """(P, h, w) greyscale pictures of the panel's inputs, or None when inputs are not images."""
    if image_shape is None or int(np.prod(image_shape)) != int(np.prod(inputs.shape[1:])):
        return None
    images = inputs.reshape(len(inputs), *image_shape).astype(np.float64)
    return images.mean(axis=3) if images.ndim == 4 else images  # channels averaged: a panel needs only the shape


def static_pictures(tiling: Tiling, kernels: np.ndarray, label: str = "") -> tuple[StaticImage, ...]:
    """The first layer at initialisation, after training and their difference, as PNGs (for JavaScript off)."""
    first, final = tiling.mosaics(kernels[[0, -1]])
    weight_limit = replay_data.symmetric_limit(np.stack([first, final]))
    change = final - first
    scale = 2 if first.shape[1] < 400 else 1  # drawn larger by the browser (pixelated), not stored larger
    images = []
    for caption, mosaic, limit in (
        ("at initialisation", first, weight_limit),
        ("after training", final, weight_limit),
        ("difference: what training wrote", change, replay_data.symmetric_limit(change)),
    ):
        rgb = png.colourise(mosaic, -limit, limit, png.diverging())
        caption = f"{label}{tiling.variable} {caption} (±{limit:.3g})"
        images.append(StaticImage(png.data_uri(rgb), caption, mosaic.shape[1] * scale, mosaic.shape[0] * scale))
    return tuple(images)


def track(
    prefix: str,
    label: str,
    steps: np.ndarray,
    epochs: np.ndarray,
    weights: dict[str, np.ndarray],
    tiling: Tiling | None,
    evaluations: dict,
    image_shape: tuple[int, ...] | None,
    path: np.ndarray | None = None,
) -> tuple[ReplayTrack, dict]:
    """The figures of one run's replay, shown at its last snapshot, and the data that moves them."""
    payload = replay_data.replay_payload(steps, epochs, weights, tiling, evaluations)
    payload.update(prefix=prefix, path=None if path is None else np.asarray(path, np.float64).tolist())
    figures = []
    if tiling is not None:
        pictures = payload["pictures"]
        shape = (pictures["height"], pictures["width"])
        figures.append(
            replay_charts.picture(
                f"{label}{tiling.variable} now", shape, pictures["weight_limit"], f"{prefix}replay-picture-now"
            )
        )
        figures.append(
            replay_charts.picture(
                f"{label}now − initial: ±{pictures['change_limit']:.2g}, one scale for every snapshot",
                shape,
                pictures["change_limit"],
                f"{prefix}replay-picture-change",
                bar=False,
            )
        )
    for index, (name, histogram) in enumerate(payload["histograms"].items()):
        counts = histogram["counts"]
        edges = np.asarray(histogram["edges"])
        figures.append(
            replay_charts.replay_histogram(
                name, edges, np.asarray(counts[0]), np.asarray(counts[-1]), prefix, legend=index == 0
            )
        )
    if payload["panel"] is not None:
        inputs = panel_images(evaluations["panel/inputs"], image_shape)
        figures.append(
            replay_charts.panel(
                inputs, evaluations["panel/labels"].astype(int), evaluations["panel/probabilities"][-1], prefix
            )
        )
    accuracy, loss = payload["test_accuracy"], payload["test_loss"]
    shown = ReplayTrack(prefix, label, tuple(figures), accuracy[-1] if accuracy else None, loss[-1] if loss else None)
    return shown, payload
