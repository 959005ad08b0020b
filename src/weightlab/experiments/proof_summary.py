"""proof.json from the seeds' measurements (`prove.measure_seed`): each control's statistics over
seeds and its tests against the trained result, the line from W_0 to W_T, where the first
layer's change lands, and the verdict in sentences. Numbers in, numbers and words out.
"""

from __future__ import annotations

import numpy as np

from weightlab.analysis import controls, stats
from weightlab.config import RunConfig
from weightlab.store import FORMAT_VERSION

# The line from W_0 (α = 0) to W_T (α = 1), and a little beyond, in steps of 0.05.
ALPHAS = tuple(round(0.05 * i, 2) for i in range(27))


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
    fmt = (lambda v: f"{100 * min(max(v, 0.0), 1.0):.1f}%") if percent else (lambda v: f"{max(v, 0.0):.3f}")
    if summary["n"] < 2:
        return f"{fmt(summary['mean'])} (1 seed: no interval)"
    return f"{fmt(summary['mean'])} (95% CI {fmt(summary['ci_low'])}–{fmt(summary['ci_high'])})"


def _percent(accuracy: float) -> str:
    """An accuracy bound as shown: a t-interval from few seeds can spill past 0% or 100%; the display stops there."""
    return f"{100 * min(max(accuracy, 0.0), 1.0):.1f}%"


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
        f"Verdict: {'the claim holds' if holds else 'the claim is not shown'} — the trained accuracy's lower bound {_percent(trained_low)} "
        f"{'lies above' if holds else 'does not lie above'} the upper bound of every control — "
        f"initial weights, shuffled labels, random step (highest: {_percent(control_high)})."
    )
    return {"holds": holds, "sentences": sentences}
