"""weightlab on an accelerator against plain Keras `model.fit` on the same device, side by side.

    .venv/bin/python benchmarks/accelerator.py [--repeats 3] [--log runs.jsonl]

Run where JAX sees a GPU (or TPU); nothing else in weightlab needs one. Each contender is one
whole process (imports, data, compilation and all), alternating with the others ``--repeats``
times: the tutorial's MLP, the same at hidden width 4,096, the convnet of ``--model cnn``, and a
comparison of six trainings (vmapped on an accelerator). The table gives medians: whole-process
seconds, µs per step in the fastest epoch after the first, and weightlab's ratio to
`model.fit`'s per-step time (0.25× is four times faster). ``--log`` keeps every measurement as a
JSON line as it is taken, so an interrupted bench still leaves what it measured. Written to stdout
and results/accelerator.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import measure, median  # benchmarks/ is the script's path
from tables import HERE, PYTHON, WEIGHTLAB, alternated, markdown, publish, when_and_where

KERAS_JAX = {"KERAS_BACKEND": "jax"}
CNN_EPOCHS = 3  # the steady step is the fastest epoch after the first, which compiles: two to choose from
BASELINE = "`model.fit`"  # the contenders each workload's ratios are taken against


def contenders(out: str) -> dict[str, tuple[str, list[str], dict[str, str]]]:
    """name -> (workload, command, environment); a workload's contender named `BASELINE`… is its baseline."""
    run = WEIGHTLAB + ["run", "--json", "--out", out]
    fit = [PYTHON, str(HERE / "tutorial_keras.py"), "0"]
    return {
        "`model.fit`, tutorial MLP": ("MLP 64", fit, KERAS_JAX),
        "`weightlab run` (default)": ("MLP 64", run, {}),
        "`weightlab run --no-step-stats`": ("MLP 64", run + ["--no-step-stats"], {}),
        "`model.fit`, hidden 4,096": ("MLP 4096", fit + ["4096"], KERAS_JAX),
        "`weightlab run --hidden 4096 --snapshots 6`": ("MLP 4096", run + ["--hidden", "4096", "--snapshots", "6"], {}),
        "`model.fit`, the `--model cnn` convnet": (
            "CNN",
            [PYTHON, str(HERE / "cnn_keras.py"), str(CNN_EPOCHS)],
            KERAS_JAX,
        ),
        "`weightlab run --model cnn`": ("CNN", run + ["--model", "cnn", "--epochs", str(CNN_EPOCHS)], {}),
        "`weightlab compare --hidden 16 64 --seeds 3` (six trainings)": (
            "MLP 64",
            WEIGHTLAB + ["compare", "--hidden", "16", "64", "--seeds", "3", "--json", "--out", out],
            {},
        ),
    }


def accelerator() -> str:
    """The device JAX computes on, as JAX names it (e.g. 'NVIDIA H100 80GB HBM3'), and JAX's version."""
    code = "import jax; d = jax.devices()[0]; print(f'{d.device_kind} ({d.platform}), JAX {jax.__version__}')"
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def table(results: dict[str, list[dict]], workloads: dict[str, str], repeats: int, device: str, where: str) -> str:
    """The markdown table of ``results`` (contender -> its measurements); ratios only where the workload's
    `model.fit` baseline was measured."""
    baselines = {
        workloads[name]: (median(records, "steady_step_seconds"), median(records, "seconds"))
        for name, records in results.items()
        if name.startswith(BASELINE) and records
    }
    rows = []
    for name, records in results.items():
        if not records:
            continue
        seconds, steady = median(records, "seconds"), median(records, "steady_step_seconds")
        base, base_seconds = baselines.get(workloads[name], (None, None))
        rows.append(
            [
                name,
                f"{seconds:.1f} s",
                f"{seconds / base_seconds:.2f}×" if base_seconds else "—",
                f"{1e6 * steady:,.0f}" if steady else "—",
                f"{steady / base:.2f}×" if steady and base else "—",
                f"{median(records, 'test_accuracy'):.4f}",
            ]
        )
    return markdown(
        f"On an accelerator: {device}; whole processes, median of {repeats}",
        ["what", "whole process", "vs `model.fit`", "µs/step, steady epochs", "step vs `model.fit`", "test acc"],
        rows,
        [
            "- A comparison is measured against one `model.fit` of the tutorial's MLP, as on the CPU against one script.",
            "- Steady epochs: the fastest epoch after the first, per step (the first compiles; during weightlab's next "
            "ones a thread compiles the finish's programs and scores snapshots). A comparison's JSON holds no epoch times.",
            "- Every process starts with JAX's compilation cache as the previous repeats left it (weightlab keeps "
            "one; plain Keras does not), as a user's second run would.",
        ],
        where,
    )


def table_of_log(path: Path) -> tuple[str, bool]:
    """(the table of the measurements a ``--log`` file holds, whether every contender is in it): e.g. of a bench
    stopped before its last repeat. A log holds one bench: `main` starts it afresh."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    device, where = next((line["device"], line["where"]) for line in lines if "device" in line)
    workloads = {name: run[0] for name, run in contenders("").items()}
    results: dict[str, list[dict]] = {name: [] for name in workloads}
    for line in lines:
        if line.get("name") in results:
            results[line["name"]].append(line)
        elif "name" in line:
            print(f"{path}: {line['name']} is not one of this bench's contenders; left out", file=sys.stderr)
    repeats = max(len(records) for records in results.values())
    return table(results, workloads, repeats, device, where), all(results.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log", type=Path, help="write each measurement to this file as a JSON line as it is taken")
    parser.add_argument("--table-from", type=Path, metavar="LOG", help="publish the table of a log, measuring nothing")
    parser.add_argument(
        "--only", help="comma-separated workloads (e.g. 'MLP 64,CNN'): only those, printed, not published"
    )
    args = parser.parse_args()
    if args.table_from:
        measured, complete = table_of_log(args.table_from)
        publish("accelerator", measured, partial=not complete)
        return
    workloads_asked = args.only.split(",") if args.only else None
    runs = contenders("")
    if workloads_asked and not any(run[0] in workloads_asked for run in runs.values()):
        raise SystemExit(
            f"--only {args.only!r}: no such workload; the workloads are {sorted({r[0] for r in runs.values()})}"
        )
    device = accelerator()
    print(device, file=sys.stderr, flush=True)
    if args.log:
        with args.log.open("w") as log:  # one bench a log
            log.write(json.dumps({"device": device, "where": when_and_where()}) + "\n")
    with tempfile.TemporaryDirectory(prefix="weightlab-accelerator-") as out:
        runs = contenders(out)
        if workloads_asked:
            runs = {name: run for name, run in runs.items() if run[0] in workloads_asked}

        def measure_one(name: str) -> dict | None:
            _, command, env = runs[name]
            try:
                record = measure(command, env, out)
            except SystemExit as failure:  # one contender failing leaves the others' measurements
                print(failure, file=sys.stderr, flush=True)
                return None
            if args.log:
                with args.log.open("a") as log:
                    log.write(json.dumps({"name": name, **record}) + "\n")
            return record

        results = alternated(runs, args.repeats, measure_one)
    workloads = {name: run[0] for name, run in runs.items()}
    measured = table(results, workloads, args.repeats, device, when_and_where())
    publish("accelerator", measured, partial=bool(args.only))


if __name__ == "__main__":
    main()
