"""Figures: each function takes computed results and returns a matplotlib Figure. Nothing else.

Compute once, draw later: the numbers come from a run, proof or comparison directory; these
functions only draw them. They use matplotlib's object API (no pyplot, no global state), so
they are safe in any process and never open a window.
"""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

TRAINED, INITIAL, CONTROL = "#1f6feb", "#9aa4b2", "#d1495b"
PALETTE = ("#1f6feb", "#d1495b", "#2a9d8f", "#e9a23b", "#7b61ff", "#6c757d")


def _figure(
    width: float,
    height: float,
    columns: int = 1,
    rows: int = 1,
    left: float = 0.55,
    right: float = 0.15,
    bottom: float = 0.5,
    top: float = 0.35,
    gap: float = 0.65,
):
    """A figure with a grid of axes and fixed margins, in inches.

    Fixed margins, not matplotlib's constrained layout: that lays out by drawing the figure
    once more, which made up a third of the report's time. The defaults fit a title, tick
    labels and an x label; figures with a y label or two-line tick labels ask for more.
    """
    figure = Figure(figsize=(width, height))
    axes = figure.subplots(
        rows,
        columns,
        squeeze=False,
        gridspec_kw=dict(
            left=left / width,
            right=1 - right / width,
            bottom=bottom / height,
            top=1 - top / height,
            wspace=gap * columns / max(width - left - right - gap * (columns - 1), 1e-3),
            hspace=gap * rows / max(height - bottom - top - gap * (rows - 1), 1e-3),
        ),
    )
    return figure, axes.ravel()


def _log_y(ax) -> None:
    """A log y axis with its decades marked (the minor ticks' hundreds of artists doubled a figure's drawing time).

    Call it after plotting. An axis whose data holds no positive finite value (norms that were not
    recorded are NaN) stays linear: a log scale has nothing to show there, and matplotlib warns.
    """
    if not np.isfinite(ax.dataLim.minposy):
        return
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())


def _histogram(ax, values: np.ndarray, bins: np.ndarray, density: bool = False, **style) -> None:
    """One histogram as one artist (``ax.hist`` draws a rectangle per bin, slowly)."""
    counts, _ = np.histogram(values, bins=bins, density=density)
    ax.stairs(counts, bins, **style)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (the first points average what exists so far)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.maximum(0, np.arange(1, len(values) + 1) - window)]) / counts


# -- a run ----------------------------------------------------------------------------------


def before_after(summary: dict) -> Figure:
    figure, (accuracy, loss) = _figure(7.5, 2.6, columns=2)
    for ax, key, label, fmt in (
        (accuracy, "test_accuracy", "test accuracy", "{:.1%}"),
        (loss, "test_loss", "test loss", "{:.3f}"),
    ):
        values = [
            np.nan if summary[f"{key}_{when}"] is None else summary[f"{key}_{when}"] for when in ("before", "after")
        ]
        bars = ax.bar(["before training", "after training"], values, color=[INITIAL, TRAINED], width=0.55)
        ax.bar_label(bars, [fmt.format(v) for v in values], padding=2)
        ax.set_title(label)
        top = np.nanmax(values) if np.isfinite(values).any() else 1.0
        ax.set_ylim(0, max(1.0, top * 1.2) if key == "test_accuracy" else top * 1.25)
        ax.spines[["top", "right"]].set_visible(False)
    accuracy.axhline(0.1, color="#555", lw=0.8, ls=":")
    accuracy.text(-0.45, 0.1, "chance", va="bottom", ha="left", fontsize=8, color="#555")
    return figure


def training_curves(history: dict, steps: dict, steps_per_epoch: int) -> Figure:
    figure, (accuracy, loss, per_step) = _figure(11, 3.0, columns=3)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in ((accuracy, "accuracy"), (loss, "loss")):
        ax.plot(epochs, history[key], "o-", color=TRAINED, label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s--", color=CONTROL, label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(f"{key} per epoch")
        ax.set_xticks(epochs)
        ax.legend(frameon=False)
    step_loss = np.asarray(steps["loss"])
    x = np.arange(1, len(step_loss) + 1) / steps_per_epoch
    per_step.scatter(x, step_loss, color=TRAINED, alpha=0.08, s=1, linewidths=0, label="each batch", rasterized=True)
    keep = _thinned(len(step_loss))
    per_step.plot(
        x[keep], _smooth(step_loss, max(1, steps_per_epoch // 20))[keep], color=TRAINED, lw=1.5, label="moving average"
    )
    _log_y(per_step)
    per_step.set_xlabel("epoch")
    per_step.set_title("training loss per step")
    per_step.legend(frameon=False)
    return figure


def weight_histograms(initial: dict, final: dict) -> Figure:
    names = list(initial)
    figure, axes = _figure(3.0 * len(names), 2.6, columns=len(names))
    for ax, name in zip(axes, names):
        w0, w1 = initial[name].ravel(), final[name].ravel()
        low, high = float(min(w0.min(), w1.min())), float(max(w0.max(), w1.max()))
        bins = np.linspace(low, high if high > low else low + 1e-6, 60)
        _histogram(ax, w0, bins, fill=True, color=INITIAL, alpha=0.75, label="at initialisation")
        _histogram(ax, w1, bins, color=TRAINED, lw=1.5, label="after training")
        ax.set_title(name)
        _log_y(ax)
    axes[0].legend(frameon=False, fontsize=8)
    return figure


def _thinned(length: int, points: int = 1500) -> np.ndarray:
    """Indices of at most ``points`` evenly spaced samples: a line of 8,000 points draws no better than 1,500."""
    return np.unique(np.linspace(0, length - 1, min(length, points)).astype(int)) if length else np.arange(0)


def _per_variable_over_steps(ax, steps: dict, key: str, steps_per_epoch: int, window: int = 1):
    keep = _thinned(len(steps["step"]))
    x = np.asarray(steps["step"])[keep] / steps_per_epoch
    for column, (name, color) in enumerate(zip(steps["variables"], itertools.cycle(PALETTE))):
        ax.plot(x, _smooth(steps[key][:, column], window)[keep], color=color, lw=1.2, label=str(name))
    ax.set_xlabel("epoch")


def distance_from_init(steps: dict, steps_per_epoch: int) -> Figure:
    figure, (ax,) = _figure(5.5, 3.0)
    _per_variable_over_steps(ax, steps, "distance_from_init", steps_per_epoch)
    ax.set_title("‖W_t − W_0‖: distance from the initial weights")
    ax.legend(frameon=False, fontsize=8)
    return figure


def update_sizes(steps: dict, steps_per_epoch: int) -> Figure:
    figure, (norm, ratio) = _figure(11, 3.0, columns=2)
    window = max(1, steps_per_epoch // 20)
    _per_variable_over_steps(norm, steps, "update_norm", steps_per_epoch, window)
    _per_variable_over_steps(ratio, steps, "update_ratio", steps_per_epoch, window)
    norm.set_title("‖W_t − W_{t−1}‖: size of each update (moving average)")
    ratio.set_title("‖W_t − W_{t−1}‖ / ‖W_t‖: update relative to the weights")
    for ax in (norm, ratio):
        _log_y(ax)
    norm.legend(fontsize=8, ncols=2, framealpha=0.9, edgecolor="none")  # a backdrop: the lines run under it
    return figure


def flipped_and_unchanged(layers: list[dict]) -> Figure:
    figure, (ax,) = _figure(6.5, 2.8)
    names = [layer["name"] for layer in layers]
    x = np.arange(len(names))
    flipped = [layer["frac_sign_flipped"] for layer in layers]
    unchanged = [layer["frac_unchanged"] for layer in layers]
    bars = ax.bar(x - 0.2, flipped, 0.4, color=CONTROL, label="sign flipped")
    ax.bar_label(bars, [f"{v:.1%}" for v in flipped], fontsize=8, padding=1)
    bars = ax.bar(x + 0.2, unchanged, 0.4, color=INITIAL, label="never moved (bit-identical)")
    ax.bar_label(bars, [f"{v:.1%}" for v in unchanged], fontsize=8, padding=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, max(flipped + unchanged + [0.05]) * 1.25)
    ax.legend(frameon=False)
    ax.set_title("fraction of each variable's weights")
    return figure


def _mosaic(kernel: np.ndarray, columns: int = 16, image_shape=(28, 28)) -> np.ndarray:
    """The kernel's columns (one per hidden unit) as image tiles in a grid, with NaN gutters."""
    units = kernel.shape[1]
    rows = -(-units // columns)
    h, w = image_shape
    mosaic = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for unit in range(units):
        r, c = divmod(unit, columns)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = kernel[:, unit].reshape(image_shape)
    return mosaic


def unit_images(initial_kernel: np.ndarray, final_kernel: np.ndarray) -> Figure:
    columns = 8 if initial_kernel.shape[1] > 16 else 4
    rows = -(-initial_kernel.shape[1] // columns)
    figure, axes = _figure(14, 0.55 * rows * 14 / 3 / columns * 1.05 + 0.6, columns=3)
    panels = (
        ("at initialisation", initial_kernel),
        ("after training", final_kernel),
        ("difference (what training added)", final_kernel - initial_kernel),
    )
    for ax, (title, kernel) in zip(axes, panels):
        limit = (
            float(np.nanpercentile(np.abs(kernel), 99.5)) or 1.0
        )  # a few extreme weights should not wash out the rest
        image = ax.imshow(_mosaic(kernel, columns), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
        figure.colorbar(image, ax=ax, shrink=0.7)
    return figure


def pixel_maps(change: np.ndarray, activity: np.ndarray, images: int) -> Figure:
    figure, (left, right) = _figure(8.5, 3.6, columns=2)
    dead = activity == 0
    shown = left.imshow(change, cmap="magma", interpolation="nearest")
    figure.colorbar(shown, ax=left, shrink=0.8)
    left.set_title("‖ΔW‖ of each pixel's first-layer weights")
    shown = right.imshow(activity / max(images, 1), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(shown, ax=right, shrink=0.8)
    right.set_title("fraction of training images where the pixel is lit")
    for ax in (left, right):
        rows, cols = np.nonzero(dead)
        ax.scatter(cols, rows, marker="x", s=8, color="#00e5ff", linewidths=0.6, label="never lit")
        ax.set_xticks([])
        ax.set_yticks([])
    left.legend(loc="lower left", fontsize=7, frameon=True)
    return figure


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> Figure:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
    figure, (ax,) = _figure(5.2, 4.6)
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    ax.imshow(np.log1p(off_diagonal), cmap="Reds", interpolation="nearest")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="#1f6feb" if i == j else "black",
                fontweight="bold" if i == j else None,
            )
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix: {int(np.trace(matrix)):,} of {int(matrix.sum()):,} right")
    return figure


def mistakes(
    images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, count: int = 40
) -> Figure:
    """The most confident mistakes, as one mosaic (one axes draws far faster than forty)."""
    wrong = np.nonzero(labels != predicted)[0]
    wrong = wrong[np.argsort(-confidence[wrong])][:count]
    columns = 10
    rows = max(1, -(-len(wrong) // columns))
    h, w = images.shape[1:3]
    cell_h, cell_w = h + 12, w + 6  # room for a caption above each digit
    mosaic = np.zeros((rows * cell_h, columns * cell_w))
    figure, (ax,) = _figure(10, 1.25 * rows + 0.2)
    for slot, index in enumerate(wrong):
        r, c = divmod(slot, columns)
        mosaic[r * cell_h + 12 : r * cell_h + 12 + h, c * cell_w + 3 : c * cell_w + 3 + w] = images[index]
        ax.text(
            c * cell_w + cell_w / 2,
            r * cell_h + 7,
            f"{labels[index]}→{predicted[index]} {confidence[index]:.0%}",
            ha="center",
            va="center",
            fontsize=8,
        )
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest", vmin=0, vmax=255)
    ax.set_axis_off()
    return figure


# -- a proof --------------------------------------------------------------------------------


def _point_with_interval(ax, x, summary, color, percent=True):
    if summary["mean"] is None:  # nothing finite to show (every run diverged)
        return
    scale = 100 if percent else 1
    mean = summary["mean"] * scale
    if summary["n"] >= 2 and summary["ci_low"] is not None:
        low, high = summary["ci_low"] * scale, summary["ci_high"] * scale
        ax.errorbar(x, mean, yerr=[[mean - low], [high - mean]], fmt="none", ecolor=color, capsize=6, lw=1.5)
    ax.bar(x, mean, 0.6, color=color, alpha=0.35)
    values = np.asarray([np.nan if v is None else v for v in summary["values"]], dtype=np.float64) * scale
    ax.scatter(np.full(len(values), x), values, color=color, s=14, zorder=3)


def controls_bars(result: dict) -> Figure:
    figure, (accuracy, loss) = _figure(11, 3.4, columns=2)
    rows = [("trained", result["trained"]["test_accuracy_after"], result["trained"]["test_loss_after"], TRAINED)]
    labels = {
        "initial_weights": "initial\nweights",
        "shuffled_labels": "shuffled\nlabels",
        "random_step": "random step,\nsame length",
    }
    for name, label in labels.items():
        control = result["controls"][name]
        rows.append((label, control["test_accuracy"], control["test_loss"], CONTROL))
    for x, (_, acc, los, color) in enumerate(rows):
        _point_with_interval(accuracy, x, acc, color)
        _point_with_interval(loss, x, los, color, percent=False)
    for ax in (accuracy, loss):
        ax.set_xticks(range(len(rows)), [row[0] for row in rows])
        ax.spines[["top", "right"]].set_visible(False)
    accuracy.set_ylabel("test accuracy (%)")
    accuracy.axhline(10, color="#555", lw=0.8, ls=":")
    accuracy.set_ylim(0, 100)
    loss.set_ylabel("test loss")
    accuracy.set_title("test accuracy: mean, 95% CI, each seed")
    loss.set_title("test loss: mean, 95% CI, each seed")
    return figure


def interpolation(result: dict) -> Figure:
    figure, (loss, accuracy) = _figure(11, 3.2, columns=2)
    alphas = np.asarray(result["line"]["alphas"])
    for ax, key, scale in ((loss, "test_loss", 1), (accuracy, "test_accuracy", 100)):
        values = np.asarray(result["line"][key]) * scale
        ax.fill_between(
            alphas, values.min(axis=0), values.max(axis=0), color=TRAINED, alpha=0.2, label="range over seeds"
        )
        ax.plot(alphas, values.mean(axis=0), color=TRAINED, lw=2, label="mean")
        for alpha, text in ((0.0, "W_0"), (1.0, "W_T")):
            ax.axvline(alpha, color="#555", lw=0.8, ls=":")
            ax.text(alpha, ax.get_ylim()[1], text, ha="center", va="bottom", fontsize=8)
        ax.set_xlabel("α in W_0 + α (W_T − W_0)")
    _log_y(loss)
    loss.set_title("test loss along the straight line")
    accuracy.set_title("test accuracy (%) along the straight line")
    loss.legend(frameon=False)
    return figure


def undo_bars(result: dict) -> Figure:
    figure, (ax,) = _figure(6.5, 3.0)
    rows = [("trained", result["trained"]["test_accuracy_after"], TRAINED)]
    rows += [
        (f"{name.removeprefix('undo_')}\nundone", summary["test_accuracy"], CONTROL)
        for name, summary in result["controls"].items()
        if name.startswith("undo_")
    ]
    rows.append(("initial\nweights", result["controls"]["initial_weights"]["test_accuracy"], INITIAL))
    for x, (_, summary, color) in enumerate(rows):
        _point_with_interval(ax, x, summary, color)
    ax.set_xticks(range(len(rows)), [row[0] for row in rows])
    ax.set_ylim(0, 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("one layer reset to its initial weights, the others trained")
    ax.spines[["top", "right"]].set_visible(False)
    return figure


# -- a comparison ---------------------------------------------------------------------------


def variant_curves(axis: str, variants: list[tuple[str, list[dict]]]) -> Figure:
    """Per-epoch curves of each variant, mean line and min–max band over seeds, on shared axes."""
    figure, axes = _figure(11, 3.2, columns=3)
    keys = (("val_accuracy", "validation accuracy"), ("loss", "training loss"), ("val_loss", "validation loss"))
    for ax, (key, title) in zip(axes, keys):
        for (label, histories), color in zip(variants, itertools.cycle(PALETTE)):
            longest = max((len(h.get(key, [])) for h in histories), default=0)
            if not longest:
                continue
            # a run that diverged stopped early: its missing epochs are NaN, left out of mean and band
            values = np.full((len(histories), longest), np.nan)
            for row, h in enumerate(histories):
                values[row, : len(h.get(key, []))] = [np.nan if v is None else v for v in h.get(key, [])]
            epochs = np.arange(1, values.shape[1] + 1)
            ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.2)
            ax.plot(epochs, np.nanmean(values, axis=0), "o-", color=color, label=f"{axis}={label}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend(frameon=False)
    return figure


def variant_histograms(axis: str, variants: list[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Each variant's first-layer weights after training (all seeds pooled), and their change, overlaid."""
    figure, (weights, change) = _figure(11, 3.0, columns=2)
    finals = np.concatenate([final.ravel() for _, final, _ in variants])
    changes = np.concatenate([(final - initial).ravel() for _, final, initial in variants])
    panels = (
        (weights, finals, lambda final, initial: final),
        (change, changes, lambda final, initial: final - initial),
    )
    for ax, pooled, quantity in panels:
        bins = np.linspace(np.percentile(pooled, 0.05), np.percentile(pooled, 99.95), 80)
        for (label, final, initial), color in zip(variants, itertools.cycle(PALETTE)):
            _histogram(
                ax, quantity(final, initial).ravel(), bins, density=True, lw=1.5, color=color, label=f"{axis}={label}"
            )
        _log_y(ax)
    weights.set_title("first-layer weights after training (density)")
    change.set_title("first-layer change W_T − W_0 (density)")
    weights.legend(frameon=False)
    return figure


def variant_distance(axis: str, variants: list[tuple[str, list[np.ndarray]]], steps_per_epoch: int) -> Figure:
    """‖W_t − W_0‖ of the first kernel over steps: mean and min–max band over seeds per variant."""
    figure, (ax,) = _figure(6.5, 3.0)
    for (label, curves), color in zip(variants, itertools.cycle(PALETTE)):
        values = np.asarray(curves)
        x = np.arange(1, values.shape[1] + 1) / steps_per_epoch
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2)
        ax.plot(x, values.mean(axis=0), color=color, lw=1.5, label=f"{axis}={label}")
    ax.set_xlabel("epoch")
    ax.set_title("first layer: distance from initial weights")
    ax.legend(frameon=False)
    return figure


def variant_bars(axis: str, result: dict) -> Figure:
    figure, (ax,) = _figure(6.5, 3.0)
    for x, (variant, color) in enumerate(zip(result["variants"], itertools.cycle(PALETTE))):
        _point_with_interval(ax, x, variant["test_accuracy_after"], color)
    values = [
        100 * v["test_accuracy_after"]["mean"]
        for v in result["variants"]
        if v["test_accuracy_after"]["mean"] is not None
    ] or [0.0, 100.0]
    ax.set_xticks(range(len(result["variants"])), [f"{axis}={v['value']}" for v in result["variants"]])
    spread = max(values) - min(values)
    ax.set_ylim(max(0, min(values) - max(2, 2 * spread)), min(100, max(values) + max(1, spread)))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("test accuracy: mean, 95% CI, each seed")
    ax.spines[["top", "right"]].set_visible(False)
    return figure
