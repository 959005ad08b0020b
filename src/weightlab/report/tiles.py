"""The first layer as pictures: each unit's (or filter's) incoming weights as a tile, tiles in a grid.

A Dense layer on image inputs gets one H×W tile per unit; a Conv2D layer one kh×kw tile per
filter. Channels sit side by side within a tile. Anything else (flat features, a deeper first
layer) has no picture, and the report shows histograms and norms instead.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MNIST_IMAGE = (28, 28)


def image_shape(summary: dict, first_kernel_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape of one input as an image, or None for non-image data.

    ``summary["image_shape"]`` says it where present; runs written before that key existed are
    the tutorial's MNIST MLP, whose 784 inputs are a 28×28 image.
    """
    if "image_shape" in summary:
        return tuple(summary["image_shape"]) if summary["image_shape"] else None
    return MNIST_IMAGE if len(first_kernel_shape) == 2 and first_kernel_shape[0] == 784 else None


@dataclasses.dataclass(frozen=True)
class Tiling:
    """How a stack of first-layer kernels (n, *kernel_shape) becomes a stack of mosaics (n, H, W)."""

    variable: str
    kind: str  # "dense" (units as input images) or "conv" (filters as small kernels)
    tile_height: int
    tile_width: int
    channels: int
    units: int
    columns: int

    @property
    def rows(self) -> int:
        return -(-self.units // self.columns)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows * (self.tile_height + 1) - 1, self.columns * (self.tile_width * self.channels + 1) - 1

    def tiles(self, kernels: np.ndarray) -> np.ndarray:
        """(n, units, tile_height, tile_width × channels): one picture per unit, channels side by side."""
        kernels = np.asarray(kernels)
        n = kernels.shape[0]
        if self.kind == "dense":  # (n, inputs, units) -> (n, units, h, w, c)
            per_unit = np.moveaxis(kernels, 2, 1).reshape(
                n, self.units, self.tile_height, self.tile_width, self.channels
            )
        else:  # (n, kh, kw, c, filters) -> (n, filters, kh, kw, c)
            per_unit = np.moveaxis(kernels, 4, 1)
        return np.moveaxis(per_unit, 4, 3).reshape(n, self.units, self.tile_height, self.channels * self.tile_width)

    def mosaics(self, kernels: np.ndarray) -> np.ndarray:
        """(n, H, W) float32: the tiles in a grid, one-pixel NaN gutters between them."""
        tiles = self.tiles(kernels)
        n, height, width = tiles.shape[0], self.tile_height, self.tile_width * self.channels
        grid = np.full((n, self.rows * self.columns, height + 1, width + 1), np.nan, dtype=np.float32)
        grid[:, : self.units, :height, :width] = tiles
        grid = grid.reshape(n, self.rows, self.columns, height + 1, width + 1).transpose(0, 1, 3, 2, 4)
        full = grid.reshape(n, self.rows * (height + 1), self.columns * (width + 1))
        return full[:, :-1, :-1]

    def unit_at(self, row: int, column: int) -> int | None:
        """Which unit the mosaic pixel (row, column) belongs to (None in a gutter)."""
        r, rr = divmod(row, self.tile_height + 1)
        c, cc = divmod(column, self.tile_width * self.channels + 1)
        unit = r * self.columns + c
        return unit if rr < self.tile_height and cc < self.tile_width * self.channels and unit < self.units else None


def first_layer_tiling(summary: dict, weights: dict[str, np.ndarray]) -> Tiling | None:
    """The tiling of the first kernel (the first variable with two or more axes), or None if it is no picture."""
    kernel_name = next((name for name, stack in weights.items() if stack.ndim >= 3), None)
    if kernel_name is None:
        return None
    kernel_shape = weights[kernel_name].shape[1:]
    if len(kernel_shape) == 4:  # Conv2D: (kh, kw, in_channels, filters)
        kh, kw, channels, filters = kernel_shape
        return Tiling(kernel_name, "conv", kh, kw, channels, filters, _columns(filters))
    shape = image_shape(summary, kernel_shape)
    if len(kernel_shape) != 2 or shape is None or math.prod(shape) != kernel_shape[0]:
        return None
    height, width = shape[:2]
    channels = shape[2] if len(shape) > 2 else 1
    return Tiling(kernel_name, "dense", height, width, channels, kernel_shape[1], _columns(kernel_shape[1]))


def _columns(units: int) -> int:
    """Close to a square grid, at most 16 tiles wide."""
    return max(1, min(16, math.ceil(math.sqrt(units))))
