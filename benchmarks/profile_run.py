"""Where one default `weightlab run` spends its time, stage by stage, timed in this process.

    .venv/bin/python benchmarks/profile_run.py      # or: make bench-profile

Imports are timed as they happen; each later stage by wrapping the function that does it (in this
process only: weightlab's source is untouched) and charging it its own time, nested stages excluded.
The table goes to stdout and results/profile.md.
"""

from __future__ import annotations

import argparse
import functools
import json
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
        self.repeated: dict[str, float] = {}  # a second call's seconds, by function name (see `again`)

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


def again(stages: Stages, owner, name: str) -> None:
    """Call ``owner.name`` a second time on the same arguments, timed apart: its cost once traced and compiled."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def twice(*args, **kwargs):
        result = original(*args, **kwargs)
        began = time.perf_counter()
        original(*args, **kwargs)
        stages.repeated[name] = time.perf_counter() - began
        if stages.stack:  # not the stage's own time: counted apart
            stages.stack[-1][2] += stages.repeated[name]
        return result

    setattr(owner, name, twice)


def whole_run_seconds() -> float:
    """One `weightlab run` as its own process, start to exit (it also warms JAX's compilation cache)."""
    with tempfile.TemporaryDirectory(prefix="weightlab-profile-") as out:
        began = time.perf_counter()
        subprocess.run([PYTHON, "-m", "weightlab.cli", "run", "--out", out], check=True, capture_output=True)
        return time.perf_counter() - began


def interpreter_seconds(repeats: int = 5) -> float:
    """A bare `python -c pass`, start to exit: the process's floor."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def profile_once() -> dict:
    """One default run profiled in this process: its rows (stage, seconds), second calls and steady epoch."""
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
    import weightlab.experiments.run as run_module
    from weightlab.config import RunConfig

    lap("import weightlab's experiment modules")
    # As `weightlab run` does it: JAX and Keras imported (the collector paused), the data read and
    # made into float32 inputs in a thread meanwhile; the run below is handed that dataset.
    _, dataset = run_module.keras_and_data(RunConfig().resolved(), None)
    lap("import JAX and Keras; meanwhile, in a thread: MNIST from the cache, its float32 inputs")
    run_module._load = lambda config, data_dir, loaded=None: dataset
    import jax

    jax.numpy.zeros(1).block_until_ready()
    lap("JAX backend start-up (the device's client, first array)")
    import weightlab.evaluation.landscape
    import weightlab.evaluation.snapshots
    import weightlab.experiments.finish as finish_module
    import weightlab.report.html
    import weightlab.train.fused_jax as fused_jax
    import weightlab.train.keras_fit as keras_fit
    from weightlab.store import RunWriter

    lap("import weightlab's training, evaluation, store and report modules")
    stages = Stages()
    wrapped = (
        (run_module, "prepare", "model build, data orders, inputs"),
        (fused_jax, "fit", "training (fused JAX, 5 epochs; snapshots streamed)"),
        (keras_fit, "predict", "test evaluation (after, before)"),
        (keras_fit, "evaluate", "test evaluation (after, before)"),
        (keras_fit, "scores", "test evaluation (after, before)"),
        (
            weightlab.evaluation.snapshots,
            "evaluate_snapshots",
            "evaluation of the snapshots not scored during training",
        ),
        (weightlab.evaluation.landscape, "landscape", "loss landscape"),
        (finish_module, "layer_changes", "analysis"),
        (finish_module, "input_analysis", "analysis"),
        (finish_module, "weight_samples", "analysis"),
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
    )
    for owner, name in (
        (weightlab.evaluation.snapshots, "evaluate_snapshots"),
        (weightlab.evaluation.landscape, "landscape"),
    ):
        again(stages, owner, name)
    for owner, name, stage in wrapped:
        stages.wrap(owner, name, stage)
    fits: list = []
    original_fit = fused_jax.fit
    fused_jax.fit = lambda *args, **kwargs: fits.append(original_fit(*args, **kwargs)) or fits[-1]
    with tempfile.TemporaryDirectory(prefix="weightlab-profile-") as out:
        began = time.perf_counter()
        weightlab.run(out=out)
        run_seconds = time.perf_counter() - began
    epochs = fits[0].epoch_seconds
    steady_epoch = min(epochs[1:])  # the fastest epoch after the first: the one the preparation thread least disturbed
    compile_seconds = epochs[0] - steady_epoch
    beside_seconds = sum(epochs[1:]) - steady_epoch * len(epochs[1:])
    order = list(dict.fromkeys(stage for _, _, stage in wrapped))
    for stage, seconds in sorted(stages.seconds.items(), key=lambda item: order.index(item[0])):
        if stage.startswith("training"):
            rows.append(
                (
                    "training: first epoch's tracing, compiling or loading (epoch 1 − the fastest later epoch)",
                    compile_seconds,
                )
            )
            rows.append(
                (
                    "training: epochs 2–5 beside the thread preparing the finish and scoring snapshots (their excess over the fastest)",
                    beside_seconds,
                )
            )
            rows.append((stage + ", without those", seconds - compile_seconds - beside_seconds))
        else:
            rows.append((stage, seconds))
    rest = run_seconds - sum(stages.seconds.values()) - sum(stages.repeated.values())
    rows.append(("the rest of weightlab.run (summary, glue)", rest))
    return {"rows": rows, "repeated": stages.repeated, "steady_epoch": steady_epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes to take the medians of")
    parser.add_argument("--once", action="store_true", help="profile in this process and print JSON (a worker)")
    args = parser.parse_args()
    if args.once:
        print(json.dumps(profile_once()))
        return
    process = statistics.median(whole_run_seconds() for _ in range(args.repeats))
    profiles = [
        json.loads(subprocess.run([PYTHON, __file__, "--once"], check=True, capture_output=True, text=True).stdout)
        for _ in range(args.repeats)
    ]
    # A stage may happen in some processes only (the snapshots left after training: none, or the last
    # block): rows are matched by name, and a stage a process did not go through took it 0 s.
    stages = list(dict.fromkeys(stage for p in profiles for stage, _ in p["rows"]))
    rows = [(stage, statistics.median(dict(p["rows"]).get(stage, 0.0) for p in profiles)) for stage in stages]
    rows.append(("Python start-up and exit (`python -c pass`)", interpreter_seconds()))
    total = sum(seconds for _, seconds in rows)
    table = [[stage, f"{seconds:.2f} s", f"{100 * seconds / total:.0f}%"] for stage, seconds in rows]
    table.append(["**sum**", f"**{total:.2f} s**", "100%"])
    names = dict.fromkeys(name for p in profiles for name in p["repeated"])
    repeated = {
        name: statistics.median(p["repeated"][name] for p in profiles if name in p["repeated"]) for name in names
    }
    steady = statistics.median(p["steady_epoch"] for p in profiles)
    publish(
        "profile",
        markdown(
            f"One default `weightlab run`, stage by stage (in-process, medians of {args.repeats} fresh processes, compilation cache warm)",
            ["stage", "seconds", "share"],
            table,
            [
                f"The same `weightlab run` as a whole process (CLI, run, exit), median of {args.repeats}: {process:.2f} s.",
                *(
                    f"`{name}` called again on the same arguments (compiled, warm): {seconds:.2f} s."
                    for name, seconds in repeated.items()
                ),
                f"Steady epoch: {steady:.2f} s ({1e6 * steady / 1688:.0f} µs/step).",
            ],
        ),
    )


if __name__ == "__main__":
    main()
