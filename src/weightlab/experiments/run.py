"""`weightlab run`: the tutorial's experiment, measured and stored.

    config -> data.load -> models.build -> evaluate (before) -> fit with WeightTracker
           -> evaluate (after) -> analysis -> RunWriter -> Run
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

import weightlab
from weightlab import data, models
from weightlab.analysis.inputs import frozen_inputs
from weightlab.analysis.weights import layer_changes
from weightlab.backend import keras_for, set_random_seed
from weightlab.config import RunConfig
from weightlab.errors import ConfigError
from weightlab.store import FORMAT_VERSION, Run, RunWriter, dumps, new_run_id

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


def run(
    config: RunConfig | None = None,
    *,
    out: str | Path = "runs",
    data_dir: str | Path | None = None,
    progress=None,
    report: bool = True,
    run_id: str | None = None,
    **overrides,
) -> Run:
    """Train the tutorial's model as ``config`` (plus ``overrides``) says and store everything in a run directory.

    ``progress(steps_done, steps_total, epoch_logs_or_None)`` is called during training;
    ``report=False`` leaves out report.html (`weightlab report` renders it later); ``run_id``
    names the directory (default: time, config and a random suffix).
    Returns the stored `Run`.
    """
    config = dataclasses.replace(config or RunConfig(), **overrides).resolved()
    keras = keras_for(config.backend)
    from weightlab.train.keras_fit import evaluate, predict, to_inputs

    dataset = data.load(config.dataset, data_dir=data_dir)
    fit_samples = len(dataset.x_train) - int(len(dataset.x_train) * config.validation_split)
    if config.batch_size > fit_samples:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {fit_samples} training samples; pass a smaller --batch-size")

    with RunWriter(out, run_id or new_run_id(config)) as writer:
        set_random_seed(keras, config.seed)
        model = models.build(config, keras)
        x_train, x_test = to_inputs(dataset.x_train), to_inputs(dataset.x_test)
        y_train = training_labels(dataset.y_train, config)
        fitted = training_path(model, config).fit(model, x_train, y_train, config, progress=progress)
        tracked = fitted.tracked
        initial, final = tracked.initial(), tracked.final()
        # "Before" is measured after training, on the initial weights the tracker kept:
        # an evaluate() before fit() would shift the random stream Keras shuffles with,
        # and the training would no longer be the tutorial's script, step for step.
        loss_after, accuracy_after = evaluate(model, x_test, dataset.y_test)
        loss_before, accuracy_before = evaluate(model, x_test, dataset.y_test, weights=list(initial.values()))
        model.set_weights(list(final.values()))
        probabilities = predict(model, x_test)
        first_kernel = tracked.variable_names[0]
        summary = {
            "format_version": FORMAT_VERSION,
            "status": "complete",
            "run_id": writer.run_id,
            "weightlab_version": weightlab.__version__,
            "backend": config.backend,
            "training_path": fitted.path,
            "dataset": config.dataset,
            "dataset_source": dataset.source,
            "data_seconds": dataset.seconds,
            "config": config.to_dict(),
            "parameters": models.parameter_count(config),
            "samples": {"train": fit_samples, "validation": len(dataset.x_train) - fit_samples, "test": len(dataset.x_test)},
            "test_accuracy_before": accuracy_before,
            "test_loss_before": loss_before,
            "test_accuracy_after": accuracy_after,
            "test_loss_after": loss_after,
            "train_seconds": fitted.train_seconds,
            "steps": fitted.steps,
            "history": fitted.history,
            "layers": layer_changes(initial, final),
            "frozen_inputs": frozen_inputs(dataset.x_train[:fit_samples], initial[first_kernel], final[first_kernel]),
            "weight_samples": weight_samples(initial, final),
        }
        busiest = summary["frozen_inputs"]["busiest_pixel_index"]
        summary["moved_sample"] = {
            "variable": first_kernel,
            "row": busiest,
            "before": initial[first_kernel][busiest, :SAMPLE_WIDTH],
            "after": final[first_kernel][busiest, :SAMPLE_WIDTH],
        }

        writer.write_json("config.json", {"format_version": FORMAT_VERSION, "config": config.to_dict(), "dataset_source": dataset.source, "versions": versions(keras)})
        writer.write_history(fitted.history, fitted.epoch_seconds)
        writer.write_steps(tracked)
        writer.write_predictions(dataset.y_test, probabilities)
        writer.write_snapshots(tracked, {"backend": config.backend, "dataset": config.dataset, "config": dumps(config.to_dict())})
        writer.write_json("summary.json", summary)
        if report:
            from weightlab.report.html import write_report

            write_report(writer.temp, dataset=dataset)
        path = writer.commit()
    return Run(path=path, config=config, summary=json.loads(dumps(summary)))


def training_labels(labels: np.ndarray, config: RunConfig) -> np.ndarray:
    """The labels training sees: as given, or for the shuffled-labels control permuted once.

    The permutation has its own generator, so the initialisation and data order stay those
    of the unshuffled run with the same seed: the two runs differ in the labels alone.
    """
    if not config.shuffle_labels:
        return labels
    return labels[np.random.default_rng([config.seed, 0x5EED]).permutation(len(labels))]


def training_path(model, config: RunConfig):
    """The module that trains ``model``: the fused JAX loop where it applies, else model.fit."""
    from weightlab.train import keras_fit

    if config.training_path == "keras.fit" or config.backend != "jax":
        return keras_fit
    from weightlab.train import fused_jax

    if fused_jax.applies(model, config):
        return fused_jax
    if config.training_path == "fused-jax":
        raise ConfigError("this model has non-trainable state the fused-jax path does not drive; pass --training-path keras.fit")
    return keras_fit


def weight_samples(initial: dict[str, np.ndarray], final: dict[str, np.ndarray]) -> list[dict]:
    """The tutorial's printout: ``kernel[0][:5]`` of each layer, before and after training."""
    return [
        {"variable": name, "shape": list(initial[name].shape), "before": initial[name][0, :SAMPLE_WIDTH], "after": final[name][0, :SAMPLE_WIDTH]}
        for name in initial
        if initial[name].ndim == 2
    ]
