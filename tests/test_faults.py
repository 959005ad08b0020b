"""Faults: damaged files, a full disk, concurrent writers, a killed run. Nothing saved is lost."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import weightlab
from weightlab.data import formats
from weightlab.errors import DataError, RunDirError
from weightlab.store import RunWriter, read_run


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    return weightlab.run(
        dataset="synthetic", epochs=1, hidden=8, out=tmp_path_factory.mktemp("runs"), report=False, backend="jax"
    )


def idx_file(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape) + array.tobytes()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_corrupted_idx_files_fail_with_data_error_or_read_exactly(tmp_path_factory, data):
    original = idx_file(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4))
    raw = bytearray(original)
    kind = data.draw(st.sampled_from(["truncate", "flip", "header"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= 1 << data.draw(st.integers(0, 7))
    else:
        raw[:4] = data.draw(st.binary(min_size=4, max_size=4))
    path = tmp_path_factory.mktemp("idx") / "f"
    path.write_bytes(bytes(raw))
    try:
        array = formats.read_idx(path)
    except DataError:
        return  # refused, with a message
    # if it reads, it reads exactly what the bytes say (a flipped pixel is the checksum's job)
    assert array.dtype == np.uint8 and array.size == len(raw) - 4 - 4 * raw[3]


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(min_value=0, max_value=2000), flip=st.integers(min_value=0, max_value=10_000))
def test_corrupted_npz_files_fail_with_data_error(tmp_path_factory, cut, flip):
    directory = tmp_path_factory.mktemp("npz")
    arrays = {name: np.arange(64, dtype=np.uint8) for name in formats.ARRAY_NAMES}
    np.savez(directory / "good.npz", **arrays)
    raw = bytearray((directory / "good.npz").read_bytes())
    raw = raw[: max(0, len(raw) - cut)]
    if raw:
        raw[flip % len(raw)] ^= 0xFF
    (directory / "bad.npz").write_bytes(bytes(raw))
    try:
        loaded = formats.read_npz(directory / "bad.npz")
    except DataError:
        return
    assert set(loaded) == set(formats.ARRAY_NAMES)


def test_damaged_run_files_are_named_in_one_line(stored, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(stored.path, copy)
    snapshots = copy / "snapshots.h5"
    snapshots.write_bytes(snapshots.read_bytes()[: snapshots.stat().st_size // 2])
    with pytest.raises(RunDirError, match="snapshots.h5: "):
        read_run(copy).snapshots()
    (copy / "steps.npz").unlink()
    with pytest.raises(RunDirError, match="steps.npz: missing"):
        read_run(copy).steps()
    summary = json.loads((copy / "summary.json").read_text())
    summary["format_version"] = 99
    (copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunDirError, match="newer weightlab"):
        read_run(copy)


def test_a_full_disk_while_writing_snapshots_leaves_nothing_half_written(tmp_path, monkeypatch, capsys):
    from weightlab.cli import main

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "runs"
    out.mkdir()
    (out / "earlier-run").mkdir()  # something saved before
    monkeypatch.setattr(RunWriter, "write_snapshots", no_space)
    assert main(["run", "--dataset", "synthetic", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["earlier-run"]  # no partial run in sight, nothing else touched
    # the epoch had finished: its checkpoint stays hidden, and the message says how to continue
    (hidden,) = [p for p in out.iterdir() if p.name.startswith(".incomplete-")]
    assert (hidden / "checkpoint.npz").is_file() and "--resume" in err


def test_two_runs_into_one_out_get_distinct_directories(tmp_path):
    command = [
        sys.executable,
        "-m",
        "weightlab.cli",
        "run",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--out",
        str(tmp_path),
        "--json",
    ]
    env = dict(os.environ, KERAS_BACKEND="jax")
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env) for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(timeout=300)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert len({o["run_id"] for o in outputs}) == 2 and len(list(tmp_path.iterdir())) == 2


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_run_that_looks_complete(tmp_path):
    """20 real runs killed at random moments: every directory is complete and readable, or hidden and marked incomplete."""
    rng = random.Random(7)
    env = dict(os.environ, KERAS_BACKEND="jax")
    command = [
        sys.executable,
        "-m",
        "weightlab.cli",
        "run",
        "--dataset",
        "synthetic",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--out",
        str(tmp_path),
        "--json",
    ]
    deadline = time.monotonic() + 240
    for _ in range(10):  # two at a time: 20 kill points
        processes = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for _ in range(2)
        ]
        time.sleep(rng.uniform(0.3, 7.0))
        for process in processes:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert time.monotonic() < deadline, "the kill test ran out of its time budget"
    resumable = []
    for path in list(tmp_path.iterdir()):
        if path.name.startswith(".incomplete-"):
            assert not (path.parent / path.name.removeprefix(".incomplete-")).exists()
            if (path / "checkpoint.npz").is_file():
                resumable.append(path)
            continue
        run = read_run(path)  # a visible directory is a whole run: every file readable
        assert run.summary["status"] in ("complete", "diverged")
        run.history(), run.steps(), run.predictions(), run.snapshots()
    for path in resumable[:2]:  # killed after an epoch: resumable to a complete run
        resumed = weightlab.run(resume=path, report=False)
        assert resumed.summary["status"] == "complete" and resumed.summary["steps"] == 2 * 68


def interrupted_run(out, epoch: int, **config):
    """A run stopped by Ctrl-C at the end of ``epoch``; returns its hidden directory."""

    def hook(done, total, logs):
        if logs is not None and logs["epoch"] == epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weightlab.run(out=out, progress=hook, report=False, **config)
    (left,) = list(out.iterdir())
    assert left.name.startswith(".incomplete-")  # hidden: it never looks complete
    return left


def assert_identical_runs(full, resumed):
    """Weights at every snapshot, per-step losses and norms, and the history: bit for bit."""
    steps_a, _, weights_a = full.snapshots()
    steps_b, _, weights_b = resumed.snapshots()
    assert steps_a.tolist() == steps_b.tolist()
    for name in weights_a:
        assert np.array_equal(weights_a[name], weights_b[name]), name
    for key in ("loss", "distance_from_init", "update_norm", "weight_norm"):
        assert np.array_equal(full.steps()[key], resumed.steps()[key], equal_nan=True), key
    assert full.summary["history"] == resumed.summary["history"]
    assert full.summary["test_accuracy_after"] == resumed.summary["test_accuracy_after"]


@pytest.mark.parametrize("snapshot_every, training_path", [(0, "auto"), (25, "auto"), (25, "keras.fit")])
def test_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path, snapshot_every, training_path):
    config = dict(
        dataset="synthetic",
        epochs=3,
        hidden=8,
        seed=4,
        snapshot_every=snapshot_every,
        backend="jax",
        training_path=training_path,
    )
    full = weightlab.run(out=tmp_path / "full", report=False, **config)
    left = interrupted_run(tmp_path / "cut", epoch=1, **config)
    assert sorted(p.name for p in left.iterdir()) == ["checkpoint.npz", "config.json", "snapshots.h5"]
    resumed = weightlab.run(resume=left, report=False)
    assert resumed.path.name == left.name.removeprefix(".incomplete-") and not left.exists()
    assert (
        resumed.summary["training_path"]
        == full.summary["training_path"]
        == ("keras.fit" if training_path == "keras.fit" else "fused-jax")
    )
    assert_identical_runs(full, resumed)
    assert not (resumed.path / "checkpoint.npz").exists()


def test_a_failure_keeps_the_checkpoint_and_a_failed_resume_keeps_it_too(tmp_path):
    config = dict(dataset="synthetic", epochs=3, hidden=8, seed=2, backend="jax", report=False)

    def fail_after(epoch):
        def hook(done, total, logs):
            if logs is not None and logs["epoch"] == epoch:
                raise RuntimeError("something unforeseen")

        return hook

    with pytest.raises(RuntimeError):
        weightlab.run(out=tmp_path, progress=fail_after(1), **config)
    (left,) = list(tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        weightlab.run(resume=left, progress=fail_after(2))
    assert left.is_dir() and (left / "checkpoint.npz").is_file()  # adopted to resume: never removed
    resumed = weightlab.run(resume=left)
    assert_identical_runs(weightlab.run(out=tmp_path / "full", **config), resumed)


RESUME_IN_A_FRESH_PROCESS = """
import sys, weightlab
from pathlib import Path
out, epoch, backend = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
config = dict(dataset="synthetic", epochs=3, hidden=8, seed=4, snapshot_every=25, backend=backend, report=False)
if epoch:
    def hook(done, total, logs):
        if logs is not None and logs["epoch"] == epoch:
            raise KeyboardInterrupt
    try:
        weightlab.run(out=out, progress=hook, **config)
    except KeyboardInterrupt:
        pass
elif sys.argv[4:]:
    weightlab.run(resume=sys.argv[4])
else:
    weightlab.run(out=out, **config)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_resume_on_the_keras_fit_path_of_another_backend_is_bit_identical(tmp_path, backend):
    """Interrupted in one process, resumed in another, against an uninterrupted run in a third."""
    import importlib.util

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'weightlab[{backend}]')")

    def python(*args):
        result = subprocess.run(
            [sys.executable, "-c", RESUME_IN_A_FRESH_PROCESS, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]

    python(tmp_path / "full", 0, backend)
    python(tmp_path / "cut", 2, backend)
    (left,) = list((tmp_path / "cut").iterdir())
    assert left.name.startswith(".incomplete-") and (left / "checkpoint.npz").is_file()
    python(tmp_path / "cut", 0, backend, left)
    full, resumed = read_run(next((tmp_path / "full").iterdir())), read_run(next((tmp_path / "cut").iterdir()))
    assert full.summary["training_path"] == resumed.summary["training_path"] == "keras.fit"
    assert_identical_runs(full, resumed)


def test_resume_refuses_what_is_not_an_interrupted_run(stored, tmp_path, capsys):
    from weightlab.cli import main

    assert main(["run", "--resume", str(stored.path)]) == 2
    assert "not an interrupted run" in capsys.readouterr().err
    broken = tmp_path / ".incomplete-x"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"format_version": 1, "config": {"dataset": "synthetic"}}))
    assert main(["run", "--resume", str(broken)]) == 2
    assert "no usable checkpoint" in capsys.readouterr().err


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 300 KB tmpfs, mounted for the test (needs root; skipped where mounting is not allowed)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mountpoint)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True)


def test_a_real_full_disk_keeps_what_was_there_and_the_run_resumes(tiny_filesystem, tmp_path, capsys):
    import shutil

    from weightlab.cli import main

    (tiny_filesystem / "notes.txt").write_text("saved earlier")
    code = main(
        ["run", "--dataset", "synthetic", "--epochs", "3", "--hidden", "8", "--out", str(tiny_filesystem / "runs")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert (tiny_filesystem / "notes.txt").read_text() == "saved earlier"
    visible = [p for p in (tiny_filesystem / "runs").iterdir() if not p.name.startswith(".")]
    assert visible == []  # nothing that looks like a run
    hidden = [p for p in (tiny_filesystem / "runs").iterdir() if p.name.startswith(".incomplete-")]
    if hidden:  # the disk filled after an epoch: the run resumes once there is room
        assert "--resume" in err
        moved = tmp_path / "roomy" / hidden[0].name
        shutil.copytree(hidden[0], moved)
        resumed = weightlab.run(resume=moved, report=False)
        assert resumed.summary["status"] == "complete" and resumed.summary["steps"] == 3 * 68


def test_resuming_onto_an_existing_run_refuses_and_keeps_the_interrupted_one(tmp_path):
    (tmp_path / "r1").mkdir()  # a finished run of that name already exists
    interrupted = tmp_path / ".incomplete-r1"
    interrupted.mkdir()
    (interrupted / "checkpoint.npz").write_bytes(b"kept")
    with pytest.raises(RunDirError, match="already exists"):
        RunWriter(tmp_path, "r1", adopt=True)
    assert (interrupted / "checkpoint.npz").read_bytes() == b"kept"
