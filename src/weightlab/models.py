"""The tutorial's network and its variants, as Keras 3 models."""

from __future__ import annotations

from weightlab.config import RunConfig

INPUT_SIZE = 28 * 28
CLASSES = 10
# Fixed layer names: Keras's automatic ones ("dense_3") depend on what was built before.
LAYER_NAMES = ("hidden", "output")


def build(config: RunConfig, keras):
    """784 -> Dense(hidden, relu) -> Dense(10, softmax), compiled as the tutorial compiles it.

    Initialisation is Keras's default (Glorot-uniform kernels, zero biases), drawn from the
    seed the caller has set with ``keras.utils.set_random_seed``.
    """
    model = keras.Sequential(
        [
            keras.Input(shape=(INPUT_SIZE,), name="pixels"),
            keras.layers.Dense(config.hidden, activation="relu", name=LAYER_NAMES[0]),
            keras.layers.Dense(CLASSES, activation="softmax", name=LAYER_NAMES[1]),
        ],
        name="tutorial_mlp",
    )
    model.compile(
        optimizer=make_optimizer(config, keras),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


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


def parameter_count(config: RunConfig) -> int:
    return (INPUT_SIZE + 1) * config.hidden + (config.hidden + 1) * CLASSES
