"""`weightlab prove`: the tutorial's claim tested against controls, over several seeds.

For each seed: train (a stored run), train on shuffled labels (a stored run), then evaluate on
the test set, with one shared evaluation function: a random step of the trained step's length,
the straight line from the initial to the trained weights, and each layer undone. The numbers
are summarised over seeds (mean, std, 95% CI), each control is tested against the trained
result (Welch's t, Hedges' g), and a verdict says in sentences what the numbers show.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
from pathlib import Path

import numpy as np

from weightlab import models
from weightlab.analysis import controls, stats
from weightlab.bounds import model_size, require_fits
from weightlab.config import MAX_SEEDS, RunConfig, require_int
from weightlab.experiments.run import keras_and_data
from weightlab.experiments.together import run_many
from weightlab.store import FORMAT_VERSION, RunWriter, dumps
from weightlab.store.format import short_name

# The line from W_0 (α = 0) to W_T (α = 1), and a little beyond, in steps of 0.05.
ALPHAS = tuple(round(0.05 * i, 2) for i in range(27))


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
            "train_accuracy_after": shuffled.summary["history"]["accuracy"][-1],
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


def summarise(config: RunConfig, seeds: list[dict], activity: np.ndarray) -> dict:
    """proof.json: per-seed values, their statistics, the tests against the trained result, the verdict."""

    def column(*keys):
        values = []
        for seed in seeds:
            value = seed
            for key in keys:
                value = value[key]
            values.append(value)
        return values

    trained_accuracy = column("trained", "test_accuracy_after")
    trained_loss = column("trained", "test_loss_after")

    def control(accuracies, losses, **extra):
        return {
            "test_accuracy": stats.describe(accuracies),
            "test_loss": stats.describe(losses),
            "accuracy_vs_trained": {
                **stats.welch_t_test(trained_accuracy, accuracies),
                "hedges_g": stats.hedges_g(trained_accuracy, accuracies),
            },
            "loss_vs_trained": {
                **stats.welch_t_test(trained_loss, losses),
                "hedges_g": stats.hedges_g(trained_loss, losses),
            },
            **extra,
        }

    layers = list(seeds[0]["undo_layer"])
    line_loss = np.array(column("line", "test_loss"))
    line_accuracy = np.array(column("line", "test_accuracy"))
    one = ALPHAS.index(1.0)
    mean_line_loss = line_loss.mean(axis=0)
    result = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "seeds": column("seed"),
        "runs": column("runs"),
        "trained": {
            "test_accuracy_before": stats.describe(column("trained", "test_accuracy_before")),
            "test_loss_before": stats.describe(column("trained", "test_loss_before")),
            "test_accuracy_after": stats.describe(trained_accuracy),
            "test_loss_after": stats.describe(trained_loss),
            "distance": stats.describe(column("trained", "distance")),
        },
        "controls": {
            "initial_weights": control(
                column("trained", "test_accuracy_before"), column("trained", "test_loss_before")
            ),
            "shuffled_labels": control(
                column("shuffled_labels", "test_accuracy_after"),
                column("shuffled_labels", "test_loss_after"),
                distance=stats.describe(column("shuffled_labels", "distance")),
                train_accuracy=stats.describe(column("shuffled_labels", "train_accuracy_after")),
            ),
            "random_step": control(
                column("random_step", "test_accuracy"),
                column("random_step", "test_loss"),
                distance=stats.describe(column("random_step", "distance")),
            ),
            **{
                f"undo_{layer}": control(
                    column("undo_layer", layer, "test_accuracy"), column("undo_layer", layer, "test_loss")
                )
                for layer in layers
            },
        },
        "line": {
            "alphas": list(ALPHAS),
            "test_loss": line_loss.tolist(),
            "test_accuracy": line_accuracy.tolist(),
            "test_loss_mean": mean_line_loss.tolist(),
            "test_accuracy_mean": line_accuracy.mean(axis=0).tolist(),
            # where the mean loss rises between consecutive α up to 1 (empty: it falls all the way)
            "rises_before_1": [ALPHAS[i + 1] for i in controls.rises(mean_line_loss[: one + 1])],
            "rises_per_seed": [[ALPHAS[i + 1] for i in controls.rises(loss[: one + 1])] for loss in line_loss],
        },
        "where": where_change_lands(seeds, activity),
    }
    result["verdict"] = verdict(result)
    return result


def where_change_lands(seeds: list[dict], activity: np.ndarray) -> dict:
    """proof.json's "where": the first layer's change per input beside the input's activity, where
    the first layer is a Dense layer on the raw inputs; else the nulls and the reason."""
    if any(seed["pixel_change"] is None for seed in seeds):
        return {
            "pixel_change": None,
            "pixel_activity": None,
            "change_activity_rank_correlation": None,
            "never_active_inputs": None,
            "frozen_inputs": None,
            "note": seeds[0]["frozen_inputs_note"],
        }
    pixel_change = np.mean([seed["pixel_change"] for seed in seeds], axis=0)
    return {
        "pixel_change": pixel_change.tolist(),
        "pixel_activity": activity.reshape(pixel_change.shape).tolist(),
        "change_activity_rank_correlation": controls.rank_correlation(pixel_change, activity),
        "never_active_inputs": seeds[0]["frozen_inputs"]["never_active_inputs"],
        "frozen_inputs": [seed["frozen_inputs"] for seed in seeds],
        "note": None,
    }


def _interval(summary: dict, percent: bool = True) -> str:
    # An accuracy's t-interval can spill past 0% or 100% with few seeds; the display stops at the bounds.
    fmt = (lambda v: f"{100 * min(max(v, 0.0), 1.0):.1f}%") if percent else (lambda v: f"{v:.3f}")
    if summary["n"] < 2:
        return f"{fmt(summary['mean'])} (1 seed: no interval)"
    return f"{fmt(summary['mean'])} (95% CI {fmt(summary['ci_low'])}–{fmt(summary['ci_high'])})"


def verdict(result: dict) -> dict:
    """Plain sentences with the numbers, and whether the claim held."""
    trained, checks = result["trained"], result["controls"]
    n = trained["test_accuracy_after"]["n"]
    shuffled, random = checks["shuffled_labels"], checks["random_step"]
    sentences = [
        f"Training took test accuracy from {_interval(trained['test_accuracy_before'])} to {_interval(trained['test_accuracy_after'])} "
        f"over {n} seed{'s' if n != 1 else ''}, and test loss from "
        f"{trained['test_loss_before']['mean']:.3f} to {trained['test_loss_after']['mean']:.3f}.",
        f"The same training on shuffled labels moved the weights {shuffled['distance']['mean'] / trained['distance']['mean']:.2f}× as far "
        f"(‖W_T − W_0‖ {shuffled['distance']['mean']:.1f} against "
        f"{trained['distance']['mean']:.1f}) yet reached {_interval(shuffled['test_accuracy'])} "
        f"on the test set: moving is not improving; the objective chooses the direction.",
        f"A random step of exactly the trained length from the same initial weights gives {_interval(random['test_accuracy'])} "
        f"(test loss {random['test_loss']['mean']:.3f}): the trained direction is special, not its length.",
    ]
    line = result["line"]
    one = line["alphas"].index(1.0)
    start, end = line["test_loss_mean"][0], line["test_loss_mean"][one]
    if not line["rises_before_1"]:
        sentences.append(
            f"Along the straight line from the initial to the trained weights the test loss falls monotonically, from {start:.3f} to {end:.3f}."
        )
    else:
        where = ", ".join(f"α = {alpha}" for alpha in line["rises_before_1"])
        sentences.append(
            "Along the straight line from the initial to the trained weights the "
            f"test loss falls from {start:.3f} to {end:.3f}, but rises at {where}."
        )
    undo = [
        f"resetting {name.removeprefix('undo_')} to its initial weights leaves {_interval(summary['test_accuracy'])}"
        for name, summary in checks.items()
        if name.startswith("undo_")
    ]
    sentences.append("Undoing one layer at a time: " + "; ".join(undo) + ".")
    where = result["where"]
    if where["pixel_change"] is None:
        sentences.append(f"Where the change lands per input is not measured: {where['note']}.")
    else:
        image = np.ndim(where["pixel_change"]) >= 2
        inputs, active, zero = ("pixel", "lit", "black") if image else ("input", "active", "0")
        sentences.append(
            f"Where the change lands: the first layer's change per {inputs} follows how often the "
            f"{inputs} is {active} (Spearman ρ = {where['change_activity_rank_correlation']:.2f}); "
            f"the {where['never_active_inputs']} {inputs}s that are {zero} in every training {'image' if image else 'example'} "
            + (
                "did not move at all."
                if all(f["never_active_rows_unchanged"] for f in where["frozen_inputs"])
                else "moved in some seed, which should be impossible: check the data."
            )
        )
    after = trained["test_accuracy_after"]
    trained_low = after["ci_low"] if n >= 2 else min(after["values"])
    # The controls for "training optimises": no training, training toward no objective, a step of
    # the same size in no particular direction. (Undoing a layer measures attribution, not this.)
    baselines = [checks[name]["test_accuracy"] for name in ("initial_weights", "shuffled_labels", "random_step")]
    control_high = max((summary["ci_high"] if n >= 2 else max(summary["values"])) for summary in baselines)
    holds = trained_low > control_high
    sentences.append(
        f"Verdict: {'the claim holds' if holds else 'the claim is not shown'} — the trained accuracy's lower bound {100 * trained_low:.1f}% "
        f"{'lies above' if holds else 'does not lie above'} the upper bound of every control — "
        f"initial weights, shuffled labels, random step (highest: {100 * control_high:.1f}%)."
    )
    return {"holds": holds, "sentences": sentences}
