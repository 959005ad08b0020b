"""Where one default `weightlab run` spends its time, stage by stage, timed in this process.

    .venv/bin/python benchmarks/profile_run.py      # or: make bench-profile

Imports are timed as they happen; each later stage by wrapping the function that does it (in this
process only: weightlab's source is untouched) and charging it its own time, nested stages excluded.
The table goes to stdout and results/profile.md.
"""

from __future__ import annotations

import functools
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict

from tables import PYTHON, markdown, publish  # benchmarks/ is the script's path


class Stages:
    """Exclusive seconds per stage: a stage running inside another is charged to itself alone."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [stage, start, seconds of nested stages]

    def wrap(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            self.stack.append([stage, time.perf_counter(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                stage_name, began, nested = self.stack.pop()
                spent = time.perf_counter() - began
                self.seconds[stage_name] += spent - nested
                if self.stack:
                    self.stack[-1][2] += spent

        setattr(owner, name, timed)


def interpreter_seconds(repeats: int = 5) -> float:
    """A bare `python -c pass`, start to exit: the process's floor."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    rows: list[tuple[str, float]] = []
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        rows.append((stage, now - clock))
        clock = now

    import numpy  # noqa: F401  (timed: weightlab's first import)

    lap("import numpy")
    import weightlab

    lap("import weightlab (config, errors, store)")
    import jax

    lap("import jax")
    from weightlab.backend import keras_for

    keras_for("jax")
    lap("import keras (on JAX)")
    jax.numpy.zeros(1).block_until_ready()
    lap("JAX backend start-up (CPU client, first array)")
    import weightlab.evaluation.landscape
    import weightlab.evaluation.snapshots
    import weightlab.experiments.run as run_module
    import weightlab.report.html
    import weightlab.train.fused_jax as fused_jax
    import weightlab.train.keras_fit as keras_fit
    from weightlab.store import RunWriter

    lap("import weightlab's training, evaluation, store and report modules")
    stages = Stages()
    for owner, name, stage in (
        (run_module, "_load", "data loading (MNIST from the cache)"),
        (run_module, "_prepare", "model build, data orders, inputs"),
        (fused_jax, "fit", "training (fused JAX, 5 epochs; snapshots streamed)"),
        (keras_fit, "predict", "test evaluation (after, before)"),
        (keras_fit, "evaluate", "test evaluation (after, before)"),
        (weightlab.evaluation.snapshots, "evaluate_snapshots", "evaluation of the 48 snapshots"),
        (weightlab.evaluation.landscape, "landscape", "loss landscape"),
        (run_module, "layer_changes", "analysis"),
        (run_module, "input_analysis", "analysis"),
        (run_module, "weight_samples", "analysis"),
        (weightlab.report.html, "write_report", "report.html"),
        *[
            (RunWriter, method, "writing the run directory")
            for method in (
                "write_json",
                "write_history",
                "write_steps",
                "write_predictions",
                "write_landscape",
                "write_snapshots",
                "commit",
                "snapshot_store",
            )
        ],
    ):
        stages.wrap(owner, name, stage)
    fits: list = []
    original_fit = fused_jax.fit
    fused_jax.fit = lambda *args, **kwargs: fits.append(original_fit(*args, **kwargs)) or fits[-1]
    with tempfile.TemporaryDirectory(prefix="weightlab-profile-") as out:
        began = time.perf_counter()
        weightlab.run(out=out)
        run_seconds = time.perf_counter() - began
    clock = time.perf_counter()
    epochs = fits[0].epoch_seconds
    compile_seconds = epochs[0] - statistics.median(epochs[1:])
    for stage, seconds in stages.seconds.items():
        if stage.startswith("training"):
            rows.append(
                ("training: first epoch's tracing, compiling or loading (epoch 1 − median epoch)", compile_seconds)
            )
            rows.append((stage + ", without that", seconds - compile_seconds))
        else:
            rows.append((stage, seconds))
    rows.append(("the rest of weightlab.run (summary, glue)", run_seconds - sum(stages.seconds.values())))
    in_process = sum(seconds for _, seconds in rows)
    interpreter = interpreter_seconds()
    rows.append(("Python start-up and exit (`python -c pass`)", interpreter))
    table = [
        [stage, f"{seconds:.2f} s", f"{100 * seconds / (in_process + interpreter):.0f}%"] for stage, seconds in rows
    ]
    table.append(["**total**", f"**{in_process + interpreter:.2f} s**", "100%"])
    publish(
        "profile",
        markdown(
            "One default `weightlab run`, stage by stage (in-process, JAX compilation cache as found)",
            ["stage", "seconds", "share"],
            table,
            [
                f"Steady epoch: {statistics.median(epochs[1:]):.2f} s ({1e6 * statistics.median(epochs[1:]) / 1688:.0f} µs/step)."
            ],
        ),
    )


if __name__ == "__main__":
    main()
