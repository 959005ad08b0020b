"""The page of one run: the headline numbers, the replay, the curves and the pictures of its weights."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from weightlab.report import replay_view, run_figures
from weightlab.report.html import FigureSection, Replay, TableSection, num, pct, render
from weightlab.report.tiles import first_layer_tiling, image_shape


def classes_of(summary: dict, predictions: dict) -> int:
    """``summary["classes"]`` where the run says it; else enough for every label and prediction it stored."""
    if summary.get("classes"):
        return int(summary["classes"])
    seen = max(int(predictions["label"].max(initial=0)), int(predictions["predicted"].max(initial=0))) + 1
    return max(seen, 10 if summary.get("dataset") in ("mnist", "fashion_mnist", "synthetic") else 2)


def model_description(summary: dict) -> str:
    if summary.get("model"):
        return str(summary["model"])
    return f"hidden {summary['config']['hidden']}"


def _in_thread(function, *arguments) -> Future:
    """``function(*arguments)`` started in a thread of its own; its result (or exception) comes from the future."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(function, *arguments)
    finally:
        pool.shutdown(wait=False)  # the thread ends with the call


def run_report(stored_run, dataset=None) -> str:
    """The report of one stored run. ``dataset`` (its arrays) saves loading them again."""
    s = stored_run.summary
    history, steps, predictions = stored_run.history(), stored_run.steps(), stored_run.predictions()
    snapshot_steps, snapshot_epochs, weights = stored_run.snapshots()
    evaluations = stored_run.snapshot_evaluations()
    landscape = stored_run.landscape()
    tiling = first_layer_tiling(s, weights)
    first_kernel_shape = next((w.shape[1:] for w in weights.values() if w.ndim >= 3), ())
    shape = image_shape(s, first_kernel_shape) if first_kernel_shape else None
    steps_per_epoch = max(1, s["steps"] // max(1, len(history["loss"]) or 1))
    notes = []
    if dataset is None:
        dataset = _load_dataset(s, notes)

    # The distributions' quantiles and histograms beside the replay's pictures: both are numpy and zlib
    # work that leaves the interpreter free, so they share the two cores (≈0.05 s of a 0.2 s page).
    distributions = _in_thread(run_figures.distributions_over_time, weights, snapshot_steps)
    track, track_payload = replay_view.track(
        "",
        "",
        snapshot_steps,
        snapshot_epochs,
        weights,
        tiling,
        evaluations,
        shape,
        None if landscape is None else landscape["path"],
    )
    replay = Replay(
        "Watch it learn",
        _replay_sentence(tiling, evaluations, len(snapshot_steps)),
        (track,),
        {
            "timeline": {"by": "step", "steps": track_payload["steps"], "epochs": track_payload["epochs"]},
            "tracks": [track_payload],
        },
        replay_view.static_pictures(tiling, weights[tiling.variable]) if tiling else (),
    )
    sections = [
        FigureSection(
            "Training curves",
            "Loss and accuracy over steps (batch by batch, per epoch, and on the test set at every snapshot), and how far "
            "each variable has moved from its initial value; drag to pan, scroll to zoom, the dashed line is the replay's step.",
            run_figures.curves(history, steps, snapshot_steps, evaluations, steps_per_epoch),
        ),
        FigureSection(
            "Every variable's distribution at every snapshot",
            "One column per snapshot, shaded by how many weights fall in each bin (log scale), with the 5%, 25%, 50%, 75% "
            "and 95% quantiles over it: the initial distribution spreads as training writes into it.",
            tuple(distributions.result()),
        ),
    ]
    if landscape is not None:
        from weightlab.report import replay_charts

        ratio = np.asarray(landscape["explained_variance_ratio"], dtype=np.float64)
        sections.append(
            FigureSection(
                "The path on the loss surface",
                f"The snapshots' weights projected on the top two principal directions of the path, which hold "
                f"{ratio[0]:.1%} and {ratio[1]:.1%} of its variance, over the training loss in that plane "
                f"({len(landscape['sample_indices']):,} training examples); hover a point for its step.",
                (
                    replay_charts.landscape(
                        [
                            {
                                "label": "training path",
                                "xy": landscape["path"],
                                "steps": snapshot_steps,
                                "loss": landscape["path_loss"],
                                "colour": "#e9a23b",
                                "name": "replay-path-point",
                            }
                        ],
                        landscape,
                        (f"PC1 ({ratio[0]:.1%} of the path's variance)", f"PC2 ({ratio[1]:.1%})"),
                        "the weights' path on the loss surface",
                    ),
                ),
            )
        )
    if np.isfinite(steps["update_norm"]).any():
        sections.append(
            FigureSection(
                "Update size over training",
                "Each step's change, absolute and relative to the weights: the steps shrink as the loss flattens.",
                run_figures.update_sizes(steps, steps_per_epoch),
            )
        )
    else:
        notes.append(
            "The per-step weight norms were not recorded (--no-step-stats): the distance and update-size curves are left out."
        )
    sections += [
        FigureSection(
            "Sign flips and weights that never moved",
            f"{pct(s['layers'][0]['frac_unchanged'])} of {s['layers'][0]['name']} is bit-identical to its initial value.",
            (run_figures.flipped_and_unchanged(s["layers"]),),
        ),
    ]
    sections += _data_sections(s, tiling, shape, weights, predictions, dataset)
    return render(
        title=f"weightlab run · {s['dataset']} · {model_description(s)} · seed {s['config']['seed']}",
        subtitle=f"{s['run_id']} · {s['backend']} · {s['training_path']} · {s['parameters']:,} parameters · {s['steps']:,} steps",
        cards=_cards(s),
        sentences_title="Training diverged" if s.get("diverged") else "What the tutorial's printout shows",
        sentences=([_divergence_sentence(s)] if s.get("diverged") else []) + _frozen_sentences(s),
        holds=not s.get("diverged"),
        tables=[_layer_table(s)],
        replay=replay if len(snapshot_steps) > 1 else None,
        figures=sections,
        notes=notes,
        footer=_footer(stored_run),
    )


def _load_dataset(summary: dict, notes: list[str]):
    from weightlab import data

    try:
        return data.load(summary["dataset"], use_remote=False)
    except Exception as error:  # the report still renders; only the data-dependent panels go
        notes.append(
            f"The dataset is not available here ({error}); the pixel-activity map and the mistakes are left out."
        )
        return None


def _replay_sentence(tiling, evaluations: dict, snapshots: int) -> str:
    parts = [f"{snapshots} snapshots; ← → step through them, Home and End jump to the ends."]
    if tiling is not None:
        what = "unit's incoming weights as an image" if tiling.kind == "dense" else "filter as a small kernel"
        parts.append(
            f"Top: each {what}, now and minus its initial value (one colour scale for every snapshot, so a faint "
            "picture is a small change; tick the box to see each snapshot's change on its own scale)."
        )
    parts.append("Then each variable's weights now (blue) over the initial ones (grey).")
    if "panel/probabilities" in evaluations:
        parts.append(
            "Last: fixed test examples with the predicted probability of each class (true class green, a wrong prediction red)."
        )
    return " ".join(parts)


def _data_sections(s, tiling, shape, weights, predictions, dataset) -> list[FigureSection]:
    sections = []
    flat_image = tiling is not None and tiling.kind == "dense" and tiling.channels == 1
    if flat_image and dataset is not None and dataset.x_train[0].size == tiling.tile_height * tiling.tile_width:
        kernels = weights[tiling.variable]
        change = np.sqrt(np.sum((kernels[-1].astype(np.float64) - kernels[0]) ** 2, axis=1)).reshape(shape[:2])
        fit_samples = s["samples"]["train"]
        activity = dataset.activity(fit_samples).reshape(shape[:2])
        from weightlab.report import png

        sections.append(
            FigureSection(
                "Where the change lands",
                f"The first layer's change per input pixel beside how often each pixel is lit in the {fit_samples:,} training "
                "images: the pixels never lit (×) did not move at all.",
                (
                    run_figures.image_map(
                        "‖ΔW‖ of each pixel's first-layer weights",
                        change,
                        png.palette(("#000004", "#721f81", "#f1605d", "#fcfdbf")),
                        "‖ΔW‖",
                        activity == 0,
                    ),
                    run_figures.image_map(
                        "fraction of training images where it is lit",
                        activity / max(fit_samples, 1),
                        png.sequential(),
                        "fraction",
                        activity == 0,
                    ),
                ),
            )
        )
    wrong = int((predictions["label"] != predictions["predicted"]).sum())
    sections.append(
        FigureSection(
            "Confusion matrix",
            f"Rows are the true classes, columns the predictions; {wrong:,} test examples are wrong, and the shaded "
            "off-diagonal cells show which classes it confuses.",
            (run_figures.confusion(predictions["label"], predictions["predicted"], classes_of(s, predictions)),),
        )
    )
    if dataset is not None and shape is not None and dataset.x_test[0].size == int(np.prod(shape)):
        images = dataset.x_test.reshape(len(dataset.x_test), *shape)
        images = images.mean(axis=3) if images.ndim == 4 else images
        sections.append(
            FigureSection(
                "Examples it still gets wrong",
                "The test examples it misclassifies most confidently, as true→predicted (confidence).",
                (
                    run_figures.mistakes(
                        images, predictions["label"], predictions["predicted"], predictions["confidence"]
                    ),
                ),
            )
        )
    return sections


def _cards(s: dict) -> list[dict]:
    first = s["layers"][0]
    return [
        {
            "label": "test accuracy",
            "value": pct(s["test_accuracy_after"]),
            "note": f"before training {pct(s['test_accuracy_before'])}",
        },
        {
            "label": "test loss",
            "value": num(s["test_loss_after"]),
            "note": f"before training {num(s['test_loss_before'])}",
        },
        {
            "label": "first layer moved",
            "value": f"{first['l2_distance']:.1f}",
            "note": f"‖W_T − W₀‖, {num(first['relative_change'], 2)}× ‖W₀‖",
        },
        {"label": "never moved", "value": pct(first["frac_unchanged"]), "note": f"of {first['name']}"},
        {
            "label": "training",
            "value": f"{s['train_seconds']:.1f} s",
            "note": f"{1e6 * s['train_seconds'] / max(1, s['steps']):.0f} µs per step",
        },
    ]


def _layer_table(s: dict) -> TableSection:
    headers = [
        "variable",
        "shape",
        "‖W₀‖",
        "‖W_T‖",
        "‖W_T − W₀‖",
        "relative change",
        "cos(W₀, W_T)",
        "sign flipped",
        "never moved",
    ]
    rows = [
        [
            layer["name"],
            "×".join(map(str, layer["shape"])),
            num(layer["l2_init"]),
            num(layer["l2_final"]),
            num(layer["l2_distance"]),
            num(layer["relative_change"]),
            num(layer["cosine_to_init"]),
            pct(layer["frac_sign_flipped"]),
            pct(layer["frac_unchanged"]),
        ]
        for layer in s["layers"]
    ]
    return TableSection(
        "What changed in each layer",
        headers,
        rows,
        "Relative change and cosine are undefined for biases, which start at zero.",
    )


def _frozen_sentences(s: dict) -> list[str]:
    if not s.get("frozen_inputs"):
        return [s["frozen_inputs_note"]] if s.get("frozen_inputs_note") else []
    from weightlab.report.terminal import frozen_explanation

    return [line.replace("[bold]", "").replace("[/]", "") for line in frozen_explanation(s)[1:]]


def _divergence_sentence(summary: dict) -> str:
    d = summary["diverged"]
    return (
        f"The loss stopped being finite at step {d['step']:,} (epoch {d['epoch']}, loss {d['loss']}); training stopped there and "
        f"everything below is of the last finite step, {d['kept_steps']:,}. A smaller --learning-rate usually cures it."
    )


def _footer(stored_run) -> list[tuple[str, str]]:
    s = stored_run.summary
    versions = stored_run.config_file().get("versions", {}) if (stored_run.path / "config.json").is_file() else {}
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
