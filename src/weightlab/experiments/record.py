"""What a run records beside its training: config.json's record, the input analysis, the training path's reason."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

import weightlab
from weightlab import models
from weightlab.analysis.inputs import frozen_inputs
from weightlab.config import RunConfig, is_keras_file
from weightlab.store import FORMAT_VERSION

# The tutorial prints weights[0][0][:5] of each layer: row 0 of each kernel, first five columns.
SAMPLE_WIDTH = 5


def versions(keras) -> dict[str, str]:
    backend = keras.backend.backend()
    module = __import__({"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}[backend])
    return {
        "weightlab": weightlab.__version__,
        "keras": keras.__version__,
        backend: module.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def input_digests(config: RunConfig, dataset) -> dict[str, str]:
    """SHA-256 of the user's own files a run reads (a `.keras` model, an `.npz` dataset), as config.json keeps them."""
    from weightlab.data.user import file_sha256

    digests = {}
    if is_keras_file(config.model):
        digests["model_sha256"] = file_sha256(Path(config.model))
    if dataset.sha256 is not None:
        digests["dataset_sha256"] = dataset.sha256
    return digests


def config_record(keras, config: RunConfig, dataset) -> dict:
    """config.json: the config, where the data came from, the versions, and the SHA-256 of the user's files."""

    record = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "dataset_source": dataset.source,
        "versions": versions(keras),
    }
    return record | input_digests(config, dataset)


def input_analysis(model, dataset, fit_samples: int, initial: dict, final: dict, activity=None) -> dict:
    """summary.json's frozen_inputs, frozen_inputs_note and moved_sample.

    Inputs that are 0 in every training example give their weights a zero gradient only where
    each weight meets one input: a first Dense layer on the raw (flattened) inputs.
    """
    kernel, note = models.first_dense_kernel(model)
    if kernel is None or fit_samples == 0:
        note = note or "the training examples were not given, so no input's activity is known"
        return {"frozen_inputs": None, "frozen_inputs_note": note, "moved_sample": None}
    frozen = frozen_inputs(
        dataset.x_train[:fit_samples],
        initial[kernel],
        final[kernel],
        image_shape=dataset.example_shape,
        activity=activity,
    )
    busiest = frozen["busiest_pixel_index"]
    moved = {
        "variable": kernel,
        "row": busiest,
        "before": initial[kernel][busiest, :SAMPLE_WIDTH],
        "after": final[kernel][busiest, :SAMPLE_WIDTH],
    }
    return {"frozen_inputs": frozen, "frozen_inputs_note": note, "moved_sample": moved}


def training_path_reason(model, config: RunConfig, path: str) -> str:
    """Why ``model`` trains on ``path``, in words (for the summary and the terminal)."""
    from weightlab.train import fused_jax

    if path == fused_jax.TRAINING_PATH:
        return "no non-trainable state or regulariser: one compiled loop per epoch trains it as model.fit would"
    if config.training_path == "keras.fit":
        return "asked for with --training-path keras.fit"
    if config.backend != "jax":
        return f"the fused loop runs on JAX only, and this run is on {config.backend}"
    from weightlab.train import fused_program

    if fused_jax.applies(model, config) and (slower := fused_program.slower_than_fit(model)):
        return slower
    return f"the fused loop cannot drive this model: {fused_jax.why_not(model)}"
