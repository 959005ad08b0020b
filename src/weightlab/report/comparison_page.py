"""The pages of a comparison (variants over the same seeds, replayed side by side) and of a sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from weightlab.config import hidden_text
from weightlab.report import charts, replay_view, run_figures
from weightlab.report.charts import layer
from weightlab.report.html import FigureSection, Replay, TableSection, ci, display_name, pct, render
from weightlab.report.tiles import first_layer_tiling, image_shape


def _band(spec: dict, x, values: np.ndarray, colour: str, label: str) -> None:
    """Mean line and min–max band over rows (seeds); NaN (a diverged run's missing epochs) left out, and an
    epoch no seed reached stays NaN (a gap in the line)."""
    low, high, mean = charts.spread(values)
    layer(
        spec,
        "varea",
        {"x": x, "y1": low, "y2": high},
        {"x": "x", "y1": "y1", "y2": "y2"},
        {"fill_color": colour, "fill_alpha": 0.2},
    )
    charts.lines(spec, [(label, x, mean, colour)], marker=len(x) < 40)


def variant_curves(axis: str, variants: list[tuple[str, list[dict]]]) -> tuple[dict, ...]:
    """Per-epoch curves of each variant: mean line and min–max band over seeds, on shared axes."""
    specs = []
    for key, title in (
        ("val_accuracy", "validation accuracy"),
        ("loss", "training loss"),
        ("val_loss", "validation loss"),
    ):
        spec = charts.figure(title, 340, 280, "epoch", x_range={"shared": "epochs", "start": 0.8, "end": None})
        longest = 1
        for (label, histories), colour in zip(variants, charts.colours()):
            longest = max([longest] + [len(h.get(key, [])) for h in histories])
            values = np.full((len(histories), longest), np.nan)
            for row, history in enumerate(histories):
                values[row, : len(history.get(key, []))] = [np.nan if v is None else v for v in history.get(key, [])]
            _band(spec, np.arange(1, longest + 1), values, colour, f"{axis}={label}")
        spec["x_range"]["end"] = longest + 0.2
        specs.append(spec)
    return tuple(specs)


def _timeline(tracks: list[dict], aligned_by: str | None = None) -> dict:
    """One timeline for all variants: every step any of them has a snapshot at, or — when their steps mean different
    points of training (another batch size or epoch count: ``comparison.json``'s ``replay.aligned_by`` is "epoch", or
    the runs disagree on steps per epoch) — every epoch any of them has a snapshot at."""
    if aligned_by is None:
        per_epoch = {round(t["steps"][-1] / t["epochs"][-1], 6) for t in tracks if t["epochs"] and t["epochs"][-1]}
        aligned_by = "step" if len(per_epoch) <= 1 else "epoch"
    if aligned_by == "epoch":
        epochs = sorted({e for t in tracks for e in t["epochs"]})
        return {"by": "epoch", "steps": None, "epochs": epochs}
    epoch_of = {}
    for track in tracks:
        epoch_of.update(zip(track["steps"], track["epochs"]))
    steps = sorted(epoch_of)
    return {"by": "step", "steps": steps, "epochs": [epoch_of[s] for s in steps]}


def side_by_side(axis: str, result: dict, runs: list[list]) -> tuple[Replay, list[FigureSection]]:
    """Each variant's first seed (``runs``: each variant's runs, in the variants' order), replayed on one timeline,
    and its distributions over time."""
    tracks, payloads, over_time, static = [], [], [], []
    for number, variant in enumerate(result["variants"]):
        run = runs[number][0]
        name = f"{axis}={hidden_text(variant['value'])}"
        steps, epochs, weights = run.snapshots()
        tiling = first_layer_tiling(run.summary, weights)
        kernel_shape = next((w.shape[1:] for w in weights.values() if w.ndim >= 3), ())
        shown, payload = replay_view.track(
            f"v{number}-",
            f"{name} · ",
            steps,
            epochs,
            weights,
            tiling,
            run.snapshot_evaluations(),
            image_shape(run.summary, kernel_shape) if kernel_shape else None,
        )
        tracks.append(shown)
        if tiling is not None:  # for JavaScript off: each variant's first layer before, after and the difference
            static += replay_view.static_pictures(tiling, weights[tiling.variable], f"{name}: ")
        payloads.append(payload)
        over_time.append(
            FigureSection(
                f"{name}: every variable's distribution at every snapshot",
                f"Seed {run.summary['config']['seed']}; one column per snapshot, shaded by log count, quantiles over it.",
                tuple(run_figures.distributions_over_time(weights, steps, f"v{number}-")),
            )
        )
    replay = Replay(
        "Watch them learn, side by side",
        "Every variant's first seed on one timeline (the same seed: the same data order): ← → step, Home and End jump "
        "to the ends; each shows its last snapshot at or before that point of training.",
        tuple(tracks),
        {"timeline": _timeline(payloads, result.get("replay", {}).get("aligned_by")), "tracks": payloads},
        tuple(static),
    )
    return replay, over_time


def comparison_report(path: Path, result: dict) -> str:
    from weightlab.store import member_run

    axis = result["axis"]
    # By position: a variant's value can be a list (the widths of a deeper network), which keys nothing.
    runs = [[member_run(path, run_id) for run_id in v["runs"]] for v in result["variants"]]
    curves = [
        (hidden_text(v["value"]), [r.summary["history"] for r in variant_runs])
        for v, variant_runs in zip(result["variants"], runs)
    ]
    rows = [
        (f"{axis}={hidden_text(v['value'])}", v["test_accuracy_after"], colour)
        for v, colour in zip(result["variants"], charts.colours())
    ]
    replay, over_time = side_by_side(axis, result, runs)
    sections = [
        FigureSection(
            "Test accuracy per variant",
            "Means with 95% intervals over the same seeds; dots are single seeds.",
            (charts.intervals("test accuracy: mean, 95% CI, each seed", rows),),
        ),
        FigureSection(
            "Training curves, overlaid",
            "Every variant on shared axes; the band spans the seeds, the line is their mean.",
            variant_curves(axis, curves),
        ),
        *over_time,
    ]
    table = []
    for variant in result["variants"]:
        first = next(iter(variant["layers"].values()))
        table.append(
            [
                f"{axis}={hidden_text(variant['value'])}",
                f"{variant['parameters']:,}",
                ci(variant["test_accuracy_after"]),
                ci(variant["test_loss_after"], False),
                f"{first['relative_change']['mean']:.2f}",
                pct(first["frac_unchanged"]["mean"]),
                f"{variant['train_seconds']['mean']:.1f} s",
            ]
        )
    n = len(result["seeds"])
    return render(
        title=f"weightlab compare · {axis}: {', '.join(map(hidden_text, result['values']))} · {n} seed{'s' if n != 1 else ''}",
        subtitle=f"{display_name(path)} · the same seeds and data order for every variant, so differences are paired",
        sentences_title="What the comparison says",
        sentences=result["statements"],
        tables=[
            TableSection(
                "Variants, mean [95% CI] over seeds",
                [
                    axis,
                    "parameters",
                    "test accuracy",
                    "test loss",
                    "first layer: relative change",
                    "never moved",
                    "training",
                ],
                table,
            )
        ],
        replay=replay,
        figures=sections,
        footer=[
            ("comparison", display_name(path)),
            ("seeds", ", ".join(map(str, result["seeds"]))),
            ("config", json.dumps(result["config"])),
        ],
    )


def sweep_report(path: Path, result: dict) -> str:
    from weightlab.store import member_run

    axes = list(result["grid"])
    finished = [point for point in result["points"] if point["finished"]]
    label = ", ".join(axes)

    def name(point):
        return ", ".join(str(point["point"][axis]) for axis in axes)

    curves = []
    for point in finished:
        cells = [c for c in result["cells"] if c["point"] == point["point"] and c["status"] == "complete"]
        curves.append((name(point), [member_run(path, c["cell"]).summary["history"] for c in cells]))
    sections = []
    if finished:
        rows = [(name(p), p["test_accuracy_after"], colour) for p, colour in zip(finished, charts.colours())]
        sections = [
            FigureSection(
                "Test accuracy per grid point",
                "Means with 95% intervals over the seeds that finished; dots are single seeds.",
                (charts.intervals("test accuracy: mean, 95% CI, each seed", rows, width=620),),
            ),
            FigureSection(
                "Training curves, overlaid",
                "Every grid point on shared axes; the band spans the seeds, the line is their mean.",
                variant_curves(label, curves),
            ),
        ]
    table = [
        [
            name(p),
            f"{p['finished']}/{p['of']}",
            ci(p["test_accuracy_after"]) if p["finished"] else "—",
            ci(p["test_loss_after"], False) if p["finished"] else "—",
            f"{p['train_seconds']['mean']:.1f} s" if p["finished"] else "—",
        ]
        for p in result["points"]
    ]
    failed = [f"{cell['cell']}: {cell['error']}" for cell in result["cells"] if cell["status"] == "failed"]
    counts = result["counts"]
    return render(
        title=f"weightlab sweep · {label} · {len(result['points'])} points × {result['seeds']} seeds",
        subtitle=f"{display_name(path)} · {counts['complete']} cells complete, {counts['failed']} failed, {counts['pending']} pending",
        sentences_title="Failed cells" if failed else "",
        sentences=failed,
        holds=not failed,
        tables=[
            TableSection(
                "Grid points, mean [95% CI] over seeds",
                [label, "finished", "test accuracy", "test loss", "training"],
                table,
            )
        ],
        figures=sections,
        footer=[
            ("sweep", display_name(path)),
            ("grid", json.dumps(result["grid"])),
            ("config", json.dumps(result["config"])),
        ],
    )
