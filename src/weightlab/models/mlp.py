"""The tutorial's network and its deeper variants: inputs -> Dense(w, relu) per width -> Dense(classes, softmax)."""

from __future__ import annotations


def layer_names(depth: int) -> list[str]:
    """Fixed names ("hidden", "output"; "hidden_1", "hidden_2", … when deeper): Keras's automatic
    ones ("dense_3") depend on what was built before in the process."""
    hidden = ["hidden"] if depth == 1 else [f"hidden_{i}" for i in range(1, depth + 1)]
    return [*hidden, "output"]


def build(widths: tuple[int, ...], shape, keras):
    """features -> Dense(w, relu) for each width -> Dense(classes, softmax), uncompiled.

    Initialisation is Keras's default (Glorot-uniform kernels, zero biases). The tutorial's
    network is ``widths=(64,)`` on 28×28 images: 784 -> 64 -> 10.
    """
    names = layer_names(len(widths))
    layers = [keras.Input(shape=(shape.features,), name="pixels" if shape.is_image else "features")]
    layers += [keras.layers.Dense(width, activation="relu", name=name) for width, name in zip(widths, names)]
    layers.append(keras.layers.Dense(shape.classes, activation="softmax", name=names[-1]))
    return keras.Sequential(layers, name="tutorial_mlp" if len(widths) == 1 else "mlp")
