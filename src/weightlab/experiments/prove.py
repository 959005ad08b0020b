"""`weightlab prove`: the tutorial's claim tested against controls, over several seeds.

For each seed: train (a stored run), train on shuffled labels (a stored run), then evaluate on
the test set, with one shared evaluation function: a random step of the trained step's length,
the straight line from the initial to the trained weights, and each layer undone. The numbers
are summarised over seeds (mean, std, 95% CI), each control is tested against the trained
result (Welch's t, Hedges' g), and a verdict says in sentences what the numbers show
(`proof_summary`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
from pathlib import Path

import numpy as np

from weightlab import models
from weightlab.analysis import controls
from weightlab.bounds import model_size, require_fits
from weightlab.config import MAX_SEEDS, RunConfig, require_int
from weightlab.experiments.proof_summary import ALPHAS, summarise
from weightlab.experiments.run import keras_and_data
from weightlab.experiments.together import run_many
from weightlab.store import RunWriter, dumps
from weightlab.store.format import short_name


@dataclasses.dataclass(frozen=True, eq=False)
class Proof:
    path: Path
    result: dict  # the contents of proof.json


def prove(
    config: RunConfig | None = None,
    *,
    seeds: int = 3,
    out: str | Path = "proofs",
    data_dir=None,
    progress=None,
    report: bool = True,
    stop=None,
    **overrides,
) -> Proof:
    """Run the experiment and its controls over ``seeds`` seeds (config.seed, config.seed + 1, …)."""
    require_int("seeds", seeds, 1, "--seeds", maximum=MAX_SEEDS)
    config = dataclasses.replace(config or RunConfig(), **overrides).resolved()
    keras, dataset = keras_and_data(config, data_dir)
    from weightlab.train.keras_fit import evaluate, to_inputs
    from weightlab.train.tracker import variable_names

    proof_id = f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{short_name(config)}-{seeds}seeds-{secrets.token_hex(2)}"
    with RunWriter(out, proof_id) as writer:
        fit_samples = config.fit_samples(len(dataset.x_train))
        # every seed's run and control train together: all of them must fit before anything is built
        inputs, classes = int(np.prod(dataset.x_train.shape[1:])), max(2, int(dataset.y_train.max()) + 1)
        require_fits(config, fit_samples, *model_size(config, inputs, classes), runs=2 * seeds)
        activity = dataset.activity(fit_samples)
        # One model whose trainable weights are set for each evaluation. (A model with non-trainable
        # state keeps its initial state here: BatchNormalization's statistics are not in the snapshots.)
        evaluator = models.build(config, keras, dataset.shape())
        x_test = to_inputs(dataset.inputs("test"), models.input_shape(evaluator))
        names = variable_names(evaluator)

        def test_set(weights: dict[str, np.ndarray]) -> tuple[float, float]:
            return evaluate(evaluator, x_test, dataset.y_test, [weights[name] for name in names])

        seed_list = [config.seed + i for i in range(seeds)]
        if progress:
            progress(0, seeds, f"training {2 * seeds} runs together ({seeds} seeds, trained and on shuffled labels)")
        # Every seed's run and its shuffled-labels control differ only in seed and labels: one program trains them all.
        stored = run_many(
            [
                dataclasses.replace(config, seed=seed, shuffle_labels=shuffled)
                for seed in seed_list
                for shuffled in (False, True)
            ],
            out=writer.temp / "runs",
            data_dir=data_dir,
            progress=stop.guard() if stop else None,  # Ctrl-C and SIGTERM stop the training there
            datasets={config.dataset: dataset},
        )
        seed_results = []
        for index, seed in enumerate(seed_list):
            if progress:
                progress(index, seeds, f"seed {seed}: controls")
            trained, shuffled = stored[2 * index], stored[2 * index + 1]
            seed_results.append(measure_seed(seed, trained, shuffled, test_set, np.random.default_rng([seed, 0xC0DE])))
        result = summarise(config, seed_results, activity)
        if progress:
            progress(seeds, seeds, "the trained and shuffled-labels paths in one plane")
        result["landscape"] = _shared_plane(writer, evaluator, stored[0], stored[1], dataset, fit_samples)
        writer.write_json("proof.json", result)
        if report:
            from weightlab.report.html import write_report

            write_report(writer.temp)
        path = writer.commit()
    return Proof(path=path, result=json.loads(dumps(result)))


def _shared_plane(writer: RunWriter, model, trained, shuffled, dataset, fit_samples: int) -> dict:
    """The first seed's trained and shuffled-labels paths projected in one plane (PCA of both runs' snapshots
    together), with the loss on the true training labels over it: the proof's landscape.npz. Returns proof.json's entry."""
    from weightlab.analysis.path import gram_matrix, principal_plane
    from weightlab.evaluation.landscape import plane_landscape
    from weightlab.train.keras_fit import to_inputs
    from weightlab.train.snapshots import ChainedSnapshots

    stores = [trained.snapshot_store(), shuffled.snapshot_store()]
    try:
        both = ChainedSnapshots(stores)
        plane = principal_plane(gram_matrix(both))
        land = plane_landscape(
            model,
            both,
            plane,
            to_inputs(dataset.inputs("train"), models.input_shape(model)),
            dataset.y_train,
            fit_samples,
            trained.config.seed,
        )
        count = stores[0].count
        arrays = {
            key: land[key] for key in ("explained_variance_ratio", "grid_a", "grid_b", "grid_loss", "sample_indices")
        }
        for name, part, store in (
            ("trained", slice(None, count), stores[0]),
            ("shuffled_labels", slice(count, None), stores[1]),
        ):
            arrays[f"path_{name}"] = land["path"][part]
            arrays[f"path_loss_{name}"] = land["path_loss"][part]
            arrays[f"steps_{name}"] = store.steps
    finally:
        for store in stores:
            store.close()
    writer.write_landscape(arrays)
    return {
        "file": "landscape.npz",
        "seed": trained.config.seed,
        "runs": {"trained": trained.path.name, "shuffled_labels": shuffled.path.name},
        "explained_variance_ratio": arrays["explained_variance_ratio"],
    }


def _first_and_last(stored_run) -> tuple[dict, dict]:
    store = stored_run.snapshot_store()
    try:
        return store.initial(), store.final()
    finally:
        store.close()


def _total_distance(w0: dict, w1: dict) -> float:
    return float(np.sqrt(sum(np.sum((w1[n].astype(np.float64) - w0[n]) ** 2) for n in w0)))


def measure_seed(seed: int, trained, shuffled, test_set, rng: np.random.Generator) -> dict:
    """Every number of one seed: the trained run, its controls, the line and the per-pixel change."""
    w0, w1 = _first_and_last(trained)
    s0, s1 = _first_and_last(shuffled)
    line = [test_set(controls.interpolate(w0, w1, alpha)) for alpha in ALPHAS]
    random_loss, random_accuracy = test_set(controls.random_step(w0, w1, rng))
    undone = {layer: test_set(controls.undo_layer(w0, w1, layer)) for layer in controls.layers_of(w0)}
    # Per input, the change of its first-layer row: only where the first layer is a Dense layer on the raw inputs.
    moved = trained.summary.get("moved_sample")
    example_shape = trained.summary.get("image_shape") or trained.summary.get("input_shape")
    pixel_change = (
        controls.row_change_map(w0[moved["variable"]], w1[moved["variable"]], tuple(example_shape))
        if moved is not None
        else None
    )
    return {
        "seed": seed,
        "runs": {"trained": trained.path.name, "shuffled_labels": shuffled.path.name},
        "trained": {
            "test_accuracy_before": trained.summary["test_accuracy_before"],
            "test_loss_before": trained.summary["test_loss_before"],
            "test_accuracy_after": trained.summary["test_accuracy_after"],
            "test_loss_after": trained.summary["test_loss_after"],
            "distance": _total_distance(w0, w1),
        },
        "shuffled_labels": {
            "test_accuracy_after": shuffled.summary["test_accuracy_after"],
            "test_loss_after": shuffled.summary["test_loss_after"],
            # a run that diverged in its first epoch finished none: its value is missing
            "train_accuracy_after": (shuffled.summary["history"]["accuracy"] or [None])[-1],
            "distance": _total_distance(s0, s1),
        },
        "random_step": {
            "test_accuracy": random_accuracy,
            "test_loss": random_loss,
            "distance": _total_distance(w0, w1),
        },
        "line": {"test_loss": [loss for loss, _ in line], "test_accuracy": [accuracy for _, accuracy in line]},
        "undo_layer": {
            layer: {"test_loss": loss, "test_accuracy": accuracy} for layer, (loss, accuracy) in undone.items()
        },
        "pixel_change": pixel_change,
        "frozen_inputs": trained.summary["frozen_inputs"],
        "frozen_inputs_note": trained.summary.get("frozen_inputs_note"),
    }
