"""Signals and processes: Ctrl-C and SIGTERM stop a run at a safe point and keep its checkpoint, a
sweep's workers die with it, a cell another sweep trains is left alone, and every command's
interruption message says what was kept and how to go on."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import weightlab


def command(*argv) -> list[str]:
    return [sys.executable, "-c", "import sys; from weightlab.cli import main; sys.exit(main(sys.argv[1:]))", *argv]


def environment(tmp_path: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(Path(weightlab.__file__).parents[1]), WEIGHTLAB_HOME=str(tmp_path / "home"))


@pytest.mark.slow
@pytest.mark.parametrize("which", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_within_a_second_and_keeps_the_checkpoint(tmp_path, which):
    out = tmp_path / "runs"
    process = subprocess.Popen(
        command("run", "--dataset", "synthetic", "--hidden", "4", "--epochs", "300", "--out", out),
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list(out.glob(".incomplete-*/checkpoint.npz")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    sent = time.perf_counter()
    process.send_signal(which)
    lines = []
    for line in process.stderr:  # the stop is when the message comes, not when the interpreter has torn down
        lines.append(line)
        if "interrupted" in line:
            stopped = time.perf_counter() - sent
            break
    err = "".join(lines) + process.communicate(timeout=60)[1]
    assert stopped < 2.0, f"stopping took {stopped:.1f} s, longer than a second and a margin"
    assert process.returncode == 130 and "run interrupted" in err and "Traceback" not in err
    (left,) = out.glob(".incomplete-*")
    assert (left / "checkpoint.npz").is_file()


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_a_sweeps_workers_die_with_it(tmp_path):
    process = subprocess.Popen(
        command(
            "sweep",
            "--dataset",
            "synthetic",
            "--hidden",
            "4,6",
            "--epochs",
            "100000",
            "--workers",
            "2",
            "--out",
            tmp_path / "s",
        ),
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while (
        len(workers := [p for p in children_of(process.pid) if Path(f"/proc/{p}").exists()]) < 2
        and time.time() < deadline
    ):
        time.sleep(0.2)
    time.sleep(3)  # every worker (and multiprocessing's resource tracker) is up
    workers = children_of(process.pid)
    assert len(workers) >= 2
    process.kill()  # the worst case: no handler runs in the parent at all
    process.wait(timeout=30)
    deadline = time.time() + 20
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_cell_another_sweep_is_training_is_left_alone(tmp_path):
    from weightlab.experiments.cells import cell_lock
    from weightlab.experiments.sweep import sweep

    runs = tmp_path / "s" / "runs"
    runs.mkdir(parents=True)
    busy = runs / ".incomplete-hidden-4_seed-0"
    busy.mkdir()
    (busy / "checkpoint.npz").write_bytes(b"another sweep's")
    with cell_lock(runs, "hidden-4_seed-0") as held:  # another sweep holds it
        assert held
        result = sweep(
            grid={"hidden": [4, 6]},
            seeds=1,
            workers=1,
            out=tmp_path,
            name="s",
            report=False,
            dataset="synthetic",
            epochs=1,
        ).result
    assert (busy / "checkpoint.npz").read_bytes() == b"another sweep's"
    assert {cell["cell"]: cell["status"] for cell in result["cells"]} == {
        "hidden-4_seed-0": "pending",
        "hidden-6_seed-0": "complete",
    }


def test_interrupt_messages_name_the_command():
    from weightlab.cli import build_parser, interrupted_message

    for argv, says in (
        (["run"], "weightlab run --resume"),
        (["prove"], "run `weightlab prove` again"),
        (["compare"], "run `weightlab compare` again"),
        (["sweep", "--hidden", "4,8"], "same `weightlab sweep` command"),
    ):
        message = interrupted_message(build_parser().parse_args(argv))
        assert says in message
        assert argv[0] == "run" or "--resume" not in message
