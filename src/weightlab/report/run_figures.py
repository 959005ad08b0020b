"""The run page's figures beyond the replay: curves over steps, distributions over time, the loss surface,
where the change lands, the confusion matrix and the examples it gets wrong."""

from __future__ import annotations

import numpy as np

from weightlab.report import charts, png, replay_charts, replay_data
from weightlab.report.charts import CONTROL, INITIAL, TEST, TRAINED, encoded, layer, mapper


def curves(history: dict, steps: dict, snapshot_steps: np.ndarray, evaluations: dict, steps_per_epoch: int):
    """Loss, accuracy and distance from the initial weights, all over steps with one shared, zoomable x axis."""
    total = max(int(steps["step"][-1]) if len(steps["step"]) else 1, int(snapshot_steps[-1]), 1)
    x_range = {"shared": "steps", "start": 0, "end": total}
    epoch_ends = np.arange(1, len(history["loss"]) + 1) * steps_per_epoch
    loss = charts.figure("loss", x_label="step", y_axis_type="log", x_range=x_range)
    keep = charts.thinned(len(steps["loss"]))
    step_loss = np.asarray(steps["loss"], dtype=np.float64)
    series = [
        ("each batch", steps["step"][keep], step_loss[keep], "#c9d7f2"),
        ("moving average", steps["step"][keep], charts.smooth(step_loss, max(1, steps_per_epoch // 20))[keep], TRAINED),
        ("validation, per epoch", epoch_ends, history["val_loss"], CONTROL, "dashed"),
    ]
    if "test_loss" in evaluations:
        series.append(("test, per snapshot", snapshot_steps, evaluations["test_loss"], TEST))
    charts.lines(loss, series)
    accuracy = charts.figure("accuracy", x_label="step", x_range=x_range)
    series = [
        ("training, per epoch", epoch_ends, history["accuracy"], TRAINED),
        ("validation, per epoch", epoch_ends, history["val_accuracy"], CONTROL, "dashed"),
    ]
    if "test_accuracy" in evaluations:
        series.append(("test, per snapshot", snapshot_steps, evaluations["test_accuracy"], TEST))
    charts.lines(accuracy, series, marker=True)
    accuracy["legend"] = {"location": "bottom_right"}
    distance = charts.figure("‖W_t − W₀‖: distance from the initial weights", x_label="step", x_range=x_range)
    charts.lines(distance, _per_variable(steps, "distance_from_init"))
    distance["legend"] = {"location": "top_left"}
    for plot in (loss, accuracy, distance):
        charts.add_cursor(plot, float(snapshot_steps[-1]))
    return loss, accuracy, distance


def _per_variable(steps: dict, key: str, window: int = 1) -> list:
    """Each variable's curve over the steps where the norms were taken (`--step-stats-every`), smoothed over
    ``window`` steps' worth of them."""
    measured = np.flatnonzero(np.isfinite(steps["distance_from_init"]).all(axis=1))
    spacing = int(np.median(np.diff(measured))) if len(measured) > 1 else 1
    keep = measured[charts.thinned(len(measured))]
    points = max(1, window // max(spacing, 1))
    return [
        (
            str(name),
            steps["step"][keep],
            charts.smooth(steps[key][measured, column], points)[charts.thinned(len(measured))],
            colour,
        )
        for column, (name, colour) in enumerate(zip(steps["variables"], charts.colours()))
    ]


def update_sizes(steps: dict, steps_per_epoch: int):
    window = max(1, steps_per_epoch // 20)
    x_range = {"shared": "updates", "start": 0, "end": max(1, int(steps["step"][-1]) if len(steps["step"]) else 1)}
    norm = charts.figure(
        "‖W_t − W_{t−1}‖: each update (moving average)", x_label="step", y_axis_type="log", x_range=x_range
    )
    charts.lines(norm, _per_variable(steps, "update_norm", window))
    ratio = charts.figure(
        "‖W_t − W_{t−1}‖ / ‖W_t‖: relative to the weights", x_label="step", y_axis_type="log", x_range=x_range
    )
    charts.lines(ratio, _per_variable(steps, "update_ratio", window))
    return norm, ratio


def distributions_over_time(weights: dict[str, np.ndarray], snapshot_steps: np.ndarray, prefix: str = "") -> list:
    """Per variable, every snapshot's distribution as one column of a heatmap, with quantile lines."""
    plots = []
    for name, stack in weights.items():
        edges = replay_data.histogram_edges(stack, 80)
        counts = replay_data.histograms_over_time(stack, edges)
        quantiles = replay_data.quantiles_over_time(stack)
        plots.append(replay_charts.histogram_over_time(name, counts, edges, quantiles, snapshot_steps, prefix))
    return plots


def flipped_and_unchanged(layers: list[dict]):
    names = [layer["name"] for layer in layers]
    return charts.bars(
        "fraction of each variable's weights",
        names,
        [
            ("sign flipped", [layer["frac_sign_flipped"] for layer in layers], CONTROL),
            ("never moved", [layer["frac_unchanged"] for layer in layers], INITIAL),
        ],
    )


def image_map(title: str, values: np.ndarray, palette: np.ndarray, tooltip: str, marked: np.ndarray | None = None):
    """A per-pixel map with hover; ``marked`` pixels get a cross."""
    height, width = values.shape
    spec = charts.figure(
        title,
        420,
        380,
        x_range=[0, width],
        y_range=[0, height],
        match_aspect=True,
        plain=True,
        legend={"location": "bottom_left"},
    )
    high = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    colours = mapper(png.hex_colours(palette), 0, high or 1.0)
    layer(
        spec,
        "image",
        {"image": [encoded(values[::-1])]},
        {"image": "image"},
        {"x": 0, "y": 0, "dw": width, "dh": height, "color_mapper": colours},
        hover=[["row, column", "$y{0}, $x{0}"], [tooltip, "@image{0.000}"]],
    )
    layer(spec, "colorbar", style={"color_mapper": colours, "width": 8})
    if marked is not None and marked.any():
        rows, cols = np.nonzero(marked)
        layer(
            spec,
            "scatter",
            {"x": cols + 0.5, "y": height - rows - 0.5},
            {"x": "x", "y": "y"},
            {"marker": "x", "size": 5, "line_color": "#00e5ff"},
            legend="never lit",
        )
    return spec


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int):
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
    names = [str(c) for c in range(classes)]
    title = f"confusion matrix: {int(np.trace(matrix)):,} of {int(matrix.sum()):,} right"
    return charts.matrix(
        title, matrix, names, names, [("true", "@y"), ("predicted", "@x"), ("examples", "@count{0,0}")]
    )


def mistakes(images: np.ndarray, labels, predicted, confidence, count: int = 40, columns: int = 10):
    """The test examples it misclassifies most confidently, as true → predicted (confidence)."""
    wrong = np.nonzero(labels != predicted)[0]
    wrong = wrong[np.argsort(-confidence[wrong])][:count]
    rows = max(1, -(-len(wrong) // columns))
    spec = charts.figure(
        "the most confident mistakes",
        80 * columns + 40,
        95 * rows + 40,
        x_range=[0, columns * 1.2],
        y_range=[0, rows * 1.45],
        plain=True,
    )
    x = (np.arange(len(wrong)) % columns) * 1.2 + 0.1
    y = (rows - 1 - np.arange(len(wrong)) // columns) * 1.45 + 0.1
    if len(wrong):
        shown = images[wrong]
        low, high = float(shown.min()), float(shown.max())
        layer(
            spec,
            "image",
            {"image": [encoded(image[::-1]) for image in shown], "x": x, "y": y},
            {"image": "image", "x": "x", "y": "y"},
            {"dw": 1.0, "dh": 1.0, "color_mapper": mapper(replay_charts.GREYS, low, high if high > low else low + 1)},
        )
    captions = {"x": x + 0.5, "y": y + 1.05, "text": [f"{labels[i]}→{predicted[i]} {confidence[i]:.0%}" for i in wrong]}
    layer(
        spec, "text", captions, {"x": "x", "y": "y", "text": "text"}, {"text_align": "center", "text_font_size": "11px"}
    )
    return spec
