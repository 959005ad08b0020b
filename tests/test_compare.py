"""Aggregation math by hand, and `compare` end to end on the synthetic set."""

import json

import pytest

from weightlab.analysis import aggregate
from weightlab.errors import ConfigError
from weightlab.experiments.compare import parse_axis, statement


def test_epochs_to_reach():
    assert aggregate.epochs_to_reach([0.5, 0.91, 0.96], 0.9) == 2
    assert aggregate.epochs_to_reach([0.5, 0.91, 0.96], 0.95) == 3
    assert aggregate.epochs_to_reach([0.5, 0.6], 0.9) is None
    summary = aggregate.reach_summary([2, None, 4])
    assert summary["reached"] == 2 and summary["of"] == 3 and summary["epochs"]["mean"] == 3.0
    assert "epochs" not in aggregate.reach_summary([None])


def summary(accuracy, loss, seconds, val):
    layers = [
        {
            "name": "hidden/kernel",
            "relative_change": 2.0 * accuracy,
            "l2_distance": 1.0,
            "frac_unchanged": 0.1,
            "frac_sign_flipped": 0.3,
        },
        {
            "name": "hidden/bias",
            "relative_change": None,
            "l2_distance": 0.5,
            "frac_unchanged": 0.0,
            "frac_sign_flipped": 0.0,
        },
    ]
    return {
        "test_accuracy_before": 0.1,
        "test_loss_before": 2.3,
        "test_accuracy_after": accuracy,
        "test_loss_after": loss,
        "train_seconds": seconds,
        "history": {"val_accuracy": val, "loss": [1.0, 0.5]},
        "layers": layers,
    }


def test_variant_summary_and_paired_difference_by_hand():
    a = [summary(0.97, 0.10, 2.0, [0.95, 0.97]), summary(0.96, 0.12, 2.2, [0.91, 0.96])]
    b = [summary(0.94, 0.20, 1.0, [0.85, 0.91]), summary(0.95, 0.18, 1.2, [0.88, 0.92])]
    variant = aggregate.variant_summary(a)
    assert variant["test_accuracy_after"]["mean"] == pytest.approx(0.965)
    assert variant["epochs_to_val_accuracy_95"]["values"] == [1, 2]
    assert variant["layers"]["hidden/kernel"]["relative_change"]["mean"] == pytest.approx(1.93)
    assert variant["layers"]["hidden/bias"]["relative_change"]["n"] == 0  # undefined for a zero-initialised bias
    assert variant["history_mean"]["val_accuracy"] == pytest.approx([0.93, 0.965])
    difference = aggregate.paired_difference(a, b, "test_accuracy_after")
    # differences 0.03 and 0.01: mean 0.02, s = √2·0.01, t = 0.02 / (0.01414/√2) = 2
    assert difference["mean"] == pytest.approx(0.02) and difference["t"] == pytest.approx(2.0)
    assert aggregate.variant_summary(b)["epochs_to_val_accuracy_95"]["reached"] == 0


def test_parse_axis_types_values_as_the_config_does():
    assert parse_axis("learning_rate=1e-3,3e-3") == ("learning_rate", [0.001, 0.003])
    assert parse_axis("hidden=16,64") == ("hidden", [16, 64])
    assert parse_axis("optimizer=adam,sgd") == ("optimizer", ["adam", "sgd"])
    assert parse_axis("shuffle-labels=false,true") == ("shuffle_labels", [False, True])
    for bad in ("seed=1,2", "hidden=", "hidden=1,1", "hidden=a,b", "colour=red,blue"):
        with pytest.raises(ConfigError):
            parse_axis(bad)


def test_statement_says_who_wins_only_when_the_interval_excludes_zero():
    sure = {
        "a": 64,
        "b": 16,
        "test_accuracy_after": {"n": 3, "mean": 0.028, "ci_low": 0.026, "ci_high": 0.03, "p": 0.0004},
    }
    assert statement("hidden", sure).startswith("hidden=64 beats hidden=16 by 2.80 points")
    unsure = {
        "a": 64,
        "b": 16,
        "test_accuracy_after": {"n": 3, "mean": 0.001, "ci_low": -0.01, "ci_high": 0.012, "p": 0.7},
    }
    assert "not distinguishable" in statement("hidden", unsure)


def test_compare_end_to_end(tmp_path, capsys):
    from weightlab.cli import main

    code = main(
        [
            "compare",
            "--dataset",
            "synthetic",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "32",
            "--seeds",
            "2",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    (directory,) = tmp_path.iterdir()
    assert json.loads((directory / "comparison.json").read_text()) == result
    assert [v["value"] for v in result["variants"]] == [8, 32] and result["seeds"] == [0, 1]
    assert [v["parameters"] for v in result["variants"]] == [785 * 8 + 9 * 10, 785 * 32 + 33 * 10]
    assert len(list((directory / "runs").iterdir())) == 4
    (difference,) = result["differences"]
    per_seed = [
        b - a
        for a, b in zip(
            result["variants"][0]["test_accuracy_after"]["values"],
            result["variants"][1]["test_accuracy_after"]["values"],
        )
    ]
    assert difference["test_accuracy_after"]["values"] == pytest.approx(per_seed)
    assert result["statements"][0].startswith("hidden=32")


def test_variants_of_different_depths_are_compared_reported_and_printed(tmp_path, capsys):
    """A variant's value can be a list of widths: the page and the terminal spell it as the flag does."""
    from weightlab.cli import main

    code = main(
        ["compare", "--dataset", "synthetic", "--epochs", "1", "--hidden", "8", "8x4", "--seeds", "2"]
        + [
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    (directory,) = tmp_path.iterdir()
    assert [v["value"] for v in json.loads((directory / "comparison.json").read_text())["variants"]] == [8, [8, 4]]
    page = (directory / "report.html").read_text()
    assert "hidden=8x4" in page and "hidden: 8, 8x4" in page
    assert "8x4" in capsys.readouterr().out
