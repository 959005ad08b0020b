"""How weightlab's cost grows with the work: width, seeds trained together, snapshots, a convnet.

    make bench-scaling         # or: .venv/bin/python benchmarks/scaling.py [--repeats 3] [--only width,cnn]

Each measurement is one whole process (`weightlab run --json` or `run_many` in a fresh
interpreter); with ``--repeats N`` each value is measured N times, alternating, and the medians
shown. Each table goes to stdout and results/scaling-<name>.md.
Steady state is the median epoch after the first (the first also traces and compiles), per step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tables import (  # benchmarks/ is the script's path
    HERE,
    PYTHON,
    WEIGHTLAB,
    alternated,
    markdown,
    measure_process,
    publish,
)

BATCH, INPUTS, CLASSES, STEPS_PER_EPOCH = 32, 784, 10, 1688
WIDTHS = (16, 64, 256, 1024, 4096)
SEEDS = (1, 2, 4, 8, 16)
SNAPSHOTS = (6, 24, 48, 100, 200)

RUN_MANY = """
import json, sys, tempfile, time
from weightlab.config import RunConfig
from weightlab.experiments.together import run_many
with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    runs = run_many([RunConfig(seed=seed) for seed in range(int(sys.argv[1]))], out=out)
    seconds = time.perf_counter() - start
# runs trained together are each charged their share of the program's time: the shares add up to it
print(json.dumps({"train_seconds": sum(run.summary["train_seconds"] for run in runs), "seconds": seconds}))
"""


def steady_step_seconds(epoch_seconds: list[float], steps_per_epoch: int = STEPS_PER_EPOCH) -> float:
    """Seconds a step in the fastest epoch after the first: the first traces and compiles or loads the program, and
    during the next ones a thread prepares the finish's programs and scores snapshots (`experiments.ahead`)."""
    return min(epoch_seconds[1:]) / steps_per_epoch


def run_epochs(out: str, run_id: str) -> list[float]:
    """A run directory's epoch seconds, from its history.csv."""
    lines = (Path(out) / run_id / "history.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[-1]) for line in lines]


def weightlab_run(out: str, *flags: str) -> dict:
    record = measure_process(WEIGHTLAB + ["run", "--json", "--out", out, *flags])
    record["epochs"] = run_epochs(out, record["output"]["run_id"])
    return record


def gemm_flops(width: int) -> int:
    """Floating-point operations of one training step's matrix products for 784 -> width -> 10 at batch 32.

    Forward x·K1 and h·K2; backward the two kernel gradients xᵀ·δ1, hᵀ·δ2 and δ2·K2ᵀ (the input's
    gradient is not needed). Each m×k·k×n product is 2mkn operations.
    """
    return 2 * BATCH * width * (2 * INPUTS + 3 * CLASSES)


def gemm_rate(width: int = 4096, repeats: int = 200) -> tuple[float, str]:
    """This machine's float32 matrix-product rate (operations/s) on a step's two large products, best of numpy and JAX."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, INPUTS), dtype=np.float32)
    kernel = rng.standard_normal((INPUTS, width), dtype=np.float32)
    delta = rng.standard_normal((BATCH, width), dtype=np.float32)
    flops = 2 * 2 * BATCH * INPUTS * width  # x·K and xᵀ·δ

    def best(step) -> float:
        step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return flops / min(times)

    numpy_rate = best(lambda: (x @ kernel, x.T @ delta))
    products = jax.jit(lambda x, k, d: (x @ k, x.T @ d))
    args = [jnp.asarray(a) for a in (x, kernel, delta)]
    jax_rate = best(lambda: jax.block_until_ready(products(*args)))
    return max(numpy_rate, jax_rate), f"numpy {numpy_rate / 1e9:.0f}, XLA {jax_rate / 1e9:.0f} GFLOP/s"


def medians(values, repeats: int, measure_one) -> dict:
    """{value: {key: median}} of the values measured alternately (`tables.alternated`)."""
    records = alternated(values, repeats, measure_one)
    return {value: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for value, rs in records.items()}


def adam_update_seconds(width: int, repeats: int = 50) -> float:
    """The training step's Adam update of 784 -> width -> 10 alone, jitted as the fused loop runs it, best of ``repeats``.

    The step's memory-bound part: it reads each weight, gradient and both moments and writes
    three of them back. Where the fused Adam kernel serves (`weightlab.kernels.adam`: the large
    kernels, on the CPU) that is one pass, 28 bytes a weight; XLA compiles Keras's own update
    into three loops (each moment, then the weight, reading both new moments back), 40 bytes.
    """
    import jax

    from weightlab.backend import keras_for
    from weightlab.kernels import adam as adam_kernel

    keras = keras_for("jax")
    model = keras.Sequential([keras.Input((INPUTS,)), keras.layers.Dense(width), keras.layers.Dense(CLASSES)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    apply = adam_kernel.stateless_apply_for(optimizer, [model])
    update = jax.jit(lambda state, weights, grads: apply(state, grads, weights)[1::-1], donate_argnums=(0, 1))
    state, weights = [v.value + 0.01 for v in optimizer.variables], [v.value for v in model.trainable_variables]
    grads = [w * 1e-3 for w in weights]
    times = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        state, weights = jax.block_until_ready(update(state, weights, grads))
        times.append(time.perf_counter() - began)
    return min(times[1:])


def adam_kernel_note() -> str:
    from weightlab.backend import keras_for
    from weightlab.kernels import adam as adam_kernel

    keras_for("jax")
    readiness = adam_kernel.readiness()
    if readiness.ready:
        return (
            f"The fused Adam kernel (`weightlab.kernels.adam`) updates each kernel of {adam_kernel.SMALLEST:,} weights or "
            "more in one pass, 28 bytes a weight, where XLA's three loops (each moment, then the weight) stream 40."
        )
    return f"The fused Adam kernel was not used ({readiness.reason}): XLA's three loops stream 40 bytes a weight."


def width_table(out: str, repeats: int) -> str:
    before = gemm_rate()

    def one(width: int) -> dict:
        flags = ["--hidden", str(width), "--epochs", "3", "--snapshots", "6"]
        record = weightlab_run(out, *flags)
        bare = weightlab_run(out, *flags, "--no-step-stats")  # right after: the pair shares the machine's state
        return {
            "step": steady_step_seconds(record["epochs"]),
            "bare step": steady_step_seconds(bare["epochs"]),
            "parameters": record["output"]["parameters"],
            "seconds": record["seconds"],
        }

    measured = medians(WIDTHS, repeats, one)
    # The rate measured before and after the runs, the faster: this machine's two speed states
    # move it by up to 2x, and the faster rate gives the lower floor (the stricter ratio).
    rate, rates = max(before, gemm_rate())
    rows = []
    for width, m in measured.items():
        floor = gemm_flops(width) / rate
        adam = adam_update_seconds(width)
        rows.append(
            [
                f"{width:,}",
                f"{m['parameters']:,}",
                f"{1e6 * m['step']:,.0f}",
                f"{1e6 * m['bare step']:,.0f} ({m['step'] / m['bare step'] - 1:+.0%})",
                f"{gemm_flops(width) / 1e6:,.1f}",
                f"{1e6 * floor:,.1f}",
                f"{m['step'] / floor:.2f}×",
                f"{1e6 * adam:,.1f}",
                f"{m['step'] / (floor + adam):.2f}×",
                f"{m['seconds']:.1f} s",
            ]
        )
    return markdown(
        f"µs per training step against hidden width (`weightlab run --hidden W --epochs 3 --snapshots 6`, median of {repeats})",
        [
            "hidden width",
            "parameters",
            "µs/step (fastest epoch after the first)",
            "without the norms (`--no-step-stats`; the norms' share)",
            "GEMM MFLOP/step",
            "GEMM floor µs",
            "step / floor",
            "Adam update µs",
            "step / (GEMM + Adam)",
            "whole process",
        ],
        rows,
        [
            f"GEMM floor: the step's forward and backward matrix products at this machine's measured float32 rate, "
            f"{rate / 1e9:.0f} GFLOP/s (the faster of two measurements, before and after the runs; best of: {rates}; "
            "products (32×784)·(784×4096) and (784×32)·(32×4096)).",
            "Adam update: the step's optimizer update of these weights, jitted as the fused loop runs it and measured "
            "alone (best of 50): at large widths bound by memory bandwidth, not arithmetic. "
            f"{adam_kernel_note()}",
            "The epoch also holds the validation pass (≈3% of its products).",
        ],
    )


def seeds_table(repeats: int) -> str:
    def one(seeds: int) -> dict:
        record = measure_process([PYTHON, "-c", RUN_MANY, str(seeds)])
        return {**record["output"], "peak_bytes": record["peak_bytes"]}

    rows = [
        [
            str(seeds),
            f"{m['train_seconds']:.1f} s",
            f"{seeds / m['train_seconds']:.2f}",
            f"{m['seconds']:.1f} s",
            f"{seeds / m['seconds']:.2f}",
            f"{m['peak_bytes'] / 2**30:.2f} GiB",
        ]
        for seeds, m in medians(SEEDS, repeats, one).items()
    ]
    return markdown(
        f"Runs per second against seeds trained together (`run_many` of N default runs, one process, median of {repeats})",
        ["seeds", "training", "runs/s (training)", "run_many call", "runs/s (call)", "peak memory"],
        rows,
        [
            "`training`: the runs' training together (5 epochs, compilation included; on the CPU side by side, a thread a run); "
            "the call adds each run's evaluation, analysis and writing."
        ],
    )


def snapshots_table(out: str, repeats: int) -> str:
    def one(snapshots: int) -> dict:
        record = weightlab_run(out, "--snapshots", str(snapshots))
        run_dir = Path(out) / record["output"]["run_id"]
        return {
            "seconds": record["seconds"],
            "train": record["output"]["train_seconds"],
            "file": (run_dir / "snapshots.h5").stat().st_size,
            "peak_bytes": record["peak_bytes"],
        }

    rows = [
        [
            str(snapshots),
            f"{m['seconds']:.1f} s",
            f"{m['train']:.1f} s",
            f"{m['seconds'] - m['train']:.1f} s",
            f"{m['file'] / 2**20:.1f} MiB",
            f"{m['peak_bytes'] / 2**30:.2f} GiB",
        ]
        for snapshots, m in medians(SNAPSHOTS, repeats, one).items()
    ]
    return markdown(
        f"Time and peak memory against snapshots kept (`weightlab run --snapshots N`, whole process, median of {repeats})",
        ["snapshots", "whole process", "training", "everything else", "snapshots.h5", "peak memory"],
        rows,
    )


def cnn_table(out: str, repeats: int, epochs: int = 2) -> str:
    def one(which: str) -> dict:
        if which == "weightlab":
            record = weightlab_run(out, "--model", "cnn", "--epochs", str(epochs))
            epoch_seconds = record["epochs"]
        else:
            record = measure_process([PYTHON, str(HERE / "cnn_keras.py"), str(epochs)], {"KERAS_BACKEND": "jax"})
            epoch_seconds = record["output"]["epoch_seconds"]
        output = record["output"]
        return {
            "step": steady_step_seconds(epoch_seconds),
            "train": output["train_seconds"],
            "seconds": record["seconds"],
            "accuracy": output.get("test_accuracy", output.get("test_accuracy_after")),
            "peak_bytes": record["peak_bytes"],
        }

    names = {
        "weightlab": "`weightlab run --model cnn`",
        "keras": "plain Keras/JAX `model.fit`, same CNN",
    }
    rows = [
        [
            names[which],
            f"{1e6 * m['step']:,.0f}",
            f"{m['train']:.1f} s",
            f"{m['seconds']:.1f} s",
            f"{m['accuracy']:.4f}",
            f"{m['peak_bytes'] / 2**30:.2f} GiB",
        ]
        for which, m in medians(names, repeats, one).items()
    ]
    return markdown(
        f"The convnet (`--model cnn`, {epochs} epochs) against plain `model.fit` of the same network, median of {repeats}",
        ["what", "µs/step (epoch 2)", "train", "whole process", "test acc", "peak memory"],
        rows,
        ["weightlab's whole process also evaluates 48 snapshots, computes the landscape and writes the report."],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="width,seeds,snapshots,cnn", help="comma-separated tables to measure")
    parser.add_argument("--repeats", type=int, default=1, help="measurements of each value, alternated; medians")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weightlab-scaling-") as out:
        for name, table in (
            ("width", lambda: width_table(out, args.repeats)),
            ("seeds", lambda: seeds_table(args.repeats)),
            ("snapshots", lambda: snapshots_table(out, args.repeats)),
            ("cnn", lambda: cnn_table(out, args.repeats)),
        ):
            if name in args.only.split(","):
                start = time.perf_counter()
                text = table()
                publish(f"scaling-{name}", text + f"\n(measured in {time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
