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
import warnings

from weightlab.config import RunConfig
from weightlab.errors import ConfigError


def load(config: RunConfig, shape, keras):
    """The model in ``config.model``, compiled, checked against the data's example shape and classes."""
    path = config.model
    model = _read(path, keras)
    _check_fits(model, shape, path)
    from weightlab.models import compile_as_tutorial

    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        compile_as_tutorial(model, config, keras)
    else:  # the file's settings, with a fresh state: a saved optimizer may have stepped before
        _check_compiled(model, config, path)
        own = model.optimizer
        model.compile(optimizer=type(own).from_config(own.get_config()), loss=model.loss, metrics=["accuracy"])
    from weightlab.models.outputs import cannot_score_labels

    unscored = cannot_score_labels(model, shape.classes)
    if unscored:
        raise ConfigError(f"--model {path}: {unscored}")
    return model


def check_settings(config: RunConfig, keras) -> None:
    """Raise ConfigError now for what `load` would refuse in ``config.model`` without seeing data: a file that
    cannot be loaded, compiled settings weightlab would not honour, flags its own optimizer overrides.
    A sweep checks each of its cells' files so before any cell trains."""
    model = _read(config.model, keras)
    if getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None:
        _check_compiled(model, config, config.model)


def _read(path: str, keras):
    """The Keras model saved at ``path``, loaded in safe mode; or ConfigError saying why it cannot be."""
    if not os.path.isfile(path):
        raise ConfigError(f"--model {path}: no such file; pass a model saved with model.save('….keras')")
    try:
        with warnings.catch_warnings():  # the optimizer's saved state is not wanted: it restarts at step 0
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError… for a file it cannot or will not load
        reason = " ".join(str(error).split())[:200]
        if "safe_mode" in reason or "Lambda" in reason:
            raise ConfigError(
                f"--model {path} holds code that would run when it is loaded (e.g. a Lambda layer), so safe mode refused it; "
                "rebuild the model from built-in layers and save it again"
            ) from error
        if "Could not locate" in reason or "custom" in reason:
            raise ConfigError(
                f"--model {path} uses a custom object weightlab cannot import ({reason[:120]}); rebuild it from "
                "built-in layers and losses, or train it in your own script with weightlab.WeightTracker"
            ) from error
        raise ConfigError(
            f"--model {path} cannot be loaded as a Keras model ({reason}); save it with model.save('….keras')"
        ) from error


def _check_compiled(model, config: RunConfig, path: str) -> None:
    """Raise ConfigError for compiled settings weightlab would not honour, or flags the file's settings would override.

    Exponential moving averages (``use_ema``) swap other weights in at the end of training than
    those the snapshots follow; ``loss_weights`` would scale the loss that training minimises
    but not the one weightlab reports. The file's optimizer is the one that trains it, so an
    optimizer or learning rate given on the command line would be recorded but not used.
    """
    optimizer, settings = model.optimizer, model.get_compile_config() or {}
    if optimizer.use_ema:
        raise ConfigError(
            f"--model {path} was compiled with an optimizer that keeps moving averages (use_ema=True), whose weights "
            "replace the trained ones at the end; compile it with use_ema=False and save it again"
        )
    if settings.get("loss_weights") not in (None, 1, 1.0):
        raise ConfigError(
            f"--model {path} was compiled with loss_weights={settings['loss_weights']!r}; weightlab reports the model's "
            "own loss, unweighted: compile it without loss_weights (or fold the weight into the learning rate)"
        )
    defaults = RunConfig()
    if (config.optimizer, config.learning_rate) != (defaults.optimizer, defaults.learning_rate):
        raise ConfigError(
            f"--model {path} was saved compiled, so it trains with its own optimizer ({type(optimizer).__name__}); "
            "--optimizer and --learning-rate do not apply to it: drop them, or save the model uncompiled"
        )


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
