"""A saved ``.keras`` model: loaded in Keras's safe mode, trained from its own weights.

Safe mode refuses anything in the file that would run code when loaded (a ``Lambda`` layer's
pickled function, say); weightlab turns that refusal into one line. The file's weights are
W₀: nothing is re-initialised. A model saved compiled keeps its optimizer's settings and its
loss (with a fresh optimizer state: training starts at step 0); one saved uncompiled is
compiled as the tutorial compiles its network.
"""

from __future__ import annotations

import math
import os

from weightlab.config import RunConfig
from weightlab.errors import ConfigError


def load(config: RunConfig, shape, keras):
    """The model in ``config.model``, compiled, checked against the data's example shape and classes."""
    path = config.model
    if not os.path.isfile(path):
        raise ConfigError(f"--model {path}: no such file; pass a model saved with model.save('….keras')")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError… for a file it cannot or will not load
        reason = " ".join(str(error).split())[:200]
        if "safe_mode" in reason or "Lambda" in reason:
            raise ConfigError(
                f"--model {path} holds code that would run when it is loaded (e.g. a Lambda layer), so safe mode refused it; "
                "rebuild the model from built-in layers and save it again"
            ) from error
        raise ConfigError(
            f"--model {path} cannot be loaded as a Keras model ({reason}); save it with model.save('….keras')"
        ) from error
    _check_fits(model, shape, path)
    from weightlab.models import compile_as_tutorial

    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        compile_as_tutorial(model, config, keras)
    else:  # the file's settings, with a fresh state: a saved optimizer may have stepped before
        own = model.optimizer
        model.compile(optimizer=type(own).from_config(own.get_config()), loss=model.loss, metrics=["accuracy"])
    return model


def _check_fits(model, shape, path: str) -> None:
    """Raise ConfigError unless the model takes one example of the data and has an output per class."""
    from weightlab.models import input_shape

    expects = input_shape(model)
    if None in expects or math.prod(expects) != shape.features:
        raise ConfigError(
            f"--model {path} takes inputs of shape {expects}, but the data's examples have shape {shape.example_shape}; "
            "pass data the model was built for"
        )
    outputs = model.output_shape
    if isinstance(outputs, list) or outputs[-1] is None or outputs[-1] < shape.classes:
        raise ConfigError(
            f"--model {path} has outputs of shape {outputs}, but the data has {shape.classes} classes; "
            "the model needs one output per class"
        )
