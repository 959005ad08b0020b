"""Choosing and starting the Keras backend, once per process.

Keras reads ``KERAS_BACKEND`` when it is first imported and cannot switch afterwards, so
the choice is made here, before any import of keras, and checked against a keras that
someone (a notebook, a test) has already imported.
"""

from __future__ import annotations

import os
import sys

from weightlab.config import resolve_backend
from weightlab.errors import ConfigError


def keras_for(backend: str | None):
    """The keras module, running on ``backend`` (resolved as in `resolve_backend`)."""
    backend = resolve_backend(backend)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise ConfigError(
                f"keras is already running on {keras.backend.backend()} in this process; "
                f"start a new process (or set KERAS_BACKEND={backend} before importing keras) to use {backend}"
            )
        return keras
    if backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as error:
            raise ConfigError("the torch backend needs PyTorch: pip install 'weightlab[torch]'") from error
    os.environ["KERAS_BACKEND"] = backend
    # TensorFlow's C++ start-up chatter is not the user's business.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def compile_function(keras, function):
    """``function`` compiled for the running backend: one dispatch per call instead of one per op."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True)
    if backend == "torch":
        import torch

        return torch.no_grad()(function)
    return function
