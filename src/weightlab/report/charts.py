"""Interactive figures as specifications: computed numbers in, a JSON-able description of a Bokeh figure out.

The page's script (``templates/page.js``) hands each specification to BokehJS's plotting API,
inlined from the bokeh wheel, which draws it in the browser: Python never builds Bokeh's own
model objects (serialising a few hundred of them took seconds). A specification is:

``{"title", "width", "height", "x_label", "y_label", "x_axis_type", "y_axis_type", "x_range", "y_range",
"match_aspect", "plain", "legend", "x_ticks", "layers": [...]}`` where a range is ``[start, end]``, ``{"factors": [...]}``
or ``{"shared": key, "start", "end"}`` (one range object per key, so those figures pan and zoom together), and
a layer is ``{"glyph": <a Bokeh glyph method, "span", "whisker" or "colorbar">, "data": {column: values},
"fields": {glyph property: column}, "style": {property: value}, "name", "legend", "hover": [[label, format]]}``.
A style value ``{"mapper": …}`` is a colour mapper; a column given by ``encoded`` travels as base64.
Every figure gets pan, box zoom, wheel zoom and reset; layers with ``hover`` read out their values.
"""

from __future__ import annotations

import base64
import itertools
import warnings

import numpy as np

TRAINED, INITIAL, CONTROL, TEST = "#1f6feb", "#9aa4b2", "#d1495b", "#2a9d8f"
PALETTE = ("#1f6feb", "#d1495b", "#2a9d8f", "#e9a23b", "#7b61ff", "#6c757d", "#8c564b", "#17becf")
CURSOR = "replay-cursor"  # a Span at the replay's step, on every step axis
CURSOR_INDEX = "replay-cursor-index"  # a Span at the replay's snapshot number, on snapshot axes


def colours():
    return itertools.cycle(PALETTE)


def encoded(array: np.ndarray) -> dict:
    """A 1-D column or a 2-D image as base64 float32 (or uint8): far smaller and faster than JSON lists of numbers."""
    array = np.asarray(array)
    dtype = "uint8" if array.dtype == np.uint8 else "float32"
    with np.errstate(
        over="ignore"
    ):  # a diverging run's huge losses become float32's inf, which the page draws off-scale
        raw = np.ascontiguousarray(array, dtype="<f4" if dtype == "float32" else np.uint8).tobytes()
    return {"__array__": base64.b64encode(raw).decode("ascii"), "dtype": dtype, "shape": list(array.shape)}


def figure(title: str, width: int = 520, height: int = 280, x_label: str = "", y_label: str = "", **options) -> dict:
    spec = {"title": title, "width": width, "height": height, "x_label": x_label, "y_label": y_label, "layers": []}
    spec.update(options)
    return spec


def layer(
    spec: dict,
    glyph: str,
    data: dict | None = None,
    fields: dict | None = None,
    style: dict | None = None,
    name: str | None = None,
    legend: str | None = None,
    hover: list | None = None,
) -> dict:
    item = {"glyph": glyph, "data": data or {}, "fields": fields or {}, "style": style or {}}
    for key, value in (("name", name), ("legend", legend), ("hover", hover)):
        if value is not None:
            item[key] = value
    spec["layers"].append(item)
    return item


def mapper(palette: list[str], low: float, high: float, kind: str = "linear", nan_color: str = "#f6f8fb") -> dict:
    """A colour mapper: ``kind`` "linear", "log" or "eqhist" (Bokeh's Linear-, Log- and EqHistColorMapper)."""
    return {
        "mapper": {"kind": kind, "palette": palette, "low": float(low), "high": float(high), "nan_color": nan_color}
    }


def add_cursor(spec: dict, location: float, name: str = CURSOR) -> None:
    """A vertical dashed line the replay moves (by name)."""
    layer(
        spec,
        "span",
        style={"location": float(location), "dimension": "height", "line_color": "#444", "line_dash": "dashed"},
        name=name,
    )


def thinned(length: int, points: int = 1500) -> np.ndarray:
    """Indices of at most ``points`` evenly spaced samples, ends included: 8,000 points draw no better than 1,500."""
    return np.unique(np.linspace(0, length - 1, min(length, points)).astype(int)) if length else np.arange(0)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (the first points average what exists so far)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    return (cumulative[1:] - cumulative[np.maximum(0, ends - window)]) / np.minimum(ends, window)


def spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column, over the rows (seeds): (min, max, mean), NaN (a diverged run's missing values) left out;
    a column with no finite value stays NaN, a gap in the figure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: the gap is what is meant
        return np.nanmin(values, axis=0), np.nanmax(values, axis=0), np.nanmean(values, axis=0)


def lines(spec: dict, series, marker: bool = False) -> None:
    """Each (label, x, y, colour[, dash]) as one line with a legend entry; hover reads label, x and y."""
    for label, x, y, colour, *dash in series:
        data = {"x": encoded(np.asarray(x, np.float64)), "y": encoded(np.asarray(y, np.float64))}
        style = {"line_color": colour, "line_width": 1.6, "line_dash": dash[0] if dash else "solid"}
        hover = [[label, "@y{0.[0000]}"], ["at", "@x{0,0.[00]}"]]
        layer(spec, "line", data, {"x": "x", "y": "y"}, style, legend=label, hover=hover)
        if marker:
            layer(
                spec,
                "scatter",
                data,
                {"x": "x", "y": "y"},
                {"fill_color": colour, "line_color": colour, "size": 5},
                legend=label,
            )
    spec.setdefault("legend", {"location": "top_right"})


def bars(title: str, categories: list[str], groups, width: int = 620, height: int = 300) -> dict:
    """Grouped bars: each (label, values, colour) is one group; hover reads category, group and value."""
    groups = list(groups)
    factors = [[c, g[0]] for c in categories for g in groups]
    spec = figure(title, width, height, x_range={"factors": factors}, x_label_orientation=0.6)
    data = {
        "x": factors,
        "top": [float(np.nan if g[1][i] is None else g[1][i]) for i in range(len(categories)) for g in groups],
        "colour": [g[2] for _ in categories for g in groups],
    }
    layer(
        spec,
        "vbar",
        data,
        {"x": "x", "top": "top", "fill_color": "colour"},
        {"width": 0.85, "line_color": None},
        hover=[["", "@x"], ["value", "@top{0.[0000]}"]],
    )
    return spec


def intervals(
    title: str, rows, y_label: str = "test accuracy (%)", width: int = 540, height: int = 300, scale: float = 100.0
) -> dict:
    """Per (label, statistics, colour): a bar at the mean, a whisker over the 95% interval, a dot per seed."""
    labels = [row[0] for row in rows]
    spec = figure(title, width, height, y_label=y_label, x_range={"factors": labels})
    means, lows, highs, dots_x, dots_y = [], [], [], [], []
    for label, summary, _ in rows:
        mean = np.nan if summary["mean"] is None else scale * summary["mean"]
        means.append(mean)
        lows.append(scale * summary["ci_low"] if summary.get("ci_low") is not None else mean)
        highs.append(scale * summary["ci_high"] if summary.get("ci_high") is not None else mean)
        values = [v for v in summary["values"] if v is not None]
        dots_x += [label] * len(values)
        dots_y += [scale * v for v in values]
    data = {"x": labels, "mean": means, "low": lows, "high": highs, "colour": [row[2] for row in rows]}
    layer(
        spec,
        "vbar",
        data,
        {"x": "x", "top": "mean", "fill_color": "colour"},
        {"width": 0.6, "fill_alpha": 0.35, "line_color": None},
        hover=[["", "@x"], ["mean", "@mean{0.000}"], ["95% CI", "@low{0.000} – @high{0.000}"]],
    )
    layer(spec, "whisker", data, {"base": "x", "lower": "low", "upper": "high"}, {"line_width": 1.5})
    layer(
        spec,
        "scatter",
        {"x": dots_x, "y": dots_y},
        {"x": "x", "y": "y"},
        {"size": 6, "fill_color": "#333", "line_color": "#333"},
    )
    return spec


def matrix(title: str, values: np.ndarray, x_labels: list[str], y_labels: list[str], tooltip: list) -> dict:
    """A small matrix as cells (rows top to bottom) with counts and hover; off-diagonal cells shaded by log count."""
    rows, columns = values.shape
    spec = figure(
        title,
        480,
        440,
        "predicted",
        "true",
        x_range={"factors": x_labels},
        y_range={"factors": list(reversed(y_labels))},
    )
    off = values.astype(np.float64).copy()
    if rows == columns:
        np.fill_diagonal(off, 0)
    shade = np.log1p(off) / max(float(np.log1p(off).max()), 1e-9)
    r, c = np.divmod(np.arange(rows * columns), columns)
    data = {
        "x": [x_labels[i] for i in c],
        "y": [y_labels[i] for i in r],
        "count": values.ravel(),
        "alpha": np.where(r == c, 0.0, shade.ravel()),
        "text": [f"{v:,}" if v else "" for v in values.ravel().tolist()],
        "text_colour": np.where(r == c, TRAINED, "#222").tolist(),
    }
    layer(
        spec,
        "rect",
        data,
        {"x": "x", "y": "y", "fill_alpha": "alpha"},
        {"width": 1, "height": 1, "fill_color": CONTROL, "line_color": "#eeeeee"},
        hover=tooltip,
    )
    layer(
        spec,
        "text",
        data,
        {"x": "x", "y": "y", "text": "text", "text_color": "text_colour"},
        {"text_align": "center", "text_baseline": "middle", "text_font_size": "10px"},
    )
    return spec
