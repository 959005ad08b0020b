"""The tutorial's experiment on real MNIST (needs the cached dataset: `weightlab data fetch mnist`)."""

import pytest

from conftest import real_mnist_cached

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not real_mnist_cached(), reason="MNIST not cached: run `weightlab data fetch mnist`"),
]


def test_mnist_is_the_original():
    from weightlab import data

    mnist = data.load("mnist", use_remote=False)
    assert mnist.verified and mnist.x_train.shape == (60000, 28, 28)
    assert mnist.y_train.tolist().count(1) == 6742 and mnist.y_test.tolist().count(0) == 980


def test_the_tutorials_experiment(tmp_path):
    import weightlab

    run = weightlab.run(out=tmp_path)
    s = run.summary
    assert s["steps"] == 5 * 1688 and s["samples"] == {"train": 54000, "validation": 6000, "test": 10000}
    assert s["test_accuracy_after"] >= 0.97  # the tutorial claims ~94%
    assert s["test_accuracy_before"] < 0.2  # an untrained network is no better than chance
    frozen = s["frozen_inputs"]
    # MNIST's 67 always-black pixels (more within the 54,000 images fit sees), none of whose weights moved
    assert frozen["never_active_inputs"] >= 67 and [0, 0] in frozen["never_active_pixels"]
    assert frozen["never_active_rows_unchanged"] is True
    assert s["layers"][0]["frac_unchanged"] >= frozen["weights_of_never_active_inputs"] / frozen["kernel_size"]


@pytest.mark.slow
def test_the_cnn_reaches_98_5_percent_in_five_epochs(tmp_path):
    """`weightlab run --model cnn`: ≥ 97.5% after one epoch (validation) and ≥ 98.5% on the test set after five (minutes on 2 cores)."""
    import weightlab

    run = weightlab.run(model="cnn", out=tmp_path, report=False)
    s = run.summary
    import jax

    # auto trains a convnet on model.fit on the CPU (faster there than the fused scan: see fused_program)
    assert s["training_path"] == ("keras.fit" if jax.default_backend() == "cpu" else "fused-jax")
    assert s["parameters"] == 56714
    assert s["history"]["val_accuracy"][0] >= 0.975
    assert s["test_accuracy_after"] >= 0.985
    assert s["frozen_inputs"] is None and "convolution" in s["frozen_inputs_note"]
