"""Aggregating stored runs: statistics per variant, time to accuracy, paired comparisons. Pure numpy.

Shared by `compare`, `sweep` and `prove`; inputs are runs' summary dicts.
"""

from __future__ import annotations

from collections.abc import Sequence

from weightlab.analysis import stats

HEADLINE = ("test_accuracy_before", "test_loss_before", "test_accuracy_after", "test_loss_after", "train_seconds")
LAYER_METRICS = ("relative_change", "l2_distance", "frac_unchanged", "frac_sign_flipped")


def epochs_to_reach(accuracies: Sequence[float], threshold: float) -> int | None:
    """The first epoch (counted from 1) whose accuracy is ≥ threshold; None if none is."""
    for epoch, accuracy in enumerate(accuracies, start=1):
        if accuracy is not None and accuracy >= threshold:
            return epoch
    return None


def reach_summary(epochs: Sequence[int | None]) -> dict:
    """How many runs reached a threshold, and the statistics of when (over those that did)."""
    reached = [e for e in epochs if e is not None]
    return {
        "values": list(epochs),
        "reached": len(reached),
        "of": len(epochs),
        **({"epochs": stats.describe(reached)} if reached else {}),
    }


def variant_summary(summaries: Sequence[dict], thresholds: Sequence[float] = (0.9, 0.95)) -> dict:
    """Statistics over the seeds of one variant: headline numbers, time to accuracy, per-layer change."""
    result = {key: stats.describe([s[key] for s in summaries]) for key in HEADLINE}
    for threshold in thresholds:
        epochs = [epochs_to_reach(s["history"].get("val_accuracy", []), threshold) for s in summaries]
        result[f"epochs_to_val_accuracy_{round(threshold * 100)}"] = reach_summary(epochs)
    names = [layer["name"] for layer in summaries[0]["layers"]]
    result["layers"] = {
        name: {
            metric: stats.describe([_layer(s, name)[metric] for s in summaries if _layer(s, name)[metric] is not None])
            for metric in LAYER_METRICS
        }
        for name in names
    }
    # Per epoch, the mean over the runs that reached it (a diverged run stops early).
    keys = dict.fromkeys(key for s in summaries for key in s["history"])
    longest = max((len(values) for s in summaries for values in s["history"].values()), default=0)
    result["history_mean"] = {
        key: [
            stats.describe([s["history"][key][e] for s in summaries if len(s["history"].get(key, [])) > e])["mean"]
            for e in range(longest)
        ]
        for key in keys
    }
    return result


def _layer(summary: dict, name: str) -> dict:
    return next(layer for layer in summary["layers"] if layer["name"] == name)


def paired_difference(a: Sequence[dict], b: Sequence[dict], key: str) -> dict:
    """a − b for ``key``, paired by seed (the runs at index i share a seed): mean, CI, paired t-test."""
    return stats.paired_t_test([s[key] for s in a], [s[key] for s in b])
