"""After training: one run evaluated, analysed and written into its directory.

trained model + tracked weights -> test set (after, before) -> summary and analysis -> landscape
-> every snapshot evaluated -> report.html -> the directory committed
"""

from __future__ import annotations

import json

import numpy as np

import weightlab
from weightlab import models
from weightlab.analysis.weights import layer_changes
from weightlab.config import RunConfig
from weightlab.experiments.record import SAMPLE_WIDTH, config_record, input_analysis
from weightlab.store import FORMAT_VERSION, Run, RunWriter, dumps


def finish(
    keras,
    writer: RunWriter,
    config: RunConfig,
    dataset,
    model,
    fitted,
    report: bool,
    path_reason: str,
    x_test=None,
    x_train=None,
    x_test_device=None,
    with_landscape: bool = True,
    early: list[dict] | None = None,
) -> Run:
    """Evaluate, analyse and write one trained run; returns it stored.

    ``x_test``, ``x_train``: the inputs as the model takes them (default: the dataset's, prepared as for training);
    ``x_test_device``: ``x_test`` on the device (`outputs.on_device`), copied once for all the evaluations;
    ``early``: the scores of its first snapshots, made while it trained (`ahead.EarlyScores.of`).
    """
    from weightlab.evaluation.landscape import landscape
    from weightlab.evaluation.outputs import on_device
    from weightlab.experiments.run import training_labels  # (run imports this module)
    from weightlab.models.outputs import as_probabilities
    from weightlab.train.keras_fit import evaluate, predict, scores, set_trainable, to_inputs

    fit_samples = config.fit_samples(len(dataset.x_train))
    if x_test is None:
        x_test, x_test_device = test_inputs(dataset, model)
    if x_test_device is None:
        x_test_device = on_device(x_test)
    if x_train is None:
        x_train = to_inputs(dataset.inputs("train"), models.input_shape(model))
    tracked = fitted.tracked
    initial, final = tracked.initial(), tracked.final()
    # "Before" is measured after training, on the initial weights the tracker kept:
    # an evaluate() before fit() would shift the random stream Keras shuffles with,
    # and the training would no longer be the tutorial's script, step for step.
    probabilities = predict(model, x_test_device)  # the trained model's answers: scored, and stored as predictions
    loss_after, accuracy_after = scores(probabilities, dataset.y_test, model)
    loss_before, accuracy_before = evaluate(model, x_test_device, dataset.y_test, weights=list(initial.values()))
    set_trainable(model, list(final.values()))
    summary = {
        "format_version": FORMAT_VERSION,
        "status": "diverged" if fitted.diverged else "complete",
        "diverged": fitted.diverged,
        "run_id": writer.run_id,
        "weightlab_version": weightlab.__version__,
        "backend": config.backend,
        "training_path": fitted.path,
        "training_path_reason": path_reason,
        "dataset": config.dataset,
        "dataset_source": dataset.source,
        "data_seconds": dataset.seconds,
        "config": config.to_dict(),
        "model": models.describe(config, dataset.shape()),
        "compile": models.compile_settings(model),
        "input_shape": list(x_test.shape[1:]),
        "image_shape": dataset.image_shape,
        "classes": dataset.classes,
        "parameters": int(model.count_params()),
        "samples": {
            "train": fit_samples,
            "validation": len(dataset.x_train) - fit_samples,
            "test": len(dataset.x_test),
        },
        "test_accuracy_before": accuracy_before,
        "test_loss_before": loss_before,
        "test_accuracy_after": accuracy_after,
        "test_loss_after": loss_after,
        "train_seconds": fitted.train_seconds,
        "steps": fitted.steps,
        "history": fitted.history,
        "layers": layer_changes(initial, final),
        **input_analysis(
            model,
            dataset,
            fit_samples,
            initial,
            final,
            dataset.activity(fit_samples) if fit_samples else None,
        ),
        "weight_samples": weight_samples(initial, final),
    }
    writer.write_json("config.json", config_record(keras, config, dataset))
    writer.write_history(fitted.history, fitted.epoch_seconds)
    writer.write_steps(tracked)
    writer.write_predictions(dataset.y_test, as_probabilities(model, probabilities))
    # The path on the loss surface: read from the snapshots before their file is finished and closed.
    # (Its losses are training losses: a run saved from a tracker without its training data has none.)
    if fit_samples and with_landscape:
        writer.write_landscape(
            landscape(
                model, tracked.snapshots, x_train, training_labels(dataset.y_train, config), fit_samples, config.seed
            )
        )
    writer.write_snapshots(
        tracked,
        {"backend": config.backend, "dataset": config.dataset, "config": dumps(config.to_dict())},
        evaluated_snapshots(model, tracked.snapshots, x_test, dataset.y_test, x_test_device, early),
    )
    writer.write_json("summary.json", summary)
    if report:
        from weightlab.report.html import write_report

        write_report(writer.temp, dataset=dataset)
    path = writer.commit()
    return Run(path=path, config=config, summary=json.loads(dumps(summary)))


def test_inputs(dataset, model) -> tuple:
    """(x_test as ``model`` takes it, the same on the device): one copy for every evaluation of a run."""
    from weightlab.evaluation.outputs import on_device
    from weightlab.train.keras_fit import to_inputs

    x_test = to_inputs(dataset.inputs("test"), models.input_shape(model))
    return x_test, on_device(x_test)


def evaluated_snapshots(
    model, snapshots, x_test: np.ndarray, y_test: np.ndarray, x_test_device=None, early: list[dict] | None = None
) -> dict[str, np.ndarray]:
    """snapshots.h5's evaluation datasets: the test loss and accuracy of every snapshot, and the panel's probabilities.

    ``early``: the scores of the first snapshots, block by block, made already (`ahead.EarlyScores`): the rest are scored here.
    """
    from weightlab.analysis.panel import panel_indices
    from weightlab.evaluation.snapshots import evaluate_snapshots, joined
    from weightlab.models.outputs import as_probabilities

    panel = panel_indices(y_test)
    on_device = x_test if x_test_device is None else x_test_device
    parts = list(early or [])
    scored = sum(len(part["loss"]) for part in parts)
    if scored < snapshots.count:
        parts.append(evaluate_snapshots(model, snapshots, on_device, y_test, x_test[panel], start=scored))
    scores = joined(parts)
    return {
        "test_loss": scores["loss"],
        "test_accuracy": scores["accuracy"],
        "panel/indices": panel,
        "panel/labels": np.asarray(y_test)[panel].astype(np.int64),
        "panel/inputs": np.asarray(x_test[panel], dtype=np.float32),
        "panel/probabilities": as_probabilities(model, scores["panel_probabilities"]).astype(np.float32),
    }


def weight_samples(initial: dict[str, np.ndarray], final: dict[str, np.ndarray]) -> list[dict]:
    """The tutorial's printout: ``kernel[0][:5]`` of each layer, before and after training."""
    return [
        {
            "variable": name,
            "shape": list(initial[name].shape),
            "before": initial[name][0, :SAMPLE_WIDTH],
            "after": final[name][0, :SAMPLE_WIDTH],
        }
        for name in initial
        if initial[name].ndim == 2
    ]
