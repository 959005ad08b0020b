"""A small generated stand-in for MNIST: same shapes and dtypes, ten classes, no download.

Each class is a fixed pattern of thick strokes; each image is its class's pattern shifted by
up to two pixels with random intensity. The two-pixel border is black in every image, like
MNIST's, so the "weights that cannot move" analysis has something to find here too.
"""

from __future__ import annotations

import numpy as np

_SIZE = 28
_BORDER = 2
_MAX_SHIFT = 2


def _class_templates(rng: np.random.Generator, classes: int) -> np.ndarray:
    templates = np.zeros((classes, _SIZE, _SIZE), dtype=np.float32)
    low, high = _BORDER + _MAX_SHIFT, _SIZE - _BORDER - _MAX_SHIFT
    for template in templates:
        for _ in range(3):
            (r0, c0), (r1, c1) = rng.integers(low, high - 1, size=(2, 2))
            for t in np.linspace(0.0, 1.0, 40):
                r, c = round(r0 + t * (r1 - r0)), round(c0 + t * (c1 - c0))
                template[r : r + 2, c : c + 2] = 1.0
    return templates


def generate(n_train: int = 2400, n_test: int = 600, seed: int = 20261124) -> dict[str, np.ndarray]:
    """Arrays in the keras mnist.npz layout: uint8 images (n, 28, 28), uint8 labels (n,)."""
    rng = np.random.default_rng(seed)
    templates = _class_templates(rng, classes=10)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        shifts = rng.integers(-_MAX_SHIFT, _MAX_SHIFT + 1, size=(count, 2))
        brightness = rng.uniform(0.5, 1.0, size=(count, 1, 1)).astype(np.float32)
        images = np.stack(
            [np.roll(templates[label], tuple(shift), axis=(0, 1)) for label, shift in zip(labels, shifts)]
        )
        noise = rng.uniform(0.7, 1.0, size=images.shape).astype(np.float32)
        return np.round(255 * images * brightness * noise).astype(np.uint8), labels

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
