"""`weightlab run` end to end on the synthetic dataset: the run directory, its round trip, the CLI."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from weightlab import read_run
from weightlab.cli import main
from weightlab.store import HISTORY_COLUMNS

SUMMARY_KEYS = {
    "weightlab_version",
    "backend",
    "dataset",
    "config",
    "test_accuracy_before",
    "test_loss_before",
    "test_accuracy_after",
    "test_loss_after",
    "train_seconds",
    "steps",
    "history",
    "layers",
}
LAYER_KEYS = {
    "name",
    "shape",
    "l2_init",
    "l2_final",
    "l2_distance",
    "relative_change",
    "cosine_to_init",
    "frac_sign_flipped",
    "frac_unchanged",
}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One synthetic run through the CLI with --json, shared by the tests below."""
    out = tmp_path_factory.mktemp("runs")
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "run",
                "--dataset",
                "synthetic",
                "--epochs",
                "2",
                "--snapshots",
                "0",
                "--snapshot-every",
                "50",
                "--out",
                str(out),
                "--json",
            ]
        )
    assert code == 0
    return out, json.loads(stdout.getvalue())


def test_json_output_is_the_stored_summary(cli_run):
    out, printed = cli_run
    (run_dir,) = [p for p in out.iterdir()]
    assert json.loads((run_dir / "summary.json").read_text()) == printed
    assert set(printed) >= SUMMARY_KEYS
    for layer in printed["layers"]:
        assert set(layer) >= LAYER_KEYS
    assert printed["steps"] == 2 * 68 and len(printed["history"]["loss"]) == 2
    assert printed["test_accuracy_after"] > printed["test_accuracy_before"] + 0.5  # the synthetic set is easy


def test_run_directory_round_trip(cli_run):
    out, summary = cli_run
    run = read_run(next(out.iterdir()))
    assert run.config.epochs == 2 and run.config.backend == "jax"
    assert run.summary == summary
    with open(run.path / "history.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == HISTORY_COLUMNS and len(rows) == 3
    assert run.history()["loss"] == pytest.approx(summary["history"]["loss"])

    steps = run.steps()
    assert steps["loss"].shape == (136,) and steps["distance_from_init"].shape == (136, 4)
    assert steps["variables"].tolist() == ["hidden/kernel", "hidden/bias", "output/kernel", "output/bias"]

    snapshot_steps, epochs, weights = run.snapshots()
    assert snapshot_steps.tolist() == [0, 50, 68, 100, 136] and epochs[[0, 2, 4]].tolist() == [0, 1, 2]
    assert weights["hidden/kernel"].shape == (5, 784, 64) and weights["hidden/kernel"].dtype == np.float32
    with h5py.File(run.path / "snapshots.h5") as h5:
        assert h5.attrs["backend"] == "jax" and h5.attrs["dataset"] == "synthetic"
        assert json.loads(h5.attrs["config"])["hidden"] == 64

    # the summary's layer metrics are those of the stored first and last snapshots
    kernel = weights["hidden/kernel"].astype(np.float64)
    hidden = summary["layers"][0]
    assert hidden["l2_distance"] == pytest.approx(np.linalg.norm(kernel[-1] - kernel[0]))
    assert hidden["frac_unchanged"] == pytest.approx(
        np.mean(weights["hidden/kernel"][-1] == weights["hidden/kernel"][0])
    )
    # the per-step distance ends where the snapshots say
    assert steps["distance_from_init"][-1, 0] == pytest.approx(hidden["l2_distance"], rel=1e-5)
    config_file = json.loads((run.path / "config.json").read_text())
    assert {"weightlab", "keras", "jax", "numpy"} <= set(config_file["versions"])


def test_never_active_pixels_are_found_and_their_weights_frozen(cli_run):
    out, summary = cli_run
    frozen = summary["frozen_inputs"]
    assert [0, 0] in frozen["never_active_pixels"]  # the synthetic set keeps MNIST's black border
    assert frozen["never_active_rows_unchanged"] is True
    _, _, weights = read_run(next(out.iterdir())).snapshots()
    kernel = weights["hidden/kernel"]
    assert np.array_equal(kernel[-1][0], kernel[0][0])  # the tutorial's sample row did not move
    sample = summary["weight_samples"][0]
    assert sample["before"] == sample["after"] and summary["moved_sample"]["before"] != summary["moved_sample"]["after"]


def test_human_output_tells_the_tutorials_story(tmp_path, capsys):
    assert main(["run", "--dataset", "synthetic", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for phrase in (
        "Weights before training:",
        "(784, 8) weights sample:",
        "Test accuracy before training",
        "Weights after training:",
        "Test accuracy after training",
        "Epoch 1/1",
        "pixel (0, 0)",
        "Run saved to",
    ):
        assert phrase in text


@pytest.mark.parametrize(
    "argv, says",
    [
        (["run", "--epochs", "-1"], "--epochs"),
        (["run", "--hidden", "0"], "--hidden"),
        (["run", "--learning-rate", "nan"], "--learning-rate"),
        (["run", "--epochs", "two"], "invalid int value"),
        (["run", "--optimizer", "adamm"], "invalid choice"),
        (["run", "--dataset", "cifar"], "unknown dataset"),
        (["run", "--dataset", "synthetic", "--batch-size", "100000"], "larger than the"),
        (["run", "--frobnicate"], "unrecognized arguments"),
        (["data", "info", "cifar"], "unknown dataset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, says, tmp_path, capsys):
    try:
        code = main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "run" else []))
    except SystemExit as stop:  # argparse's own errors exit from inside parse_args
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(
    "platforms",
    [
        "nosuchplatform",
        pytest.param(  # a platform JAX knows but whose plugin is not installed: JAX asserts
            "cuda", marks=pytest.mark.skipif(importlib.util.find_spec("jax_plugins") is not None, reason="a plugin is")
        ),
    ],
)
def test_devices_that_cannot_start_are_one_line_and_exit_2(platforms, tmp_path):
    """A JAX_PLATFORMS naming a device this machine lacks is the user's to fix: one line, and nothing written."""
    env = dict(os.environ, JAX_PLATFORMS=platforms, WEIGHTLAB_HOME=str(tmp_path / "home"))
    argv = [
        sys.executable,
        "-c",
        "import sys; from weightlab.cli import entry; entry()",
        "run",
        "--dataset",
        "synthetic",
    ]
    done = subprocess.run(
        argv + ["--epochs", "1", "--out", str(tmp_path / "o")], env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("weightlab: error: ")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and f"platforms '{platforms}'" in lines[0] and "JAX_PLATFORMS=cpu" in lines[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_out_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["run", "--dataset", "synthetic", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "keep me"


def test_report_on_a_directory_that_is_not_a_run(tmp_path):
    from weightlab.errors import RunDirError

    with pytest.raises(RunDirError, match="not a weightlab run directory"):
        read_run(tmp_path)


def test_help_and_data_info_do_not_import_keras():
    code = (
        "import sys\nfrom weightlab.cli import main\n"
        "for argv in (['data', 'info'], ['data', 'info', 'mnist', '--json']):\n    main(argv)\n"
        "assert 'keras' not in sys.modules and 'jax' not in sys.modules, sorted(m for m in sys.modules if 'keras' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "env"])
def test_tensorflow_backend_end_to_end(tmp_path, how):
    """--backend tensorflow and KERAS_BACKEND=tensorflow train, track and store the same way."""
    import os

    argv = [
        sys.executable,
        "-m",
        "weightlab.cli",
        "run",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
        "--json",
    ]
    env = dict(os.environ)
    if how == "flag":
        argv += ["--backend", "tensorflow"]
        env["KERAS_BACKEND"] = "jax"  # the flag wins over the environment
    else:
        env["KERAS_BACKEND"] = "tensorflow"
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["backend"] == "tensorflow" and summary["steps"] == 68
    assert summary["test_accuracy_after"] > 0.9
    config_file = json.loads((next(tmp_path.iterdir()) / "config.json").read_text())
    assert "tensorflow" in config_file["versions"]


@pytest.mark.parametrize("first", ["", "import keras; "])
def test_jax_compilation_cache_lives_in_weightlab_home(tmp_path, first):
    """A process keeps its compiled programs for the next, also where the user imported keras before weightlab."""
    import os

    env = dict(os.environ, WEIGHTLAB_HOME=str(tmp_path / "home"), KERAS_BACKEND="jax")
    code = first + "import weightlab; weightlab.run(dataset='synthetic', epochs=1, hidden=4, out={!r}, report=False)"
    subprocess.run(
        [sys.executable, "-c", code.format(str(tmp_path / "runs"))],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    cached = list((tmp_path / "home" / "jax-cache").iterdir())
    assert any("chunk" in path.name for path in cached)


def test_a_users_own_jax_cache_is_left_alone(tmp_path):
    import jax

    from weightlab import backend

    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    try:
        backend._persistent_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_imports_under_a_paused_collector_leave_it_as_it_was_and_their_objects_frozen():
    import gc

    from weightlab.backend import collector_paused

    frozen = gc.get_freeze_count()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            with collector_paused():
                assert not gc.isenabled()
                made = [[index] for index in range(1000)]  # tracked containers, as an import makes
            assert gc.isenabled() is enabled
            assert gc.get_freeze_count() >= frozen + len(made)
            collected_from = {id(item) for item in gc.get_objects()}  # the generations a collection traverses
            assert not any(id(item) in collected_from for item in made)
    finally:
        gc.enable()
        gc.unfreeze()


def test_keras_already_imported_freezes_nothing_of_the_callers():
    """Only the import itself is frozen: a later call must leave the caller's objects (and a finished run's model)
    to the collector."""
    import gc

    from weightlab.backend import keras_for

    keras_for("jax")  # imported now, if it was not
    callers = [[index] for index in range(100)]  # tracked containers of the caller's
    keras_for("jax")
    collected_from = {id(item) for item in gc.get_objects()}  # the generations a collection traverses
    assert all(id(item) in collected_from for item in callers)


def test_jupyter_summary_shows_the_numbers_and_escapes_paths(cli_run, tmp_path):
    import shutil

    out, summary = cli_run
    odd = tmp_path / "<b>odd & path</b>"
    shutil.copytree(next(out.iterdir()), odd)
    page = read_run(odd)._repr_html_()
    assert f"{summary['test_accuracy_after']:.4f}" in page and "hidden 64" in page
    assert "&lt;b&gt;odd &amp; path&lt;/b&gt;" in page and "<b>odd" not in page


@pytest.mark.slow
def test_torch_backend_end_to_end(tmp_path):
    """The optional PyTorch backend (pip install 'weightlab[torch]'): trains, tracks and stores like the others."""
    import importlib.util
    import os

    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is an optional extra and is not installed here")
    argv = [
        sys.executable,
        "-m",
        "weightlab.cli",
        "run",
        "--backend",
        "torch",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
        "--json",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert (
        summary["backend"] == "torch"
        and summary["training_path"] == "keras.fit"
        and summary["test_accuracy_after"] > 0.9
    )
    run = read_run(next(tmp_path.iterdir()))
    _, _, weights = run.snapshots()
    kernel = weights["hidden/kernel"].astype(np.float64)
    assert summary["layers"][0]["l2_distance"] == pytest.approx(np.linalg.norm(kernel[-1] - kernel[0]))
    assert run.steps()["distance_from_init"][-1, 0] == pytest.approx(summary["layers"][0]["l2_distance"], rel=1e-4)
