"""Saved models that need care: layers called without ``training``, logits, frozen layers, settings refused or left to model.fit."""

import numpy as np
import pytest

from weightlab.backend import keras_for

keras = keras_for("jax")
import weightlab  # noqa: E402
from weightlab.cli import main  # noqa: E402
from weightlab.models import compile_settings  # noqa: E402
from weightlab.train.fused_program import why_not  # noqa: E402

layers = keras.layers


def saved(tmp_path, name, body, **compiled):
    """A model of 784 inputs, ``body`` layers and a fixed seed, saved (compiled when settings are given) to ``name``.keras."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), *body])
    if compiled:
        model.compile(**compiled)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def one_run(tmp_path, path, **overrides):
    return weightlab.run(dataset="synthetic", model=str(path), epochs=1, out=tmp_path / "runs", **overrides)


@pytest.mark.parametrize(
    "name, body, loss",
    [
        ("softmax-layer", [layers.Dense(16, activation="relu"), layers.Dense(10), layers.Softmax()], None),
        (
            "layer-norm",
            [layers.Dense(16), layers.LayerNormalization(), layers.Activation("relu"), layers.Dense(10)]
            + [layers.Activation("softmax")],
            None,
        ),
        (
            "logits",
            [layers.Dense(16, activation="relu"), layers.Dense(10)],
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ),
    ],
)
def test_layers_without_training_and_logit_outputs_run_to_a_report(tmp_path, name, body, loss):
    """Layers whose call takes no ``training`` (the landscape calls them one by one), and a model that outputs logits."""
    compiled = {} if loss is None else {"optimizer": "adam", "loss": loss}
    run = one_run(tmp_path, saved(tmp_path, name, body, **compiled))
    assert run.summary["status"] == "complete" and (run.path / "report.html").is_file()
    confidence = np.load(run.path / "predictions.npz")["confidence"]
    assert confidence.min() >= 0.1 - 1e-6 and confidence.max() <= 1.0 + 1e-6  # the largest of 10 probabilities


def test_a_frozen_first_layer_trains_the_rest_and_says_why_no_input_is_counted(tmp_path):
    body = [layers.Dense(16, activation="relu", trainable=False, name="fixed"), layers.Dense(10, activation="softmax")]
    run = one_run(tmp_path, saved(tmp_path, "frozen", body), report=False)
    s = run.summary
    assert s["status"] == "complete" and s["frozen_inputs"] is None and "frozen" in s["frozen_inputs_note"]
    assert s["training_path"] == "keras.fit" and "frozen layer" in s["training_path_reason"]


def test_a_lora_first_layer_trains_its_factors_and_says_why_no_input_is_counted(tmp_path):
    """LoRA freezes the kernel (the layer's `kernel` is then a sum, not a variable): the input analysis crashed."""
    first = layers.Dense(16, activation="relu", name="adapted")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), first, layers.Dense(10, activation="softmax")])
    first.enable_lora(2)
    model.save(tmp_path / "lora.keras")
    run = one_run(tmp_path, tmp_path / "lora.keras", report=False)
    s = run.summary
    assert s["status"] == "complete" and s["frozen_inputs"] is None and "LoRA" in s["frozen_inputs_note"]
    assert {"adapted/lora_kernel_a", "adapted/lora_kernel_b"} <= set(run.snapshots()[2])


MLP = [layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")]
SCE = "sparse_categorical_crossentropy"


@pytest.mark.parametrize(
    "compiled, flags, says",
    [
        ({"optimizer": keras.optimizers.Adam(use_ema=True), "loss": SCE}, [], "use_ema"),
        ({"optimizer": "sgd", "loss": SCE, "loss_weights": 3.0}, [], "loss_weights"),
        ({"optimizer": "adam", "loss": "categorical_crossentropy"}, [], "cannot score class labels"),
        ({"optimizer": "adam", "loss": "mse"}, [], "cannot score class labels"),
        ({"optimizer": "adam", "loss": SCE}, ["--learning-rate", "0.1"], "do not apply"),
    ],
    ids=["ema", "loss-weights", "one-hot-loss", "mse", "flags-over-a-compiled-file"],
)
def test_settings_weightlab_would_not_honour_are_refused_in_one_line(tmp_path, capsys, compiled, flags, says):
    path = saved(tmp_path, "model", MLP, **compiled)
    out = tmp_path / "runs"
    code = main(["run", "--dataset", "synthetic", "--epochs", "1", "--model", str(path), *flags, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())


def test_mixed_precision_and_loss_scaling_are_left_to_model_fit_with_a_reason():
    keras.utils.set_random_seed(0)
    mixed = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax", dtype="mixed_float16")])
    mixed.compile(optimizer="adam", loss=SCE)
    assert "mixed-precision" in why_not(mixed)
    scaled = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    scaled.compile(optimizer=keras.optimizers.SGD(0.1, loss_scale_factor=128.0), loss=SCE)
    assert "loss_scale_factor" in why_not(scaled)
    scaled.compile(optimizer=keras.optimizers.SGD(0.1), loss=SCE)
    assert why_not(scaled) is None


def test_a_learning_rate_schedule_is_recorded_as_the_schedule():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss=SCE)
    rate = compile_settings(model)["learning_rate"]
    assert isinstance(rate, str) and rate.startswith("ExponentialDecay(") and '"decay_steps": 5' in rate


def test_a_tracked_model_whose_loss_cannot_score_class_labels_is_refused_in_one_sentence(tmp_path):
    """A one-output sigmoid classifier trained by the user's own model.fit: its loss wants (n, 1) targets."""
    from weightlab import WeightTracker
    from weightlab.errors import ConfigError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential(
        [keras.Input((6,)), layers.Dense(4, activation="relu"), layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    tracker = WeightTracker()
    model.fit(x, y, epochs=1, callbacks=[tracker], verbose=0)
    with pytest.raises(ConfigError, match="cannot score class labels"):
        tracker.save(tmp_path / "run", model, test_data=(x, y))
    assert not (tmp_path / "run").exists()


def test_logits_under_a_loss_that_reads_probabilities_are_refused_before_training(tmp_path, capsys):
    """Saved uncompiled, a logits model would be compiled as the tutorial's (probabilities) and train on nonsense."""
    path = saved(tmp_path, "logits", [layers.Dense(16, activation="relu"), layers.Dense(10)])
    out = tmp_path / "runs"
    code = main(["run", "--dataset", "synthetic", "--epochs", "1", "--model", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not class probabilities" in err, err
    assert not out.exists() or not any(out.iterdir())


def test_a_run_resumes_only_with_the_model_file_it_started_with_and_counts_all_its_time(tmp_path):
    from weightlab.errors import ConfigError

    path = saved(tmp_path, "model", MLP, optimizer="adam", loss=SCE)

    def stop(done, total, logs):
        if logs is not None and logs["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weightlab.run(
            dataset="synthetic", model=str(path), epochs=2, out=tmp_path / "runs", progress=stop, report=False
        )
    (hidden,) = (tmp_path / "runs").iterdir()
    original = path.read_bytes()
    saved(tmp_path, "model", MLP, optimizer="sgd", loss=SCE)  # the same layers, another optimizer: another file
    with pytest.raises(ConfigError, match="changed since the run started"):
        weightlab.run(resume=hidden, report=False)
    path.write_bytes(original)
    run = weightlab.run(resume=hidden, report=False)
    s = run.summary
    assert s["status"] == "complete" and s["train_seconds"] >= 0.99 * sum(run.history()["seconds"])  # both epochs


def test_a_sweep_or_comparison_refuses_what_its_model_file_cannot_do_before_anything_trains(tmp_path):
    from weightlab.errors import ConfigError
    from weightlab.experiments.compare import compare
    from weightlab.experiments.sweep import sweep

    path = saved(tmp_path, "model", MLP, optimizer="adam", loss=SCE)
    with pytest.raises(ConfigError, match="do not apply"):
        sweep(
            grid={"learning_rate": [0.001, 0.01]},
            seeds=1,
            out=tmp_path / "sweeps",
            workers=1,
            dataset="synthetic",
            model=str(path),
            epochs=1,
        )
    with pytest.raises(ConfigError, match="brings its own layers"):
        compare(
            axis="hidden", values=[8, 16], seeds=2, out=tmp_path / "comparisons", dataset="synthetic", model=str(path)
        )
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").iterdir())
    assert not (tmp_path / "comparisons").exists() or not any((tmp_path / "comparisons").iterdir())


def test_dropout_trains_on_the_fused_path_as_model_fit_does(tmp_path):
    """Dropout's random state is a variable the loop carries from step to step, as model.fit does: every snapshot equal."""
    body = [layers.Dense(16, activation="relu"), layers.Dropout(0.3), layers.Dense(10, activation="softmax")]
    path = saved(tmp_path, "dropout", body, optimizer="adam", loss=SCE)
    fused = one_run(tmp_path, path, report=False, snapshot_every=5)
    fit = one_run(tmp_path, path, report=False, snapshot_every=5, training_path="keras.fit")
    assert fused.summary["training_path"] == "fused-jax" and fit.summary["training_path"] == "keras.fit"
    for a, b in zip(fused.snapshots()[2].values(), fit.snapshots()[2].values()):
        assert np.array_equal(a, b)
