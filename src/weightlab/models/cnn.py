"""A small LeNet-style convnet: two Conv2D+ReLU+MaxPool blocks, Dense, softmax.

Sized for MNIST on two CPU cores: 3×3 kernels, 16 then 32 filters, "valid" padding
(28 -> 26 -> 13 -> 11 -> 5), then Dense(64) on the 800 features: ≈57,000 parameters.
"""

from __future__ import annotations

from weightlab.errors import ConfigError

FILTERS = (16, 32)
KERNEL = 3
# The smallest image side the two blocks accept: each 3×3 convolution takes 2, each pooling halves.
SMALLEST_SIDE = 10


def build(widths: tuple[int, ...], shape, keras):
    """(H, W, C) images -> [Conv2D(f, 3×3, relu) -> MaxPool(2)] × 2 -> Flatten -> Dense(w, relu) per width -> softmax."""
    if not shape.is_image:
        raise ConfigError(
            f"the cnn needs images, and this dataset's examples are vectors of shape {shape.example_shape}: pass --model mlp"
        )
    image = shape.example_shape if len(shape.example_shape) == 3 else (*shape.example_shape, 1)
    if min(image[:2]) < SMALLEST_SIDE:
        raise ConfigError(
            f"the cnn needs images of at least {SMALLEST_SIDE}×{SMALLEST_SIDE} pixels, not {image[0]}×{image[1]}: pass --model mlp"
        )
    layers = [keras.Input(shape=image, name="pixels")]
    for block, filters in enumerate(FILTERS, start=1):
        layers += [
            keras.layers.Conv2D(filters, KERNEL, activation="relu", name=f"conv_{block}"),
            keras.layers.MaxPooling2D(2, name=f"pool_{block}"),
        ]
    layers.append(keras.layers.Flatten(name="flatten"))
    names = ["hidden"] if len(widths) == 1 else [f"hidden_{i}" for i in range(1, len(widths) + 1)]
    layers += [keras.layers.Dense(width, activation="relu", name=name) for width, name in zip(widths, names)]
    layers.append(keras.layers.Dense(shape.classes, activation="softmax", name="output"))
    return keras.Sequential(layers, name="cnn")
