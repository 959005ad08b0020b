"""What `weightlab prove`, `compare` and `sweep` print: their tables and verdicts (a run's printout is `terminal`'s)."""

from __future__ import annotations

from rich.table import Table

from weightlab.config import hidden_text
from weightlab.report.terminal import console


def _mean_ci(summary: dict, percent: bool) -> str:
    # Accuracies, losses and distances are never negative (nor accuracies above 100%), but a
    # t-interval from few seeds can spill past those bounds: the display stops at them.
    def fmt(value):
        return f"{100 * min(max(value, 0.0), 1.0):.1f}%" if percent else f"{max(value, 0.0):.3f}"

    if summary["mean"] is None:
        return "—"
    if summary["n"] < 2 or summary["ci_low"] is None:
        return fmt(summary["mean"])
    return f"{fmt(summary['mean'])} [{fmt(summary['ci_low'])}, {fmt(summary['ci_high'])}]"


def print_proof(result: dict, path) -> None:
    trained, checks = result["trained"], result["controls"]
    n = len(result["seeds"])
    table = Table(
        title=f"Trained against controls · test set · mean [95% CI] over {n} seed{'s' if n != 1 else ''}",
        title_justify="left",
    )
    for header in ("", "test accuracy", "test loss", "‖W_T − W₀‖", "Welch p (accuracy)", "Hedges g"):
        table.add_column(header, justify="left" if not header else "right")
    table.add_row(
        "[bold]trained[/]",
        _mean_ci(trained["test_accuracy_after"], True),
        _mean_ci(trained["test_loss_after"], False),
        _mean_ci(trained["distance"], False),
        "",
        "",
    )
    labels = {
        "initial_weights": "initial weights (no training)",
        "shuffled_labels": "trained on shuffled labels",
        "random_step": "random step, trained length",
    }
    for name, summary in checks.items():
        label = labels.get(name, f"{name.removeprefix('undo_')} layer undone")
        versus = summary["accuracy_vs_trained"]
        distance = _mean_ci(summary["distance"], False) if "distance" in summary else ""
        p = "—" if versus["p"] is None else f"{versus['p']:.1e}"
        g = "—" if versus["hedges_g"] is None else f"{versus['hedges_g']:.1f}"
        table.add_row(
            label, _mean_ci(summary["test_accuracy"], True), _mean_ci(summary["test_loss"], False), distance, p, g
        )
    console.print(table)
    line = result["line"]
    points = "  ".join(
        f"α={alpha:g}: {'—' if loss is None else f'{loss:.3f}'}"  # None: not finite (a diverged run's)
        for alpha, loss in zip(line["alphas"], line["test_loss_mean"])
        if round(alpha * 4) == alpha * 4
    )
    console.print(f"\nTest loss along W₀ + α(W_T − W₀): {points}\n")
    for sentence in result["verdict"]["sentences"]:
        console.print(sentence)
    console.print(f"\nProof saved to [bold]{path}[/] (proof.json, and the runs it made under runs/)")


def print_comparison(result: dict, path) -> None:
    axis, n = result["axis"], len(result["seeds"])
    table = Table(
        title=f"{axis} compared · mean [95% CI] over {n} seed{'s' if n != 1 else ''} (same seeds, same data order)",
        title_justify="left",
    )
    for header in (
        axis,
        "parameters",
        "test accuracy",
        "test loss",
        "epochs to 90% / 95% val",
        "first layer: relative change",
        "never moved",
        "train s",
    ):
        table.add_column(header, justify="right")

    def reach(summary):
        if not summary["reached"]:
            return "never"
        mean = f"{summary['epochs']['mean']:.1f}"
        return mean if summary["reached"] == summary["of"] else f"{mean} ({summary['reached']}/{summary['of']})"

    for variant in result["variants"]:
        first = next(iter(variant["layers"].values()))
        table.add_row(
            hidden_text(variant["value"]),
            f"{variant['parameters']:,}",
            _mean_ci(variant["test_accuracy_after"], True),
            _mean_ci(variant["test_loss_after"], False),
            f"{reach(variant['epochs_to_val_accuracy_90'])} / {reach(variant['epochs_to_val_accuracy_95'])}",
            f"{first['relative_change']['mean']:.2f}",
            f"{100 * first['frac_unchanged']['mean']:.1f}%",
            f"{variant['train_seconds']['mean']:.1f}",
        )
    console.print(table)
    for sentence in result["statements"]:
        console.print(sentence)
    console.print(f"\nComparison saved to [bold]{path}[/] (comparison.json, and the runs it made under runs/)")


def print_sweep(result: dict, path) -> None:
    axes = list(result["grid"])
    table = Table(
        title=f"Sweep over {', '.join(axes)} · {result['seeds']} seed{'s' if result['seeds'] != 1 else ''} per point · mean [95% CI]",
        title_justify="left",
    )
    for header in (*axes, "finished", "test accuracy", "test loss", "train s"):
        table.add_column(header, justify="right")
    for point in result["points"]:
        values = [str(point["point"][axis]) for axis in axes]
        if point["finished"]:
            table.add_row(
                *values,
                f"{point['finished']}/{point['of']}",
                _mean_ci(point["test_accuracy_after"], True),
                _mean_ci(point["test_loss_after"], False),
                f"{point['train_seconds']['mean']:.1f}",
            )
        else:
            table.add_row(*values, f"0/{point['of']}", "—", "—", "—")
    console.print(table)
    counts, last = result["counts"], result["last_invocation"]
    console.print(
        f"{counts['complete']} cells complete, {counts['failed']} failed, {counts['pending']} pending; this time ran {last['ran']} "
        f"and skipped {last['skipped']} already finished, in {last['seconds']:.1f} s ({last['executor']})."
    )
    for cell in result["cells"]:
        if cell["status"] == "failed":
            console.print(f"[red]failed[/] {cell['cell']}: {cell['error']}")
    console.print(f"\nSweep saved to [bold]{path}[/] (sweep.json, and one run directory per cell under runs/)")
