"""`weightlab sweep`: cells, resume, failures, parallel and Ray executors agreeing with a sequential run."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from weightlab.config import RunConfig
from weightlab.errors import ConfigError
from weightlab.experiments.sweep import cells_of, sweep, sweep_name

BASE = RunConfig(dataset="synthetic", epochs=1, backend="jax")
GRID = {"hidden": [4, 8]}


def test_cells_cover_the_grid_times_seeds_with_stable_names():
    cells = cells_of(BASE, {"hidden": [4, 8], "learning_rate": [0.001, 0.003]}, seeds=2)
    assert len(cells) == 8
    assert cells[0].cell_id == "hidden-4_learning_rate-0.001_seed-0" and cells[0].config.seed == 0
    assert len({cell.cell_id for cell in cells}) == 8
    assert sweep_name(BASE, GRID, 2) == sweep_name(BASE, {"hidden": [4, 8]}, 2) != sweep_name(BASE, GRID, 3)
    with pytest.raises(ConfigError):
        cells_of(BASE, {"hidden": [0]}, seeds=1)  # every cell's config is validated before anything runs


def finished_numbers(result: dict) -> dict:
    return {
        cell["cell"]: (cell["test_accuracy_after"], cell["test_loss_after"])
        for cell in result["cells"]
        if cell["status"] == "complete"
    }


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    return sweep(BASE, grid=GRID, seeds=2, workers=1, out=tmp_path_factory.mktemp("sequential"), report=False)


def test_sequential_sweep_aggregates_every_cell(sequential):
    result = sequential.result
    assert result["counts"] == {"complete": 4, "failed": 0, "pending": 0}
    assert [p["point"] for p in result["points"]] == [{"hidden": 4}, {"hidden": 8}]
    assert all(p["finished"] == 2 for p in result["points"])
    assert json.loads((sequential.path / "sweep.json").read_text())["cells"] == result["cells"]


def test_rerun_skips_finished_cells_and_reruns_cut_off_ones(sequential, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sequential.path, copy)
    # one cell cut off halfway: only its temporary directory is left
    shutil.rmtree(copy / "runs" / "hidden-8_seed-1")
    (copy / "runs" / ".incomplete-hidden-8_seed-1").mkdir()
    result = sweep(BASE, grid=GRID, seeds=2, workers=1, out=tmp_path, name="copy", report=False).result
    assert result["last_invocation"]["ran"] == 1 and result["last_invocation"]["skipped"] == 3
    assert finished_numbers(result) == finished_numbers(sequential.result)  # same seed, same numbers
    assert not list((copy / "runs").glob(".incomplete-*"))


def test_a_failed_cell_is_recorded_and_the_others_finish(tmp_path, monkeypatch):
    from weightlab.experiments import sweep as sweep_module

    original = sweep_module.run_cell

    def flaky(config_values, runs_dir, cell_id, data_dir, progress=None):
        if cell_id == "hidden-8_seed-0":
            return {"cell": cell_id, "status": "failed", "error": "diverged at step 3"}
        return original(config_values, runs_dir, cell_id, data_dir, progress)

    monkeypatch.setattr(sweep_module, "run_cell", flaky)
    result = sweep(BASE, grid=GRID, seeds=1, workers=1, out=tmp_path, report=False).result
    assert result["counts"] == {"complete": 1, "failed": 1, "pending": 0}
    (failed,) = [cell for cell in result["cells"] if cell["status"] == "failed"]
    assert failed["error"] == "diverged at step 3"


@pytest.mark.slow
def test_parallel_workers_give_the_sequential_numbers(sequential, tmp_path):
    result = sweep(BASE, grid=GRID, seeds=2, workers=2, out=tmp_path, report=True).result
    assert finished_numbers(result) == finished_numbers(sequential.result)
    assert (tmp_path / sweep_name(BASE.resolved(), GRID, 2) / "report.html").is_file()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def local_ray_cluster():
    """A one-node Ray cluster on loopback, started for the test and stopped after."""
    import tempfile

    pytest.importorskip("ray")
    # Ray's socket paths must stay under the 107-byte limit of a Unix socket: a short temp dir.
    temp = Path(tempfile.mkdtemp(prefix="wlray-", dir="/tmp"))
    ray_cli = Path(sys.executable).with_name("ray")
    port = free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", KERAS_BACKEND="jax")
    start = [
        str(ray_cli),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    started = subprocess.run(start, capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_executor_gives_the_local_numbers(sequential, local_ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    result = sweep(
        BASE, grid=GRID, seeds=2, executor="ray", address=local_ray_cluster, out=tmp_path, report=False
    ).result
    assert result["last_invocation"]["executor"] == "ray" and result["counts"]["complete"] == 4
    assert finished_numbers(result) == finished_numbers(sequential.result)


def test_cli_sweep_from_flags_and_toml(tmp_path, capsys):
    from weightlab.cli import main

    spec = tmp_path / "grid.toml"
    spec.write_text(
        'seeds = 1\n[config]\ndataset = "synthetic"\nepochs = 1\n[grid]\nhidden = [4]\nlearning_rate = [0.001, 0.01]\n'
    )
    assert main(["sweep", "--grid-file", str(spec), "--workers", "1", "--out", str(tmp_path / "s"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["grid"] == {"hidden": [4], "learning_rate": [0.001, 0.01]} and result["counts"]["complete"] == 2
    assert main(["sweep", "--dataset", "synthetic", "--out", str(tmp_path / "s")]) == 2  # no grid given
    assert "has no grid" in capsys.readouterr().err
