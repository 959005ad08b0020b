"""A model's outputs on a set of examples, and its loss per example, as programs shared per architecture (JAX).

`model.predict` and `model.evaluate` compile new functions for every model object (0.2–0.4 s
each), and the loss applied op by op loads a program per operation (≈40 ms the first time,
measured): runs of one architecture share these two, compiled once, or ahead while they train
(`experiments.ahead`).
"""

from __future__ import annotations

import numpy as np

from weightlab.programs import PROGRAMS, architecture_key


def on_device(x: np.ndarray):
    """``x`` copied to the device once, for several evaluations on it (on JAX; elsewhere ``x`` as it is).

    A run's test set is 31 MB: each evaluation copying it again cost ≈10 ms (measured), three times a run."""
    import keras

    if keras.backend.backend() != "jax":
        return x
    import jax

    return jax.device_put(x)  # a transfer; ``jnp.asarray`` would compile a program per shape to stage it


def predict(model, x: np.ndarray) -> np.ndarray:
    """The output probabilities (n, classes) of a model without non-trainable state, in one stateless call."""
    import jax

    return np.asarray(_predictor(model, jax.device_put(x))())


def example_loss_values(model, labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """The model's own compiled loss (`keras_fit.example_losses`) of each example."""
    return np.asarray(_losses(model, labels, outputs)())


def compile_ahead(model, x: np.ndarray, labels: np.ndarray) -> None:
    """Compile (or load) the programs `predict` and `example_loss_values` will run for ``model`` on (x, labels)."""
    import jax

    outputs = _predictor(model, jax.ShapeDtypeStruct(np.shape(x), np.float32)).out_info
    _losses(model, labels, jax.ShapeDtypeStruct(outputs.shape, outputs.dtype))


def _predictor(model, x):
    import jax

    arguments = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], x)

    def build():
        return jax.jit(
            lambda trainable, fixed, inputs: model.stateless_call(trainable, fixed, inputs, training=False)[0]
        )

    return _Bound(PROGRAMS.compiled(("predict", architecture_key(model)), build, arguments), arguments)


def _losses(model, labels, outputs):
    import jax

    from weightlab.train.keras_fit import example_losses

    arguments = (labels, outputs)
    compiled = PROGRAMS.compiled(("losses", architecture_key(model)), lambda: jax.jit(example_losses(model)), arguments)
    return _Bound(compiled, arguments)


class _Bound:
    """A compiled program and its arguments: called with none; ``out_info`` its outputs' shapes."""

    def __init__(self, compiled, arguments: tuple):
        self.compiled, self.arguments = compiled, arguments
        self.out_info = compiled.out_info

    def __call__(self):
        return self.compiled(*self.arguments)
