"""The report: one self-contained HTML page per run, proof or comparison.

Figures come from `figures` (computed results in, matplotlib Figure out), are embedded as
PNG data URIs, and go into one jinja2 template with autoescaping on: run names, paths and
config values are user input. No JavaScript, no network requests.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np

from weightlab.errors import RunDirError
from weightlab.fileio import atomic_write

DPI = 80


@dataclasses.dataclass(frozen=True)
class FigureSection:
    title: str
    what: str  # one sentence: what to see in it
    png: str  # base64
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class TableSection:
    title: str
    headers: list[str]
    rows: list[list[str]]
    what: str = ""


def section(title: str, what: str, figure) -> FigureSection:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    width, height = (round(v * DPI) for v in figure.get_size_inches())
    return FigureSection(title, what, base64.b64encode(buffer.getvalue()).decode("ascii"), width, height)


def render(**context) -> str:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("weightlab.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    context.setdefault("cards", [])
    context.setdefault("tables", [])
    context.setdefault("notes", [])
    context.setdefault("sentences", [])
    context.setdefault("holds", True)
    return environment.get_template("report.html.j2").render(**context)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value, digits=3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(summary: dict, percent=True) -> str:
    fmt = (lambda v: f"{100 * min(max(v, 0), 1):.1f}%") if percent else (lambda v: f"{v:.3f}")
    if summary["mean"] is None:
        return "—"
    if summary["n"] < 2 or summary.get("ci_low") is None:
        return fmt(summary["mean"])
    return f"{fmt(summary['mean'])} [{fmt(summary['ci_low'])}, {fmt(summary['ci_high'])}]"


# -- a run ----------------------------------------------------------------------------------


def run_report(stored_run, dataset=None) -> str:
    """The report of one stored run. ``dataset`` (its arrays) saves loading them again."""
    from weightlab import data
    from weightlab.analysis.controls import row_change_map
    from weightlab.analysis.inputs import pixel_activity
    from weightlab.report import figures

    s = stored_run.summary
    config = s["config"]
    history, steps, predictions = stored_run.history(), stored_run.steps(), stored_run.predictions()
    _, _, weights = stored_run.snapshots()
    initial = {name: stack[0] for name, stack in weights.items()}
    final = {name: stack[-1] for name, stack in weights.items()}
    first = s["layers"][0]["name"]
    steps_per_epoch = max(1, s["steps"] // max(1, config["epochs"]))
    frozen = s["frozen_inputs"]
    notes = []
    if dataset is None:
        try:
            dataset = data.load(s["dataset"], use_remote=False)
        except Exception as error:  # the report still renders; only the data-dependent panels go
            notes.append(
                f"The dataset is not in the cache here ({error}); the pixel-activity map and the misclassified digits are left out."
            )

    sections = [
        section(
            "Before and after training",
            f"Test accuracy went from {_pct(s['test_accuracy_before'])} to {_pct(s['test_accuracy_after'])} "
            f"and test loss from {_num(s['test_loss_before'])} to {_num(s['test_loss_after'])}; chance is 10%.",
            figures.before_after(s),
        ),
        section(
            "Training curves",
            "Accuracy and loss per epoch on the training and validation data, and the loss of every batch: "
            "the loss falls fast in the first epoch, then slowly.",
            figures.training_curves(history, steps, steps_per_epoch),
        ),
        section(
            "Weights before and after, per variable",
            "The initial weights (grey) are Glorot-uniform with biases at zero; training (blue) "
            "spreads them out and gives the biases values: the distribution itself changes.",
            figures.weight_histograms(initial, final),
        ),
    ]
    if np.isfinite(steps["distance_from_init"]).any():
        sections += [
            section(
                "Distance from the initial weights",
                f"How far each variable has moved from its initial value: {first} ends "
                f"{s['layers'][0]['l2_distance']:.1f} away, most of it in the first epoch.",
                figures.distance_from_init(steps, steps_per_epoch),
            ),
            section(
                "Update size over training",
                "Each step's change, absolute and relative to the weights: Adam's steps shrink as the loss flattens.",
                figures.update_sizes(steps, steps_per_epoch),
            ),
        ]
    else:
        notes.append("The per-step weight norms were not recorded (--no-step-stats): their figures are left out.")
    sections += [
        section(
            "Sign flips and weights that never moved",
            f"{_pct(s['layers'][0]['frac_unchanged'])} of {first} is bit-identical to its initial value; "
            "every other variable moved entirely.",
            figures.flipped_and_unchanged(s["layers"]),
        ),
        section(
            "What each hidden unit looks at",
            f"Each of the {config['hidden']} tiles is one hidden unit's 784 incoming weights laid out as a 28×28 image: "
            "random noise at initialisation; after training, stroke-like patterns appear, and the difference shows what training wrote.",
            figures.unit_images(initial[first], final[first]),
        ),
    ]
    change = row_change_map(initial[first], final[first])
    if dataset is not None:
        fit_samples = s["samples"]["train"]
        activity = pixel_activity(dataset.x_train[:fit_samples]).reshape(28, 28)
        sections.append(
            section(
                "Where the change lands",
                f"The first layer's change per pixel beside how often each pixel is lit: the "
                f"{frozen['never_active_inputs']} pixels never lit (×) did not move at all — the tutorial's printed sample is one of them.",
                figures.pixel_maps(change, activity, fit_samples),
            )
        )
    sections.append(
        section(
            "Confusion matrix",
            f"Rows are the true digits, columns the predictions; {int((predictions['label'] != predictions['predicted']).sum())} "
            "test images are wrong, and the off-diagonal cells show which digits it confuses.",
            figures.confusion(predictions["label"], predictions["predicted"]),
        )
    )
    if dataset is not None:
        sections.append(
            section(
                "Digits it still gets wrong",
                "The test images it misclassifies most confidently, as true→predicted (confidence).",
                figures.mistakes(
                    dataset.x_test, predictions["label"], predictions["predicted"], predictions["confidence"]
                ),
            )
        )

    layer_table = TableSection(
        "What changed in each layer",
        [
            "variable",
            "shape",
            "‖W₀‖",
            "‖W_T‖",
            "‖W_T − W₀‖",
            "relative change",
            "cos(W₀, W_T)",
            "sign flipped",
            "never moved",
        ],
        [
            [
                layer["name"],
                "×".join(map(str, layer["shape"])),
                _num(layer["l2_init"]),
                _num(layer["l2_final"]),
                _num(layer["l2_distance"]),
                _num(layer["relative_change"]),
                _num(layer["cosine_to_init"]),
                _pct(layer["frac_sign_flipped"]),
                _pct(layer["frac_unchanged"]),
            ]
            for layer in s["layers"]
        ],
        "Relative change and cosine are undefined for biases, which start at zero.",
    )
    from weightlab.report.terminal import frozen_explanation

    explanation = [line.replace("[bold]", "").replace("[/]", "") for line in frozen_explanation(s)[1:]]
    return render(
        title=f"weightlab run · {s['dataset']} · hidden {config['hidden']} · seed {config['seed']}",
        subtitle=f"{s['run_id']} · {s['backend']} · {s['training_path']} · {s['parameters']:,} parameters · {s['steps']:,} steps",
        cards=[
            {
                "label": "test accuracy",
                "value": _pct(s["test_accuracy_after"]),
                "note": f"before training {_pct(s['test_accuracy_before'])}",
            },
            {
                "label": "test loss",
                "value": f"{_num(s['test_loss_after'])}",
                "note": f"before training {_num(s['test_loss_before'])}",
            },
            {
                "label": "first layer moved",
                "value": f"{s['layers'][0]['l2_distance']:.1f}",
                "note": f"‖W_T − W₀‖, {s['layers'][0]['relative_change']:.2f}× ‖W₀‖",
            },
            {"label": "never moved", "value": _pct(s["layers"][0]["frac_unchanged"]), "note": f"of {first}"},
            {
                "label": "training",
                "value": f"{s['train_seconds']:.1f} s",
                "note": f"{1e6 * s['train_seconds'] / max(1, s['steps']):.0f} µs per step",
            },
        ],
        sentences_title="Training diverged" if s.get("diverged") else "What the tutorial's printout shows",
        sentences=([_divergence_sentence(s)] if s.get("diverged") else []) + explanation,
        holds=not s.get("diverged"),
        tables=[layer_table],
        figures=sections,
        notes=notes,
        footer=_run_footer(stored_run),
    )


def _divergence_sentence(summary: dict) -> str:
    d = summary["diverged"]
    return (
        f"The loss stopped being finite at step {d['step']:,} (epoch {d['epoch']}, loss {d['loss']}); training stopped there and "
        f"everything below is of the last finite step, {d['kept_steps']:,}. A smaller --learning-rate usually cures it."
    )


def _run_footer(stored_run) -> list[tuple[str, str]]:
    s = stored_run.summary
    config_file = stored_run.path / "config.json"
    versions = json.loads(config_file.read_text()).get("versions", {}) if config_file.is_file() else {}
    epoch_seconds = stored_run.history().get("seconds", [])
    return [
        ("run", s["run_id"]),
        ("config", json.dumps(s["config"])),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("backend · path", f"{s['backend']} · {s['training_path']}"),
        (
            "dataset",
            f"{s['dataset']} from {s['dataset_source']} in {s['data_seconds']:.2f} s ({s['samples']['train']:,} "
            f"train, {s['samples']['validation']:,} validation, {s['samples']['test']:,} test)",
        ),
        ("timings", f"training {s['train_seconds']:.2f} s; epochs " + ", ".join(f"{v:.2f} s" for v in epoch_seconds)),
    ]


# -- a proof --------------------------------------------------------------------------------


def proof_report(path: Path, result: dict) -> str:
    from weightlab.report import figures

    trained, checks = result["trained"], result["controls"]
    where = result["where"]
    n = len(result["seeds"])
    sections = [
        section(
            "Trained against the controls",
            "Test accuracy and loss of the trained weights beside the initial weights, the same training on shuffled labels, "
            "and a random step of the trained length: bars are means, whiskers 95% intervals, dots single seeds.",
            figures.controls_bars(result),
        ),
        section(
            "Along the straight line from W₀ to W_T",
            "Test loss and accuracy at W₀ + α(W_T − W₀): "
            + (
                "the loss falls all the way from the initial to the trained weights."
                if not result["line"]["rises_before_1"]
                else f"the loss falls overall but rises at α = {', '.join(map(str, result['line']['rises_before_1']))}."
            ),
            figures.interpolation(result),
        ),
        section(
            "Undo one layer",
            "Each layer reset to its initial weights while the others stay trained: how much of the accuracy each layer's change carries.",
            figures.undo_bars(result),
        ),
        section(
            "Where the change lands",
            f"Mean change per pixel over seeds beside how often the pixel is lit (Spearman ρ = "
            f"{where['change_activity_rank_correlation']:.2f}); the {where['never_active_inputs']} never-lit pixels (×) cannot move.",
            figures.pixel_maps(
                np.asarray(where["pixel_change"]),
                np.asarray(where["pixel_activity"]),
                max(1, int(np.max(where["pixel_activity"]))),
            ),
        ),
    ]
    labels = {
        "initial_weights": "initial weights",
        "shuffled_labels": "trained on shuffled labels",
        "random_step": "random step, trained length",
    }
    rows = [
        [
            "trained",
            _ci(trained["test_accuracy_after"]),
            _ci(trained["test_loss_after"], False),
            _ci(trained["distance"], False),
            "",
            "",
        ]
    ]
    for name, control in checks.items():
        versus = control["accuracy_vs_trained"]
        rows.append(
            [
                labels.get(name, f"{name.removeprefix('undo_')} layer undone"),
                _ci(control["test_accuracy"]),
                _ci(control["test_loss"], False),
                _ci(control["distance"], False) if "distance" in control else "",
                "—" if versus["p"] is None else f"{versus['p']:.1e}",
                "—" if versus["hedges_g"] is None else f"{versus['hedges_g']:.1f}",
            ]
        )
    config = result["config"]
    return render(
        title=f"weightlab prove · {config['dataset']} · hidden {config['hidden']} · {n} seed{'s' if n != 1 else ''}",
        subtitle=f"{path.name} · does training optimise the weights, or merely change them?",
        cards=[
            {
                "label": "trained accuracy",
                "value": _pct(trained["test_accuracy_after"]["mean"]),
                "note": _ci(trained["test_accuracy_after"]),
            },
            {
                "label": "shuffled labels",
                "value": _pct(checks["shuffled_labels"]["test_accuracy"]["mean"]),
                "note": "same training, nothing to learn",
            },
            {
                "label": "random step",
                "value": _pct(checks["random_step"]["test_accuracy"]["mean"]),
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
                rows,
            )
        ],
        figures=sections,
        footer=[
            ("proof", path.name),
            ("seeds", ", ".join(map(str, result["seeds"]))),
            ("config", json.dumps(config)),
            ("runs", "; ".join(f"{r['trained']}, {r['shuffled_labels']}" for r in result["runs"])),
        ],
    )


# -- a comparison ---------------------------------------------------------------------------


def comparison_report(path: Path, result: dict) -> str:
    from weightlab.report import figures
    from weightlab.store import read_run

    axis = result["axis"]
    runs = {
        variant["value"]: [read_run(path / "runs" / run_id) for run_id in variant["runs"]]
        for variant in result["variants"]
    }
    curves, histograms, distances = [], [], []
    steps_per_epoch = 1
    for variant in result["variants"]:
        stored = runs[variant["value"]]
        curves.append((str(variant["value"]), [r.summary["history"] for r in stored]))
        firsts = [r.snapshots()[2] for r in stored]
        first = next(iter(firsts[0]))
        histograms.append(
            (
                str(variant["value"]),
                np.concatenate([w[first][-1].ravel() for w in firsts]),
                np.concatenate([w[first][0].ravel() for w in firsts]),
            )
        )
        distances.append((str(variant["value"]), [r.steps()["distance_from_init"][:, 0] for r in stored]))
        steps_per_epoch = max(1, stored[0].summary["steps"] // stored[0].config.epochs)
    sections = [
        section(
            "Test accuracy per variant",
            "Means with 95% intervals over the same seeds; dots are single seeds.",
            figures.variant_bars(axis, result),
        ),
        section(
            "Training curves, overlaid",
            "Every variant on shared axes; the band spans the seeds, the line is their mean.",
            figures.variant_curves(axis, curves),
        ),
        section(
            "First-layer weights, overlaid",
            "The distribution of trained weights and of their change, all seeds pooled, one curve per variant.",
            figures.variant_histograms(axis, histograms),
        ),
        section(
            "Distance from the initial weights",
            "How far the first layer travels, per variant: mean over seeds and its range.",
            figures.variant_distance(axis, distances, steps_per_epoch),
        ),
    ]
    rows = []
    for variant in result["variants"]:
        first = next(iter(variant["layers"].values()))
        rows.append(
            [
                f"{axis}={variant['value']}",
                f"{variant['parameters']:,}",
                _ci(variant["test_accuracy_after"]),
                _ci(variant["test_loss_after"], False),
                f"{first['relative_change']['mean']:.2f}",
                _pct(first["frac_unchanged"]["mean"]),
                f"{variant['train_seconds']['mean']:.1f} s",
            ]
        )
    n = len(result["seeds"])
    return render(
        title=f"weightlab compare · {axis}: {', '.join(map(str, result['values']))} · {n} seed{'s' if n != 1 else ''}",
        subtitle=f"{path.name} · the same seeds and data order for every variant, so differences are paired",
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
                rows,
            )
        ],
        figures=sections,
        footer=[
            ("comparison", path.name),
            ("seeds", ", ".join(map(str, result["seeds"]))),
            ("config", json.dumps(result["config"])),
        ],
    )


# -- a sweep ------------------------------------------------------------------------------------


def sweep_report(path: Path, result: dict) -> str:
    from weightlab.report import figures
    from weightlab.store import read_run

    axes = list(result["grid"])
    finished = [point for point in result["points"] if point["finished"]]
    label = ", ".join(axes)

    def name(point):
        return ", ".join(str(point["point"][axis]) for axis in axes)

    curves = []
    for point in finished:
        runs = [
            read_run(path / "runs" / cell["cell"])
            for cell in result["cells"]
            if cell["point"] == point["point"] and cell["status"] == "complete"
        ]
        curves.append((name(point), [r.summary["history"] for r in runs]))
    shaped = {
        "variants": [{"value": name(point), "test_accuracy_after": point["test_accuracy_after"]} for point in finished]
    }
    sections = []
    if finished:
        sections = [
            section(
                "Test accuracy per grid point",
                "Means with 95% intervals over the seeds that finished; dots are single seeds.",
                figures.variant_bars(label, shaped),
            ),
            section(
                "Training curves, overlaid",
                "Every grid point on shared axes; the band spans the seeds, the line is their mean.",
                figures.variant_curves(label, curves),
            ),
        ]
    rows = [
        [
            name(point),
            f"{point['finished']}/{point['of']}",
            _ci(point["test_accuracy_after"]) if point["finished"] else "—",
            _ci(point["test_loss_after"], False) if point["finished"] else "—",
            f"{point['train_seconds']['mean']:.1f} s" if point["finished"] else "—",
        ]
        for point in result["points"]
    ]
    failed = [f"{cell['cell']}: {cell['error']}" for cell in result["cells"] if cell["status"] == "failed"]
    counts = result["counts"]
    return render(
        title=f"weightlab sweep · {label} · {len(result['points'])} points × {result['seeds']} seeds",
        subtitle=f"{path.name} · {counts['complete']} cells complete, {counts['failed']} failed, {counts['pending']} pending",
        sentences_title="Failed cells" if failed else "",
        sentences=failed,
        holds=not failed,
        tables=[
            TableSection(
                "Grid points, mean [95% CI] over seeds",
                [label, "finished", "test accuracy", "test loss", "training"],
                rows,
            )
        ],
        figures=sections,
        footer=[("sweep", path.name), ("grid", json.dumps(result["grid"])), ("config", json.dumps(result["config"]))],
    )


# -- any directory ----------------------------------------------------------------------------


def write_report(directory: str | os.PathLike, dataset=None) -> Path:
    """Render the report of a run, proof or comparison directory into its report.html (atomically)."""
    from weightlab.store import read_run

    directory = Path(directory)
    if (directory / "proof.json").is_file():
        page = proof_report(directory, json.loads((directory / "proof.json").read_text()))
    elif (directory / "comparison.json").is_file():
        page = comparison_report(directory, json.loads((directory / "comparison.json").read_text()))
    elif (directory / "sweep.json").is_file():
        page = sweep_report(directory, json.loads((directory / "sweep.json").read_text()))
    elif (directory / "summary.json").is_file():
        page = run_report(read_run(directory), dataset=dataset)
    else:
        raise RunDirError(
            f"{directory} holds no summary.json, proof.json, comparison.json or "
            "sweep.json; pass a directory made by weightlab run, prove, compare or sweep"
        )
    target = directory / "report.html"
    with atomic_write(target, encoding="utf-8") as handle:
        handle.write(page)
    return target
