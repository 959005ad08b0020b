"""What a model's outputs mean to weightlab: class probabilities or logits, and whether its loss can score class labels.

Keras is imported inside the functions: importing `weightlab.models` must not start a backend.
"""

from __future__ import annotations

import numpy as np


def cannot_score_labels(model, classes: int) -> str | None:
    """Why the model cannot be scored on integer class labels, in words; None when it can.

    Tried on two examples before anything trains (or is analysed): a loss that wants one-hot
    labels (categorical cross-entropy), targets of the outputs' shape (mean squared error), or
    one output for two classes (a sigmoid) would otherwise fail deep inside the run; outputs that
    are not probabilities (logits) under a loss that reads probabilities would train on nonsense.
    """
    import keras

    from weightlab.models import input_shape
    from weightlab.train.keras_fit import example_losses

    labels = np.arange(2, dtype=np.int32) % max(classes, 1)
    inputs = np.random.default_rng(0).normal(size=(2, *input_shape(model))).astype(np.float32)
    try:
        outputs = model(inputs, training=False)
        example_losses(model)(labels, outputs)
    except Exception as error:  # Keras raises ValueError or a backend's own error for shapes that do not fit
        reason = " ".join(str(error).split())[:160]
        return (
            f"its loss cannot score class labels (integers from 0) against its outputs ({reason}); "
            "compile it with sparse_categorical_crossentropy and one output per class"
        )
    outputs = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float64)
    sums = outputs.sum(axis=-1)  # within 0.02 of 1: bfloat16 rounds a softmax's sum by ≈0.01
    if not takes_logits(model) and (outputs.min() < 0 or outputs.max() > 1 or np.abs(sums - 1).max() > 0.02):
        return (
            f"its outputs are not class probabilities (two examples' sum to {', '.join(f'{v:.3g}' for v in sums)}) "
            "but its loss reads them as such; end the model with a softmax, or compile it with a loss given from_logits=True"
        )
    return None


def takes_logits(model) -> bool:
    """Whether the model's compiled loss reads its outputs as logits (``from_logits=True``), not probabilities."""
    import keras

    loss = model.loss
    return isinstance(loss, keras.losses.Loss) and bool(loss.get_config().get("from_logits", False))


def as_probabilities(model, outputs: np.ndarray) -> np.ndarray:
    """The model's outputs as class probabilities: softmax of them where its loss takes logits, else as they are.

    Only what is shown and stored as probabilities (predictions' confidence, the replay's panel)
    goes through this; losses and accuracies are computed from the outputs themselves.
    """
    outputs = np.asarray(outputs)
    if not takes_logits(model):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
