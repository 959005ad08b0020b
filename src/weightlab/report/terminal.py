"""What `weightlab run` and `weightlab data` print: the tutorial's printout, and what it leaves out.

All terminal output of weightlab lives here, in `terminal_experiments` (prove, compare, sweep)
and in cli.py; nothing else prints.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from weightlab.data.sources import SOURCE_LABELS

# Piped into a file or a log, output is never wrapped: rich would assume 80 columns (or $COLUMNS)
# and break sentences and tables; a line kept whole is one grep away. Tables keep their natural width.
UNWRAPPED_WIDTH = 10_000


def make_console() -> Console:
    """Rich's console on stdout: fitted to a terminal or a notebook, never wrapped anywhere else (a pipe, a log)."""
    console = Console(highlight=False)
    if console.is_terminal or console.is_jupyter:
        return console
    return Console(highlight=False, soft_wrap=True, width=UNWRAPPED_WIDTH)


console = make_console()


def sample_text(values) -> str:
    """Weights the way the tutorial prints them (numpy's brackets, four decimals), always in fixed notation.

    numpy switches the whole array to scientific notation when one value is small (9.5749e-05
    beside 2.5540e-02); here every value keeps four decimals, right-aligned to a common width.
    """
    numbers = [f"{value:.4f}" for value in np.asarray(values, dtype=np.float32).astype(np.float64).ravel()]
    width = max(map(len, numbers), default=0)
    return "[" + " ".join(number.rjust(width) for number in numbers) + "]"


def epoch_line(logs: dict, epochs: int) -> str:
    metrics = " · ".join(
        f"{key} {logs[key]:.4f}" for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key in logs
    )
    return f"Epoch {logs['epoch']}/{epochs} · {logs['seconds']:.1f} s · {metrics}"


@contextlib.contextmanager
def training_progress(epochs: int, show_bar: bool, show_epochs: bool):
    """A progress hook for training: a rich bar on a terminal, and one line per epoch."""
    bar = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (show_bar and console.is_terminal),
    )
    task = bar.add_task("training", total=None)

    def hook(done: int, total: int, logs: dict | None) -> None:
        bar.update(task, completed=done, total=total or None)
        if logs is not None and show_epochs:
            console.print(epoch_line(logs, epochs))  # rich keeps it above a live bar

    with bar:
        yield hook


def _loss(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def print_run(summary: dict, path) -> None:
    s = summary
    console.print(
        f"[bold]weightlab run[/] · {s['dataset']} from {SOURCE_LABELS.get(s['dataset_source'], s['dataset_source'])} "
        f"({s['data_seconds']:.2f} s) · backend {s['backend']} · {s['training_path']} · "
        f"{architecture_text(s)}, {s['parameters']:,} parameters"
    )
    if s.get("training_path_reason"):
        console.print(f"[dim]Trained on {s['training_path']}: {s['training_path_reason']}.[/]")
    console.print("\n[bold]Weights before training:[/]")
    for sample in s["weight_samples"]:
        console.print(f"{tuple(sample['shape'])} weights sample: {sample_text(sample['before'])}")
    console.print(
        f"Test accuracy before training: {s['test_accuracy_before']:.4f} (loss {_loss(s['test_loss_before'])})"
    )
    chance = 1 / s.get("classes", 10)
    if abs(s["test_accuracy_before"] - chance) > 0.3 * chance:
        console.print(
            f"  [dim]Chance is {chance:.0%}, but an untrained network is not a fair guesser: its random weights favour a few classes, "
            "so its accuracy lands anywhere from a few % to ~20% depending on the seed.[/]"
        )
    console.print("\n[bold]Weights after training:[/]")
    for sample in s["weight_samples"]:
        console.print(f"{tuple(sample['shape'])} weights sample: {sample_text(sample['after'])}")
    console.print(
        f"[bold]Test accuracy after training: {s['test_accuracy_after']:.4f}[/] (loss {_loss(s['test_loss_after'])}) · "
        f"{s['steps']:,} steps in {s['train_seconds']:.1f} s ({1e6 * s['train_seconds'] / max(1, s['steps']):.0f} µs/step)"
    )
    console.print()
    console.print(layer_table(s["layers"]))
    console.print()
    for line in frozen_explanation(s):
        console.print(line)
    console.print(
        f"\nRun saved to [bold]{path}[/]"
        + (f"; open {path}/report.html for the figures" if (Path(path) / "report.html").is_file() else "")
    )


def layer_table(layers: list[dict]) -> Table:
    table = Table(title="What changed in each layer", title_justify="left")
    for header in (
        "variable",
        "shape",
        "‖W₀‖",
        "‖W_T‖",
        "‖W_T−W₀‖",
        "relative",
        "cos(W₀,W_T)",
        "sign flipped",
        "unchanged",
    ):
        table.add_column(header, justify="left" if header in ("variable", "shape") else "right")

    def number(value, pattern="{:.3f}"):
        return "—" if value is None else pattern.format(value)

    for layer in layers:
        table.add_row(
            layer["name"],
            "×".join(map(str, layer["shape"])),
            number(layer["l2_init"]),
            number(layer["l2_final"]),
            number(layer["l2_distance"]),
            number(layer["relative_change"]),
            number(layer["cosine_to_init"]),
            number(layer["frac_sign_flipped"], "{:.1%}"),
            number(layer["frac_unchanged"], "{:.1%}"),
        )
    return table


def architecture_text(summary: dict) -> str:
    """ "784→64→10" for an MLP (its widths), else the model's description ("cnn 64", "mine.keras")."""
    config = summary["config"]
    if config.get("model", "mlp") != "mlp" or "input_shape" not in summary:
        return summary.get("model", config.get("model", "mlp"))
    widths = config["hidden"] if isinstance(config["hidden"], list) else [config["hidden"]]
    return "→".join(str(n) for n in [*summary["input_shape"], *widths, summary["classes"]])


def _input_text(position: list[int]) -> str:
    """ "pixel (15, 15)" for an image's input, "feature 7" for a vector's."""
    return f"feature {position[0]}" if len(position) == 1 else f"pixel ({', '.join(map(str, position))})"


def frozen_explanation(summary: dict) -> list[str]:
    """Plain sentences on why the tutorial's first sample did (or did not) move."""
    f = summary["frozen_inputs"]
    if f is None:  # the first layer is not a Dense layer on the raw inputs
        return ["[bold]Inputs that can never move their weights[/]", f"None to count: {summary['frozen_inputs_note']}."]
    name = summary["moved_sample"]["variable"]
    first = [0] * len(f["busiest_pixel"])
    # images' pixels are lit; feature vectors' features are active
    inputs, examples, lit = ("features", "examples", "active") if len(first) == 1 else ("pixels", "images", "lit")
    lines = ["[bold]What the tutorial's printout shows[/]"]
    if first in f["never_active_pixels"]:
        lines.append(
            f"Its first sample, {name}[0][:5], holds weights of {_input_text(first)}, which is 0 in all {f['images']:,} training {examples}: "
            f"every gradient for its {f['units']} weights is exactly 0, so they stay bit-identical to their initial values."
        )
    else:
        lines.append(
            f"Its first sample, {name}[0][:5], holds weights of {_input_text(first)}, which is active in some training examples, so they could move."
        )
    share = f["weights_of_never_active_inputs"] / f["kernel_size"]
    lines.append(
        f"{f['never_active_inputs']} of {f['inputs']} {inputs} are 0 in every training {examples[:-1]}: their "
        f"{f['weights_of_never_active_inputs']:,} weights ({share:.1%} of {name}) cannot move "
        f"({'and none did' if f['never_active_rows_unchanged'] else 'yet some did: check the data'}); summary.json lists the {inputs}."
    )
    if f["unchanged_elsewhere"]:
        lines.append(
            f"In all {f['unchanged_weights'] / f['kernel_size']:.1%} of {name} is "
            f"unchanged: {f['unchanged_elsewhere']:,} more weights sit on rare {inputs} "
            f"({lit} in a median of {f['median_activity_of_other_unchanged']:.0f} {examples}) whose hidden units never fired when they were {lit}."
        )
    moved = summary["moved_sample"]
    lines.append(
        f"Weights that did move: {_input_text(f['busiest_pixel'])}, {lit} in {f['busiest_pixel_activity']:,} {examples}, "
        f"{moved['variable']}[{moved['row']}][:5]"
    )
    lines.append(f"  before {sample_text(moved['before'])}")
    lines.append(f"  after  {sample_text(moved['after'])}")
    return lines


def print_dataset(dataset, cache_file) -> None:
    for source, reason in dataset.tried:
        console.print(f"{dataset.name}: tried {SOURCE_LABELS.get(source, source)}: {reason}")
    console.print(
        f"{dataset.name}: {len(dataset.x_train):,} train / {len(dataset.x_test):,} test images from "
        f"{SOURCE_LABELS.get(dataset.source, dataset.source)} in {dataset.seconds:.2f} s; "
        + (f"SHA-256 verified; cached at {cache_file}" if dataset.verified else "generated, not cached")
    )


def print_error(message: str) -> None:
    print(f"weightlab: error: {message}", file=sys.stderr)


@contextlib.contextmanager
def stage_progress(show: bool):
    """A progress hook for multi-run commands: (done, total, what is happening now)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not (show and console.is_terminal),
    )
    task = bar.add_task("starting", total=None)

    def hook(done: int, total: int, stage: str) -> None:
        bar.update(task, completed=done, total=total, description=stage)

    with bar:
        yield hook
