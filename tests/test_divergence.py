"""A run whose loss stops being finite: stopped, kept up to the last finite step, recorded, reported."""

import json

import numpy as np
import pytest

import weightlab
from weightlab.cli import main

HUGE = dict(dataset="synthetic", learning_rate=1e38, epochs=2, backend="jax")


@pytest.mark.parametrize("path", ["fused-jax", "keras.fit"])
def test_divergence_stops_and_keeps_the_last_finite_state(tmp_path, path):
    run = weightlab.run(**HUGE, training_path=path, out=tmp_path)
    s = run.summary
    assert s["status"] == "diverged" and s["training_path"] == path
    d = s["diverged"]
    assert d["loss"] in ("nan", "inf", "-inf") and d["kept_steps"] == d["step"] - 1 == s["steps"]
    steps = run.steps()
    assert len(steps["loss"]) == d["kept_steps"] and np.isfinite(steps["loss"]).all()
    snapshot_steps, _, weights = run.snapshots()
    assert snapshot_steps[-1] == d["kept_steps"]
    assert all(np.isfinite(stack).all() for stack in weights.values())  # nothing non-finite was kept
    assert (run.path / "report.html").is_file() and "Training diverged" in (run.path / "report.html").read_text()


def test_both_paths_stop_at_the_same_step(tmp_path):
    fused = weightlab.run(**HUGE, training_path="fused-jax", out=tmp_path, report=False).summary["diverged"]
    keras_loop = weightlab.run(**HUGE, training_path="keras.fit", out=tmp_path, report=False).summary["diverged"]
    assert fused == keras_loop


def test_cli_says_so_in_one_line_and_exits_non_zero(tmp_path, capsys):
    code = main(
        ["run", "--dataset", "synthetic", "--learning-rate", "1e38", "--epochs", "1", "--out", str(tmp_path), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["status"] == "diverged"
    (line,) = captured.err.strip().splitlines()
    assert "diverged at step" in line and "--learning-rate" in line


def test_comparisons_record_a_diverged_run_as_a_result(tmp_path):
    from weightlab.experiments.compare import compare

    result = compare(
        dataset="synthetic",
        epochs=1,
        hidden=8,
        axis="learning_rate",
        values=[1e-3, 1e38],
        seeds=2,
        out=tmp_path,
        backend="jax",
    ).result
    stable, exploding = result["variants"]
    assert stable["test_accuracy_after"]["n"] == 2
    assert exploding["test_loss_after"]["missing"] >= 0 and exploding["test_accuracy_after"]["n"] == 2
    assert (next(tmp_path.iterdir()) / "report.html").is_file()


def test_a_proof_records_runs_that_diverged_in_their_first_epoch(tmp_path, capsys):
    """Such a run finished no epoch: its training accuracy is missing from the statistics, not a crash."""
    code = main(
        ["prove", "--dataset", "synthetic", "--seeds", "2", "--epochs", "2", "--learning-rate", "1e17"]
        + ["--out", str(tmp_path)]
    )
    assert code == 0, capsys.readouterr().err
    (directory,) = tmp_path.iterdir()
    result = json.loads((directory / "proof.json").read_text())
    shuffled = result["controls"]["shuffled_labels"]["train_accuracy"]
    assert shuffled["missing"] >= 1 and shuffled["n"] + shuffled["missing"] == 2
    assert (directory / "report.html").is_file()
