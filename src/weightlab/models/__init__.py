"""The networks weightlab trains, as Keras 3 models: one entry, `build(config, keras, shape)`.

``config.model`` picks the builder: ``mlp`` (the tutorial's network; several hidden widths give
a deeper one), ``cnn`` (a small LeNet-style convnet) or a path to a saved ``.keras`` model,
loaded in Keras's safe mode with its own weights as W₀.
"""

from __future__ import annotations

import dataclasses
import json
import math

from weightlab.config import EXTERNAL, RunConfig, hidden_text, is_keras_file
from weightlab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DataShape:
    """What a model needs to know of its data: one example's shape as stored, and the number of classes."""

    example_shape: tuple[int, ...] = (28, 28)  # (H, W) or (H, W, C) for images, (features,) for vectors
    classes: int = 10

    @property
    def is_image(self) -> bool:
        return len(self.example_shape) >= 2

    @property
    def features(self) -> int:
        return math.prod(self.example_shape)


MNIST_SHAPE = DataShape()


def build(config: RunConfig, keras, shape: DataShape = MNIST_SHAPE):
    """The model ``config.model`` names, compiled, its initialisation drawn from the seed the caller has set.

    Built-in models are compiled as the tutorial compiles its network (``config.optimizer`` at
    ``config.learning_rate``, sparse categorical cross-entropy, accuracy); a saved model keeps
    the optimizer and loss it was compiled with, if it was.
    """
    if config.model == "mlp":
        from weightlab.models import mlp

        model = mlp.build(config.widths, shape, keras)
    elif config.model == "cnn":
        from weightlab.models import cnn

        model = cnn.build(config.widths, shape, keras)
    elif is_keras_file(config.model):
        from weightlab.models import saved

        return saved.load(config, shape, keras)
    elif config.model == EXTERNAL:
        raise ConfigError(
            "this run was trained by your own model.fit (WeightTracker.save): weightlab cannot rebuild it"
        )
    else:  # validate() admits nothing else
        raise ConfigError(f"unknown model {config.model!r}")
    compile_as_tutorial(model, config, keras)
    return model


def compile_as_tutorial(model, config: RunConfig, keras) -> None:
    model.compile(optimizer=make_optimizer(config, keras), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def make_optimizer(config: RunConfig, keras):
    classes = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
        "nadam": keras.optimizers.Nadam,
    }
    return classes[config.optimizer](learning_rate=config.learning_rate, name=config.optimizer)


def describe(config: RunConfig, shape: DataShape = MNIST_SHAPE) -> str:
    """A short description of the model: "mlp 784-64-10", "cnn" (or "cnn, dense 128x64"), or the .keras file's name."""
    if is_keras_file(config.model) or config.model == EXTERNAL:
        return config.model.rpartition("/")[2]
    if config.model == "mlp":
        return "mlp " + "-".join(map(str, [shape.features, *config.widths, shape.classes]))
    return config.model if config.widths == (64,) else f"{config.model}, dense {hidden_text(config.hidden)}"


def input_shape(model) -> tuple[int, ...]:
    """The shape of one example as ``model`` takes it (its input shape without the batch axis)."""
    shape = model.input_shape
    if isinstance(shape, list):  # several inputs: weightlab feeds one array
        raise ConfigError(f"the model has {len(shape)} inputs; weightlab trains models with one input array")
    return tuple(int(n) for n in shape[1:])


def compile_settings(model) -> dict:
    """The optimizer and loss ``model`` was compiled with, as JSON-ready values."""
    optimizer = model.optimizer
    rate = optimizer.get_config()["learning_rate"]  # a number, or a schedule's serialised form
    if isinstance(rate, dict):
        rate = (
            f"{rate.get('class_name', 'schedule')}({json.dumps(rate.get('config', {}), sort_keys=True, default=str)})"
        )
    else:
        rate = float(rate)
    loss = model.loss
    return {
        "optimizer": type(optimizer).__name__,
        "learning_rate": rate,
        "loss": loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__),
    }


# Layers that pass inputs through unchanged in value (only reshaped): a Dense after them still sees raw inputs.
_PASS_THROUGH = ("InputLayer", "Flatten", "Reshape")


def first_dense_kernel(model) -> tuple[str | None, str | None]:
    """(the model-relative name of the first layer's kernel, None) where that layer is a Dense layer
    on the raw, flattened inputs; else (None, why "inputs that can never move their weights" does not apply)."""
    from weightlab.train.tracker import variable_names

    features = math.prod(input_shape(model))
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _PASS_THROUGH:
            continue
        if kind == "Dense" and layer.kernel.shape[0] == features:
            if not layer.trainable:  # its kernel is not recorded: no weight of it moves, for any input
                return None, f"the first layer, {layer.name}, is frozen (trainable=False): none of its weights move"
            if getattr(layer, "lora_enabled", False):  # its kernel is frozen; LoRA's two factors train beside it
                return None, (
                    f"the first layer, {layer.name}, trains LoRA's low-rank factors beside a frozen kernel: "
                    "no weight of the kernel moves, for any input"
                )
            return variable_names(model, [layer.kernel])[0], None
        if kind in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D"):
            return None, (
                f"the first layer, {layer.name}, is a convolution: each kernel weight meets every input position, "
                "so an input that is never active does not hold any weight still"
            )
        return None, (
            f"the first layer, {layer.name} ({kind}), is not a Dense layer on the raw inputs, "
            "so no weight belongs to one input alone"
        )
    return None, "the model has no layer with weights"
