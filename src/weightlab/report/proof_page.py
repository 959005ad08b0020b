"""The page of a proof: the trained weights against the controls, the straight line, undoing layers,
and one seed's trained and shuffled-labels paths in one plane."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from weightlab.report import charts, png, replay_charts, run_figures
from weightlab.report.charts import CONTROL, INITIAL, TRAINED, layer
from weightlab.report.html import FigureSection, TableSection, ci, display_name, pct, render

CONTROL_LABELS = {
    "initial_weights": "initial weights",
    "shuffled_labels": "shuffled labels",
    "random_step": "random step, same length",
}


def endpoint_plane(trained: np.ndarray, shuffled: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Two paths of flattened weights from the same W₀ (rows: snapshots, first row W₀) in the plane through W₀ and
    both end points: axis 1 along the trained change Δ₁ = W_T − W₀, axis 2 along the part of the shuffled-labels
    change Δ₂ orthogonal to it (Gram–Schmidt). Both end points keep their true distance from W₀ and their true angle;
    the points between are projected. Returns both projections and {lengths, cosine}."""
    origin = trained[0].astype(np.float64)
    first = trained[-1] - origin
    second = shuffled[-1] - origin
    length_1, length_2 = float(np.linalg.norm(first)), float(np.linalg.norm(second))
    axis_1 = first / (length_1 or 1.0)
    rest = second - (second @ axis_1) * axis_1
    axis_2 = rest / (float(np.linalg.norm(rest)) or 1.0)
    basis = np.stack([axis_1, axis_2])
    cosine = float(first @ second / (length_1 * length_2)) if length_1 and length_2 else float("nan")
    return (
        (trained - origin) @ basis.T,
        (shuffled - origin) @ basis.T,
        {"trained": length_1, "shuffled": length_2, "cosine": cosine},
    )


def paths_section(path: Path, result: dict) -> FigureSection | None:
    """The first seed's trained and shuffled-labels runs, both from the same W₀, in one plane."""
    from weightlab.errors import RunDirError
    from weightlab.store import member_run

    if not result.get("runs"):
        return None
    names = result["runs"][0]
    try:
        runs = {kind: member_run(path, names[kind]) for kind in ("trained", "shuffled_labels")}
    except (RunDirError, KeyError):
        return None
    snapshots = {kind: run.snapshots() for kind, run in runs.items()}
    flat = {
        kind: np.concatenate([w.reshape(len(w), -1) for w in s[2].values()], axis=1) for kind, s in snapshots.items()
    }
    trained, shuffled, geometry = endpoint_plane(flat["trained"], flat["shuffled_labels"])
    losses = {kind: run.snapshot_evaluations().get("test_loss") for kind, run in runs.items()}
    paths = [
        {
            "label": "trained",
            "xy": trained,
            "steps": snapshots["trained"][0],
            "loss": losses["trained"],
            "colour": TRAINED,
        },
        {
            "label": "shuffled labels",
            "xy": shuffled,
            "steps": snapshots["shuffled_labels"][0],
            "loss": losses["shuffled_labels"],
            "colour": CONTROL,
        },
    ]
    labels = ("along the trained run's W_T − W₀", "toward the shuffled-labels end (⊥ part)")
    spec = replay_charts.landscape(paths, None, labels, f"seed {result['seeds'][0]}: two paths from the same W₀")
    spec["legend"] = {"location": "top_left"}
    spec["match_aspect"] = True  # one unit of weight distance is as long on both axes
    for hover_layer in spec["layers"]:
        if hover_layer.get("hover"):
            hover_layer["hover"][-1][0] = "test loss"  # these paths carry the test loss of each snapshot
    angle = (
        np.degrees(np.arccos(np.clip(geometry["cosine"], -1, 1))) if np.isfinite(geometry["cosine"]) else float("nan")
    )

    def first_seed(summary: dict) -> str:
        value = summary["values"][0] if summary["values"] else None
        return "—" if value is None else f"{value:.3f}"

    losses_text = (
        f"test loss {first_seed(result['controls']['initial_weights']['test_loss'])} at W₀, "
        f"{first_seed(result['trained']['test_loss_after'])} trained, "
        f"{first_seed(result['controls']['shuffled_labels']['test_loss'])} on shuffled labels"
    )
    return FigureSection(
        "Moving is not improving: two paths from the same initial weights",
        f"Seed {result['seeds'][0]}'s trained run and the same training on shuffled labels, drawn in the plane through W₀ "
        f"(the origin) and both end points, so both end points sit at their true distance from W₀ (‖ΔW‖ "
        f"{geometry['trained']:.1f} trained, {geometry['shuffled']:.1f} on shuffled labels) and at their true angle "
        f"({angle:.0f}°); the snapshots between are projected. Both moved; {losses_text}.",
        (spec,),
    )


def surface_section(path: Path, result: dict) -> FigureSection | None:
    """The proof's landscape.npz, where it has one: both paths of its first seed on the top two principal directions
    of their snapshots together, over the training loss on the true labels in that plane."""
    from weightlab.store import read_landscape

    data = read_landscape(path)
    keys = (
        "path_trained",
        "path_shuffled_labels",
        "steps_trained",
        "steps_shuffled_labels",
        "explained_variance_ratio",
    )
    if data is None or not all(key in data for key in keys):
        return None
    paths = [
        {
            "label": label,
            "xy": data[f"path_{kind}"],
            "steps": data[f"steps_{kind}"],
            "loss": data.get(f"path_loss_{kind}"),
            "colour": colour,
        }
        for kind, label, colour in (("trained", "trained", TRAINED), ("shuffled_labels", "shuffled labels", CONTROL))
    ]
    grid = data if all(key in data for key in ("grid_a", "grid_b", "grid_loss")) else None
    ratio = np.asarray(data["explained_variance_ratio"], dtype=np.float64)
    labels = (f"PC1 ({ratio[0]:.1%} of both paths' variance)", f"PC2 ({ratio[1]:.1%})")
    seed = result.get("landscape", {}).get("seed", result["seeds"][0])
    spec = replay_charts.landscape(paths, grid, labels, f"seed {seed}: both paths on the loss surface")
    spec["legend"] = {"location": "top_left"}
    ends = ""
    if "path_loss_trained" in data and "path_loss_shuffled_labels" in data:
        ends = (
            f" The training loss on the true labels goes from {float(data['path_loss_trained'][0]):.3f} at W₀ to "
            f"{float(data['path_loss_trained'][-1]):.3f} along the trained path and to "
            f"{float(data['path_loss_shuffled_labels'][-1]):.3f} along the shuffled-labels one."
        )
    return FigureSection(
        "Both paths on the loss surface",
        "The two runs' snapshots projected together on the top two principal directions of all of them, over the "
        "training loss on the true labels in that plane (hover a point for its step and loss). A plane of two "
        "directions keeps only part of each path's movement; the figure above keeps both end points' true distances."
        + ends,
        (spec,),
    )


def line_figures(result: dict) -> tuple[dict, dict]:
    alphas = np.asarray(result["line"]["alphas"], dtype=np.float64)
    specs = []
    for key, title, scale in (
        ("test_loss", "test loss along the straight line", 1),
        ("test_accuracy", "test accuracy (%)", 100),
    ):
        values = np.asarray(result["line"][key], dtype=np.float64) * scale
        low, high, mean = charts.spread(values)  # a diverged seed's line is NaN where it is not finite
        spec = charts.figure(
            title, x_label="α in W₀ + α (W_T − W₀)", y_axis_type="log" if key == "test_loss" else "auto"
        )
        layer(
            spec,
            "varea",
            {"x": alphas, "y1": low, "y2": high},
            {"x": "x", "y1": "y1", "y2": "y2"},
            {"fill_color": TRAINED, "fill_alpha": 0.2},
            legend="range over seeds",
        )
        charts.lines(spec, [("mean over seeds", alphas, mean, TRAINED)], marker=True)
        for alpha in (0.0, 1.0):
            charts.add_cursor(spec, alpha, name="")
        specs.append(spec)
    return specs[0], specs[1]


def proof_report(path: Path, result: dict) -> str:
    trained, checks, where = result["trained"], result["controls"], result["where"]
    n = len(result["seeds"])
    rows = [("trained", trained["test_accuracy_after"], TRAINED)] + [
        (label, checks[name]["test_accuracy"], CONTROL) for name, label in CONTROL_LABELS.items() if name in checks
    ]
    loss_rows = [("trained", trained["test_loss_after"], TRAINED)] + [
        (label, checks[name]["test_loss"], CONTROL) for name, label in CONTROL_LABELS.items() if name in checks
    ]
    undo = [("trained", trained["test_accuracy_after"], TRAINED)]
    undo += [
        (f"{name.removeprefix('undo_')} undone", c["test_accuracy"], CONTROL)
        for name, c in checks.items()
        if name.startswith("undo_")
    ]
    undo.append(("initial weights", checks["initial_weights"]["test_accuracy"], INITIAL))
    rises = result["line"]["rises_before_1"]
    sections = [
        FigureSection(
            "Trained against the controls",
            "Test accuracy and loss of the trained weights beside the initial weights, the same training on shuffled "
            "labels, and a random step of the trained length: bars are means, whiskers 95% intervals, dots single seeds.",
            (
                charts.intervals("test accuracy: mean, 95% CI, each seed", rows),
                charts.intervals("test loss: mean, 95% CI, each seed", loss_rows, "test loss", scale=1.0),
            ),
        ),
        FigureSection(
            "Along the straight line from W₀ to W_T",
            "Test loss and accuracy at W₀ + α(W_T − W₀): "
            + (
                "the loss falls all the way from the initial to the trained weights."
                if not rises
                else f"the loss falls overall but rises at α = {', '.join(map(str, rises))}."
            ),
            line_figures(result),
        ),
        FigureSection(
            "Undo one layer",
            "Each layer reset to its initial weights while the others stay trained: how much of the accuracy each "
            "layer's change carries.",
            (charts.intervals("one layer reset to its initial weights, the others trained", undo, width=620),),
        ),
    ]
    for index, extra in enumerate((paths_section(path, result), surface_section(path, result))):
        if extra is not None:
            sections.insert(1 + index, extra)
    change = np.asarray(where.get("pixel_change") or [], dtype=np.float64)
    if change.ndim == 2:
        activity = np.asarray(where["pixel_activity"], dtype=np.float64)
        dead = activity == 0
        sections.append(
            FigureSection(
                "Where the change lands",
                f"Mean change per pixel over seeds beside how often the pixel is lit (Spearman ρ = "
                f"{where['change_activity_rank_correlation']:.2f}); the {where['never_active_inputs']} never-lit pixels (×) "
                "cannot move.",
                (
                    run_figures.image_map(
                        "‖ΔW‖ of each pixel's first-layer weights",
                        change,
                        png.palette(("#000004", "#721f81", "#f1605d", "#fcfdbf")),
                        "‖ΔW‖",
                        dead,
                    ),
                    run_figures.image_map(
                        "training images where it is lit", activity, png.sequential(), "images", dead
                    ),
                ),
            )
        )
    table_rows = [
        [
            "trained",
            ci(trained["test_accuracy_after"]),
            ci(trained["test_loss_after"], False),
            ci(trained["distance"], False),
            "",
            "",
        ]
    ]
    for name, control in checks.items():
        versus = control["accuracy_vs_trained"]
        table_rows.append(
            [
                CONTROL_LABELS.get(name, f"{name.removeprefix('undo_')} layer undone"),
                ci(control["test_accuracy"]),
                ci(control["test_loss"], False),
                ci(control["distance"], False) if "distance" in control else "",
                "—" if versus["p"] is None else f"{versus['p']:.1e}",
                "—" if versus["hedges_g"] is None else f"{versus['hedges_g']:.1f}",
            ]
        )
    config = result["config"]
    model = config["model"] if config.get("model") not in (None, "mlp") else f"hidden {config['hidden']}"
    return render(
        title=f"weightlab prove · {config['dataset']} · {model} · {n} seed{'s' if n != 1 else ''}",
        subtitle=f"{display_name(path)} · does training optimise the weights, or merely change them?",
        cards=[
            {
                "label": "trained accuracy",
                "value": pct(trained["test_accuracy_after"]["mean"]),
                "note": ci(trained["test_accuracy_after"]),
            },
            {
                "label": "shuffled labels",
                "value": pct(checks["shuffled_labels"]["test_accuracy"]["mean"]),
                "note": "same training, nothing to learn",
            },
            {
                "label": "random step",
                "value": pct(checks["random_step"]["test_accuracy"]["mean"]),
                "note": "same length, random direction",
            },
            {"label": "verdict", "value": "holds" if result["verdict"]["holds"] else "not shown", "note": f"{n} seeds"},
        ],
        sentences_title="Verdict",
        sentences=result["verdict"]["sentences"],
        holds=result["verdict"]["holds"],
        tables=[
            TableSection(
                "Every condition, mean [95% CI] over seeds",
                ["condition", "test accuracy", "test loss", "‖W_T − W₀‖", "Welch p vs trained", "Hedges g"],
                table_rows,
            )
        ],
        figures=sections,
        footer=[
            ("proof", display_name(path)),
            ("seeds", ", ".join(map(str, result["seeds"]))),
            ("config", json.dumps(config)),
            ("runs", "; ".join(f"{r['trained']}, {r['shuffled_labels']}" for r in result["runs"])),
        ],
    )
