"""The figures the replay moves: pictures of the first layer, histograms, the panel, the loss surface.

Each returns a figure specification (see ``charts``) whose moving parts are layers named
``<prefix>replay-…``; the page's script finds their data sources by name and swaps columns.
"""

from __future__ import annotations

import numpy as np

from weightlab.report import charts, png
from weightlab.report.charts import CURSOR_INDEX, INITIAL, TRAINED, encoded, figure, layer, mapper

RIGHT, WRONG, OTHER = "#2a9d8f", "#d1495b", "#b8c0cc"
GREYS = png.hex_colours(png.greys())


def _plain(spec: dict) -> dict:
    spec["plain"] = True  # no axes, no grid: a picture
    return spec


def picture(title: str, shape: tuple[int, int], limit: float, name: str, frame: int = 420, bar: bool = True) -> dict:
    """A mosaic of weights on a diverging scale ±limit, hover reading each weight; the replay fills it in.

    Two fit side by side: the mosaic's longer side is drawn ``frame`` pixels long. Without a colour ``bar`` the
    title (named ``<name>/title`` for the page's script, which rescales it) states the scale."""
    height, width = shape
    pixel = frame / max(height, width)
    spec = _plain(
        figure(title, round(width * pixel) + 95, round(height * pixel) + 45, x_range=[0, width], y_range=[0, height])
    )
    colours = mapper(png.hex_colours(png.diverging()), -limit, limit)
    layer(
        spec,
        "image",
        {"image": [encoded(np.full((1, 1), np.nan))]},
        {"image": "image"},
        {"x": 0, "y": 0, "dw": width, "dh": height, "color_mapper": colours},
        name=name,
        hover=[["weight", "@image{0.0000}"]],
    )
    if bar:
        layer(spec, "colorbar", style={"color_mapper": colours, "width": 8})
    else:
        spec["title_name"] = f"{name}/title"
    return spec


def replay_histogram(
    name: str,
    edges: np.ndarray,
    initial: np.ndarray,
    now: np.ndarray,
    prefix: str = "",
    width: int = 262,
    legend: bool = False,
) -> dict:
    """One variable's weights now (blue) over its initial weights (grey), in bins shared by every snapshot."""
    spec = figure(name, width, 200, legend={"location": "top_left"} if legend else None)
    data = {"left": edges[:-1], "right": edges[1:], "initial": initial.astype(float), "now": now.astype(float)}
    box = {"left": "left", "right": "right"}
    layer(
        spec,
        "quad",
        data,
        {**box, "top": "initial"},
        {"bottom": 0, "fill_color": INITIAL, "fill_alpha": 0.6, "line_color": None},
        legend="initial" if legend else None,
    )
    layer(
        spec,
        "quad",
        data,
        {**box, "top": "now"},
        {"bottom": 0, "fill_color": TRAINED, "fill_alpha": 0.25, "line_color": TRAINED},
        legend="now" if legend else None,
        name=f"{prefix}replay-histogram:{name}",
        hover=[["weights", "@left{0.000} … @right{0.000}"], ["now", "@now{0,0}"], ["initial", "@initial{0,0}"]],
    )
    return spec


def histogram_over_time(
    name: str,
    counts: np.ndarray,
    edges: np.ndarray,
    quantiles: np.ndarray,
    steps: np.ndarray,
    prefix: str = "",
    width: int = 540,
) -> dict:
    """Every snapshot's distribution as one column (shade = log count), with the 5/25/50/75/95% quantiles over it."""
    n = len(steps)
    ticks = np.unique(np.linspace(0, n - 1, min(n, 7)).astype(int))
    spec = figure(
        f"{name}: distribution at every snapshot",
        width,
        260,
        "step (one column per snapshot)",
        "weight",
        x_range=[0, n],
        y_range=[float(edges[0]), float(edges[-1])],
        grid=False,
        x_ticks={"ticks": (ticks + 0.5).tolist(), "labels": {str(t + 0.5): f"{int(steps[t]):,}" for t in ticks}},
    )
    shade = np.log1p(counts.T.astype(np.float64))
    layer(
        spec,
        "image",
        {"image": [encoded(shade)]},
        {"image": "image"},
        {
            "x": 0,
            "y": float(edges[0]),
            "dw": n,
            "dh": float(edges[-1] - edges[0]),
            "color_mapper": mapper(
                png.hex_colours(png.palette(("#ffffff", "#9ecae1", "#08306b"))), 0, float(shade.max()) or 1.0
            ),
        },
        hover=[["snapshot", "$x{0}"], ["weight", "$y{0.000}"], ["log(1 + count)", "@image{0.0}"]],
    )
    centres = (np.arange(n) + 0.5).tolist()
    labels = ["5%", "25%", "median", "75%", "95%"][: len(quantiles)]
    layer(
        spec,
        "multi_line",
        {"xs": [centres] * len(quantiles), "ys": quantiles, "q": labels},
        {"xs": "xs", "ys": "ys"},
        {"line_color": "#e9a23b", "line_width": 1.2},
        hover=[["quantile", "@q"]],
    )
    charts.add_cursor(spec, n - 0.5, prefix + CURSOR_INDEX)
    return spec


def panel(
    inputs: np.ndarray | None, labels: np.ndarray, probabilities: np.ndarray, prefix: str = "", columns: int = 8
) -> dict:
    """The fixed test examples (as pictures where they are images) and their predicted class probabilities.

    One cell per example: the picture on top, a bar per class below (the true class green, a
    wrong prediction red), a caption 'true → predicted (confidence)', and a red frame while it is wrong.
    """
    count, classes = probabilities.shape
    rows = -(-count // columns)
    picture_size, cell_w, bar_h = (9.0 if inputs is not None else 0.0), 12.0, 5.0
    cell_h = bar_h + 3.5 + (picture_size + 1.0 if inputs is not None else 0.0)
    spec = _plain(
        figure(
            "the panel: predicted probability of each class",
            110 * columns,
            int(rows * cell_h * 9) + 40,
            x_range=[0, columns * cell_w],
            y_range=[0, rows * cell_h],
        )
    )
    slot_x = (np.arange(count) % columns) * cell_w + 1.0
    slot_y = (rows - 1 - np.arange(count) // columns) * cell_h + 1.0
    if inputs is not None:
        low, high = float(inputs.min()), float(inputs.max())
        layer(
            spec,
            "image",
            {
                "image": [encoded(x[::-1]) for x in inputs],
                "x": slot_x + (cell_w - 2 - picture_size) / 2,
                "y": slot_y + bar_h + 2.2,
            },
            {"image": "image", "x": "x", "y": "y"},
            {
                "dw": picture_size,
                "dh": picture_size,
                "color_mapper": mapper(GREYS, low, high if high > low else low + 1),
            },
        )
    width = cell_w - 2.0
    klass = np.tile(np.arange(classes), count)
    example = np.repeat(np.arange(count), classes)
    left = slot_x[example] + klass * width / classes
    tracks = {
        "left": left,
        "right": left + width / classes * 0.85,
        "bottom": slot_y[example],
        "top": slot_y[example] + bar_h,
    }
    layer(spec, "quad", tracks, {k: k for k in tracks}, {"fill_color": "#eef1f5", "line_color": None})
    bars = {
        "left": left,
        "right": left + width / classes * 0.85,
        "bottom": slot_y[example],
        "top": slot_y[example] + bar_h * probabilities.ravel(),
        "p": probabilities.ravel(),
        "class": klass,
        "label": labels[example],
        "colour": bar_colours(labels, probabilities).ravel().tolist(),
    }
    layer(
        spec,
        "quad",
        bars,
        {k: k for k in ("left", "right", "top", "bottom")} | {"fill_color": "colour"},
        {"line_color": None},
        name=prefix + "replay-panel-bars",
        hover=[["true class", "@label"], ["class", "@class"], ["probability", "@p{0.000}"]],
    )
    frames = {
        "x": slot_x + width / 2,
        "y": slot_y - 0.6 + (cell_h - 0.8) / 2,
        "caption_y": slot_y + bar_h + 0.3,
        "wrong": wrong_alpha(labels, probabilities),
        "text": panel_captions(labels, probabilities),
    }
    layer(
        spec,
        "rect",
        frames,
        {"x": "x", "y": "y", "line_alpha": "wrong"},
        {"width": width + 0.8, "height": cell_h - 0.8, "fill_color": None, "line_color": WRONG, "line_width": 2},
        name=prefix + "replay-panel-frames",
    )
    layer(
        spec,
        "text",
        frames,
        {"x": "x", "y": "caption_y", "text": "text"},
        {"text_align": "center", "text_baseline": "bottom", "text_font_size": "10px", "text_color": "#333"},
        name=prefix + "replay-panel-frames",
    )
    return spec


def bar_colours(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(count, classes) colours: the true class green, a wrong prediction red, the rest grey (the page's script agrees)."""
    count, classes = probabilities.shape
    colours = np.full((count, classes), OTHER, dtype=object)
    colours[np.arange(count), probabilities.argmax(axis=1)] = WRONG
    colours[np.arange(count), labels] = RIGHT
    return colours


def wrong_alpha(labels: np.ndarray, probabilities: np.ndarray) -> list[float]:
    return (probabilities.argmax(axis=1) != labels).astype(float).tolist()


def panel_captions(labels: np.ndarray, probabilities: np.ndarray) -> list[str]:
    predicted = probabilities.argmax(axis=1)
    return [f"{t} → {p} ({probabilities[i, p]:.0%})" for i, (t, p) in enumerate(zip(labels, predicted))]


def contour_lines(a: np.ndarray, b: np.ndarray, grid: np.ndarray, levels: np.ndarray) -> dict:
    """xs, ys and level of every contour line of grid (B, A) over (a, b) (contourpy, which Bokeh depends on)."""
    import contourpy

    generator = contourpy.contour_generator(a, b, np.ma.masked_invalid(grid), line_type="Separate")
    xs, ys, level_of = [], [], []
    for level in levels:
        for line in generator.lines(float(level)):
            xs.append(line[:, 0])
            ys.append(line[:, 1])
            level_of.append(float(level))
    return {"xs": xs, "ys": ys, "level": level_of}


def landscape(paths: list[dict], grid: dict | None, axis_labels: tuple[str, str], title: str) -> dict:
    """The loss in a plane of weight space (shaded bands, contour lines) and the paths over it.

    ``paths``: per path ``label``, ``xy`` (n, 2), ``steps`` (n,), ``loss`` (n,) or None, ``colour``, ``name``
    (the replay's moving point, or None).
    """
    spec = figure(title, 580, 480, *axis_labels, legend={"location": "top_right"})
    if grid is not None:
        a, b, loss = (np.asarray(grid[k], np.float64) for k in ("grid_a", "grid_b", "grid_loss"))
        finite = loss[np.isfinite(loss)]
        if finite.size:
            levels = np.unique(np.quantile(finite, np.linspace(0, 1, 13)))
            colours = png.hex_colours(png.palette(("#08306b", "#6baed6", "#f7fbff"), 64))
            step_a, step_b = (a[1] - a[0] if len(a) > 1 else 1.0), (b[1] - b[0] if len(b) > 1 else 1.0)
            colour_mapper = mapper(colours, max(levels[0], 1e-6), max(levels[-1], 2e-6), "log")  # losses span decades
            layer(
                spec,
                "image",
                {"image": [encoded(loss)]},
                {"image": "image"},
                {
                    "x": float(a[0] - step_a / 2),
                    "y": float(b[0] - step_b / 2),
                    "dw": float(a[-1] - a[0] + step_a),
                    "dh": float(b[-1] - b[0] + step_b),
                    "color_mapper": colour_mapper,
                },
                hover=[["training loss", "@image{0.0000}"]],
            )
            layer(spec, "colorbar", style={"color_mapper": colour_mapper, "width": 8, "title": "training loss"})
            layer(
                spec,
                "multi_line",
                contour_lines(a, b, loss, levels[1:-1]),
                {"xs": "xs", "ys": "ys"},
                {"line_color": "#ffffff", "line_alpha": 0.7, "line_width": 1},
            )
    for path in paths:
        xy = np.asarray(path["xy"], np.float64)
        loss = path.get("loss")
        data = {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "step": np.asarray(path["steps"]).astype(int),
            "loss": np.full(len(xy), np.nan) if loss is None else np.asarray(loss, np.float64),
        }
        layer(
            spec,
            "line",
            data,
            {"x": "x", "y": "y"},
            {"line_color": path["colour"], "line_width": 2},
            legend=path["label"],
        )
        layer(
            spec,
            "scatter",
            data,
            {"x": "x", "y": "y"},
            {"size": 5, "fill_color": path["colour"], "line_color": "#333333"},
            legend=path["label"],
            hover=[["", path["label"]], ["step", "@step{0,0}"], ["training loss", "@loss{0.0000}"]],
        )
        if path.get("name"):
            layer(
                spec,
                "scatter",
                {"x": xy[-1:, 0], "y": xy[-1:, 1]},
                {"x": "x", "y": "y"},
                {"size": 14, "fill_color": None, "line_color": "#d1495b", "line_width": 3},
                name=path["name"],
            )
    return spec
