"""Any architecture: the MLP (one or several hidden layers), the CNN, a saved .keras model, on both training paths."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from conftest import adam_kernel_ready
from weightlab.backend import keras_for

keras = keras_for("jax")
import weightlab  # noqa: E402
from weightlab import data, models  # noqa: E402
from weightlab.config import RunConfig  # noqa: E402
from weightlab.kernels import adam as adam_kernel  # noqa: E402
from weightlab.train import fused_jax, keras_fit  # noqa: E402


@pytest.fixture(scope="module")
def synthetic():
    return data.load("synthetic")


def trained(module, config, dataset, samples=600):
    """``config``'s model trained by ``module`` on the first ``samples`` examples: (model, FitResult)."""
    keras.utils.set_random_seed(config.seed)
    model = models.build(config, keras, dataset.shape())
    x = keras_fit.to_inputs(dataset.x_train[:samples], models.input_shape(model))
    return model, module.fit(model, x, dataset.y_train[:samples], config)


@pytest.mark.parametrize("hidden", [16, (16, 8), 64], ids=["mlp", "deep-mlp", "tutorial-width"])
def test_fused_path_is_model_fit_bit_for_bit_for_mlps(synthetic, hidden):
    config = RunConfig(dataset="synthetic", epochs=2, hidden=hidden, seed=3, snapshot_every=5)
    reference_model, reference = trained(keras_fit, config, synthetic)
    fused_model, fused = trained(fused_jax, config, synthetic)
    assert len(fused_model.trainable_variables) == 2 * (len(config.widths) + 1)
    # at the tutorial's width the fused Adam kernel updates the first layer's 50,176 weights
    assert bool(adam_kernel.served_variables([fused_model])) == (hidden == 64)
    adam_kernel_ready()  # in use, unless this machine's own check refused it (then Keras's update: the same weights)
    for a, b in zip(fused_model.get_weights(), reference_model.get_weights()):
        assert np.array_equal(a, b)
    for name in fused.tracked.variable_names:  # every snapshot, not only the end
        assert np.array_equal(fused.tracked.snapshots[name], reference.tracked.snapshots[name])


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_norms_with_the_adam_kernel_are_model_fits_to_float_rounding(synthetic, optimizer):
    """The kernel takes the first kernel's norms in its own pass under Adam; under AdamW, whose decay changes the
    weight before the update, the loop takes them. Either way they are the weights' own norms (a kernel that
    measured from the decayed weight was 0.27% off)."""
    config = RunConfig(
        dataset="synthetic", epochs=1, hidden=64, seed=3, optimizer=optimizer, learning_rate=0.01, step_stats_every=1
    )
    reference_model, reference = trained(keras_fit, config, synthetic)
    fused_model, fused = trained(fused_jax, config, synthetic)
    for a, b in zip(fused_model.get_weights(), reference_model.get_weights()):
        assert np.array_equal(a, b)
    for kind in ("distance_from_init", "update_norm", "weight_norm"):
        np.testing.assert_allclose(getattr(fused.tracked, kind), getattr(reference.tracked, kind), rtol=2e-6)


def test_fused_path_matches_model_fit_for_the_cnn_to_one_rounding(synthetic):
    """Inside the scan XLA compiles the convolution's gradient differently: conv_2/kernel's gradient
    differs in its last bits at the first step, and Adam, whose first step is ±lr wherever the
    gradient is not tiny, turns that into at most 3.2e-7 (measured) on a weight; it does not grow."""
    config = RunConfig(dataset="synthetic", model="cnn", epochs=2, hidden=8, seed=3, snapshot_every=1)
    _, reference = trained(keras_fit, config, synthetic)
    _, fused = trained(fused_jax, config, synthetic)
    assert fused.path == "fused-jax" and reference.path == "keras.fit"
    gaps = [
        max(
            float(np.abs(fused.tracked.snapshots[n][i] - reference.tracked.snapshots[n][i]).max())
            for n in fused.tracked.variable_names
        )
        for i in range(len(fused.tracked.snapshot_steps))
    ]
    assert gaps[0] == 0.0 and max(gaps) < 1e-6
    assert max(gaps[-10:]) <= 2 * max(gaps[1:5])  # one rounding at the start, not a drift
    np.testing.assert_allclose(fused.history["val_loss"], reference.history["val_loss"], rtol=1e-5)


def test_deeper_mlp_and_cnn_layers_are_named_and_counted(synthetic):
    deep = models.build(RunConfig(hidden=(128, 64)), keras)
    assert [layer.name for layer in deep.layers] == ["hidden_1", "hidden_2", "output"]
    assert deep.count_params() == 785 * 128 + 129 * 64 + 65 * 10
    cnn = models.build(RunConfig(model="cnn"), keras)
    assert models.input_shape(cnn) == (28, 28, 1)
    assert models.first_dense_kernel(cnn)[0] is None and "convolution" in models.first_dense_kernel(cnn)[1]
    assert models.first_dense_kernel(deep) == ("hidden_1/kernel", None)


def test_a_cnn_run_says_why_frozen_inputs_do_not_apply(tmp_path):
    run = weightlab.run(dataset="synthetic", model="cnn", hidden=8, epochs=1, out=tmp_path, report=False)
    s = run.summary
    assert s["model"] == "cnn, dense 8" and s["input_shape"] == [28, 28, 1] and s["image_shape"] == [28, 28]
    assert s["classes"] == 10 and s["parameters"] == 160 + 4640 + 801 * 8 + 9 * 10
    assert s["frozen_inputs"] is None and "convolution" in s["frozen_inputs_note"]
    assert [layer["name"] for layer in s["layers"]][:2] == ["conv_1/kernel", "conv_1/bias"]
    # On the CPU a convnet trains faster on model.fit than in the fused scan: auto picks it, and says why.
    assert s["training_path"] == "keras.fit" and "convolution" in s["training_path_reason"]


@pytest.fixture(scope="module")
def saved_mlp(tmp_path_factory):
    """A 784-128-64-10 MLP saved to .keras, compiled with SGD at 0.05 (not the tutorial's Adam)."""
    keras.utils.set_random_seed(11)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(128, activation="relu", name="a"),
            keras.layers.Dense(64, activation="relu", name="b"),
            keras.layers.Dense(10, activation="softmax", name="c"),
        ],
        name="mine",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    path = tmp_path_factory.mktemp("models") / "mine.keras"
    model.save(path)
    return path, [w.copy() for w in model.get_weights()]


def test_a_saved_model_trains_from_its_own_weights_with_its_own_optimizer(saved_mlp, tmp_path):
    path, weights = saved_mlp
    run = weightlab.run(dataset="synthetic", model=str(path), epochs=1, out=tmp_path, report=False)
    _, _, snapshots = run.snapshots()
    assert list(snapshots) == ["a/kernel", "a/bias", "b/kernel", "b/bias", "c/kernel", "c/bias"]
    for stack, weight in zip(snapshots.values(), weights):
        assert np.array_equal(stack[0], weight)  # W₀ is the file's, not a fresh initialisation
    s = run.summary
    assert s["compile"]["optimizer"] == "SGD" and s["compile"]["learning_rate"] == pytest.approx(0.05)
    assert s["parameters"] == 785 * 128 + 129 * 64 + 65 * 10 and s["frozen_inputs"]["inputs"] == 784
    record = json.loads((run.path / "config.json").read_text())
    assert record["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert s["test_accuracy_after"] > s["test_accuracy_before"]


def test_a_model_with_dropout_and_batchnorm_trains_on_keras_fit_and_says_why(tmp_path, capsys):
    from weightlab.cli import main

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.Dropout(0.2, name="drop"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path / "stateful.keras"
    model.save(path)  # uncompiled: trained with the tutorial's settings
    code = main(
        ["run", "--dataset", "synthetic", "--epochs", "1", "--model", str(path), "--out", str(tmp_path / "runs")]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Trained on keras.fit" in out and "non-trainable variables" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    s = weightlab.read_run(run_dir).summary
    assert s["training_path"] == "keras.fit" and "norm" in s["training_path_reason"]
    assert s["compile"]["optimizer"] == "Adam" and s["input_shape"] == [28, 28]
    assert s["frozen_inputs"]["inputs"] == 784  # a Dense layer after Flatten still sees the raw pixels


def test_a_keras_file_that_would_run_code_is_refused_in_one_line(tmp_path, capsys):
    from weightlab.cli import main

    model = keras.Sequential([keras.Input((784,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(10)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    code = main(["run", "--dataset", "synthetic", "--model", str(path), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "safe mode" in err
    assert not list((tmp_path / "runs").iterdir())  # nothing written


def test_a_model_that_does_not_fit_the_data_is_refused_in_one_line(saved_mlp, tmp_path, capsys):
    from weightlab.cli import main

    code = main(["run", "--dataset", str(tmp_path / "nope.npz"), "--out", str(tmp_path)])
    assert code == 2 and "no such file" in capsys.readouterr().err
    flat = tmp_path / "flat.npz"
    np.savez(
        flat,
        x_train=np.ones((40, 5), np.float32),
        y_train=np.arange(40) % 3,
        x_test=np.ones((8, 5)),
        y_test=np.zeros(8, int),
    )
    for argv in (["--model", str(saved_mlp[0])], ["--model", "cnn"]):
        code = main(["run", "--dataset", str(flat), *argv, "--out", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_compare_models_states_the_difference_with_its_interval(tmp_path, capsys):
    from weightlab.cli import main

    code = main(
        [
            "compare",
            "--dataset",
            "synthetic",
            "--epochs",
            "1",
            "--compare",
            "model=mlp,cnn",
            "--seeds",
            "2",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["axis"] == "model" and [v["value"] for v in result["variants"]] == ["mlp", "cnn"]
    assert result["variants"][0]["parameters"] == 50890 and result["variants"][1]["parameters"] != 50890
    (statement,) = result["statements"]
    assert "model=cnn" in statement and "model=mlp" in statement and "95% CI" in statement


def test_hidden_widths_are_one_syntax_on_every_command(tmp_path, capsys):
    from weightlab.cli import build_parser
    from weightlab.experiments.compare import parse_axis

    parser = build_parser()
    assert parser.parse_args(["run", "--hidden", "128x64"]).hidden == (128, 64)
    assert parser.parse_args(["prove", "--hidden", "32"]).hidden == 32
    assert parser.parse_args(["compare", "--hidden", "16", "128x64"]).hidden == [16, (128, 64)]
    assert parse_axis("hidden=16,128x64") == ("hidden", [16, (128, 64)])
    from weightlab.cli import _sweep_spec
    from weightlab.experiments.sweep import cells_of

    base, grid, _ = _sweep_spec(parser.parse_args(["sweep", "--hidden", "16,128x64", "--model", "mlp,cnn"]))
    assert grid == {"hidden": [16, (128, 64)], "model": ["mlp", "cnn"]}
    assert [cell.cell_id for cell in cells_of(base, grid, 1)][2] == "hidden-128x64_model-mlp_seed-0"
    config = RunConfig(hidden=[128, 64])
    assert config == RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert config.to_dict()["hidden"] == [128, 64] and RunConfig(hidden=[64]) == RunConfig()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--hidden", "128xx"])
    assert "128x64" in capsys.readouterr().err


def test_a_deep_mlp_proof_undoes_every_layer(tmp_path):
    from weightlab.experiments.prove import prove

    proof = prove(dataset="synthetic", hidden=(16, 8), epochs=1, seeds=2, out=tmp_path, report=False)
    controls = proof.result["controls"]
    assert {"undo_hidden_1", "undo_hidden_2", "undo_output"} <= set(controls)
    assert np.shape(proof.result["where"]["pixel_change"]) == (28, 28)


def test_a_cnn_proof_runs_every_control_and_says_why_where_is_absent(tmp_path):
    from weightlab.experiments.prove import prove

    proof = prove(dataset="synthetic", model="cnn", hidden=8, epochs=1, seeds=2, out=tmp_path)
    result = proof.result
    assert {"undo_conv_1", "undo_conv_2", "undo_hidden", "undo_output", "random_step"} <= set(result["controls"])
    assert result["where"]["pixel_change"] is None and "convolution" in result["where"]["note"]
    assert any("not measured" in sentence for sentence in result["verdict"]["sentences"])
    assert (proof.path / "report.html").is_file()


def test_run_many_trains_deep_mlp_variants_as_branches(tmp_path):
    from weightlab.experiments.run import run
    from weightlab.experiments.together import run_many

    base = RunConfig(dataset="synthetic", epochs=1, backend="jax")
    configs = [dataclasses.replace(base, hidden=h, seed=s) for h in (8, (8, 4)) for s in (0, 1)]
    together = run_many(configs, out=tmp_path / "together")
    alone = run(configs[3], out=tmp_path / "alone", report=False)
    assert together[3].summary["model"] == "mlp 784-8-4-10"
    assert together[3].summary["test_accuracy_after"] == pytest.approx(alone.summary["test_accuracy_after"], abs=2e-3)
