"""weightlab against the plain Keras script of the tutorial, side by side in one invocation.

    make bench                 # or: .venv/bin/python benchmarks/bench.py [--repeats 3]

Each contender runs as a whole process (imports, data, compilation and all), alternating
with the others, ``--repeats`` times. The table gives medians: whole-process seconds, µs per
training step (training time / steps, validation included), the same for the epochs after the
first (whose time also holds tracing and compiling or loading the program), whole-process time as a multiple
of the plain TensorFlow script's (0.20× is five times faster), test accuracy (for compare: the
64-unit variant's mean) and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
WEIGHTLAB = [PYTHON, "-m", "weightlab.cli"]

# A wrapper that runs a command and reports its own peak memory: RUSAGE_CHILDREN of a fresh
# process is the peak of that one child, not of every process this benchmark has started.
MEASURE = (
    "import resource, subprocess, sys, time, json\n"
    "start = time.perf_counter()\n"
    "result = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "seconds = time.perf_counter() - start\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(json.dumps({'rc': result.returncode, 'seconds': seconds, 'peak_bytes': peak, 'stdout': result.stdout, 'stderr': result.stderr[-2000:]}))\n"
)


def contenders(out: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    run = WEIGHTLAB + ["run", "--json", "--out", out]
    return {
        "tutorial script, Keras/TensorFlow": (
            [PYTHON, str(HERE / "tutorial_keras.py")],
            {"KERAS_BACKEND": "tensorflow"},
        ),
        "tutorial script, Keras/JAX": ([PYTHON, str(HERE / "tutorial_keras.py")], {"KERAS_BACKEND": "jax"}),
        "weightlab run (tracking on)": (run, {}),
        "weightlab run (tracking off)": (run + ["--no-step-stats"], {}),
        "weightlab compare --hidden 16 64 --seeds 3": (
            WEIGHTLAB + ["compare", "--hidden", "16", "64", "--seeds", "3", "--json", "--out", out],
            {},
        ),
    }


def measure(command: list[str], env: dict[str, str], out: str) -> dict:
    result = subprocess.run(
        [PYTHON, "-c", MEASURE, *command], capture_output=True, text=True, env={**os.environ, **env}
    )
    record = json.loads(result.stdout)
    if record["rc"] != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{record['stderr']}")
    # the plain script prints Keras epoch lines then one JSON line; weightlab --json prints one JSON document
    stdout = record["stdout"].strip()
    output = json.loads(stdout) if stdout.startswith("{") else json.loads(stdout.splitlines()[-1])
    if "variants" in output:  # a comparison: six trainings; report the sum of their training and the 64-unit accuracy
        seeds = len(output["seeds"])
        train = sum(v["train_seconds"]["mean"] * seeds for v in output["variants"])
        steps = sum(v["test_accuracy_after"]["n"] for v in output["variants"]) * 8440
        accuracy = output["variants"][-1]["test_accuracy_after"]["mean"]
        steady = None
    else:
        train, steps = output["train_seconds"], output["steps"]
        accuracy = output.get("test_accuracy", output.get("test_accuracy_after"))
        steady = _steady_step_seconds(output, out, steps)
    return {
        "seconds": record["seconds"],
        "peak_bytes": record["peak_bytes"],
        "train_seconds": train,
        "steps": steps,
        "test_accuracy": accuracy,
        "steady_step_seconds": steady,
    }


def _steady_step_seconds(output: dict, out: str, steps: int) -> float:
    """Seconds per step once running: the median epoch after the first (which also traces, compiles or loads), per step."""
    if "epoch_seconds" in output:  # the plain script
        epochs = output["epoch_seconds"]
    else:  # a weightlab run: its history.csv
        with open(Path(out) / output["run_id"] / "history.csv") as handle:
            epochs = [float(line.split(",")[-1]) for line in handle.read().splitlines()[1:]]
    return statistics.median(epochs[1:]) / (steps / len(epochs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="weightlab-bench-") as out:
        runs = contenders(out)
        results: dict[str, list[dict]] = {name: [] for name in runs}
        for repeat in range(args.repeats):
            for name, (command, env) in runs.items():  # alternating, so drift hits every contender alike
                console.print(f"[dim]repeat {repeat + 1}/{args.repeats}: {name}[/]")
                results[name].append(measure(command, env, out))

    baseline = statistics.median(r["seconds"] for r in results["tutorial script, Keras/TensorFlow"])
    table = Table(
        title=(
            f"The tutorial's experiment, whole process, median of {args.repeats} "
            f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {platform.machine()})"
        )
    )
    for column in (
        "what",
        "whole process",
        "train",
        "µs/step",
        "µs/step after epoch 1",
        "time vs TF script",
        "test acc",
        "peak memory",
    ):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, records in results.items():
        seconds = statistics.median(r["seconds"] for r in records)
        train = statistics.median(r["train_seconds"] for r in records)
        steady = [r["steady_step_seconds"] for r in records if r["steady_step_seconds"] is not None]
        table.add_row(
            name,
            f"{seconds:.1f} s",
            f"{train:.1f} s",
            f"{1e6 * train / records[0]['steps']:,.0f}",
            f"{1e6 * statistics.median(steady):,.0f}" if steady else "—",
            f"{seconds / baseline:.2f}×",
            f"{statistics.median(r['test_accuracy'] for r in records):.4f}",
            f"{statistics.median(r['peak_bytes'] for r in records) / 2**30:.2f} GiB",
        )
    console.print(table)
    for measure_name, key in (
        ("training time", "train_seconds"),
        ("steady-state step time", "steady_step_seconds"),
        ("whole-process time", "seconds"),
    ):
        on = statistics.median(r[key] for r in results["weightlab run (tracking on)"])
        off = statistics.median(r[key] for r in results["weightlab run (tracking off)"])
        console.print(f"Per-step tracking costs {100 * (on / off - 1):+.1f}% of {measure_name} (medians, on vs off).")


if __name__ == "__main__":
    main()
