"""--dataset PATH.npz: the user's own arrays, checked, never unpickled; and runs on them."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightlab.data import user
from weightlab.errors import DataError


def good_arrays(shape=(6,), classes=3, train=40, test=10, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(train, *shape)).astype(dtype),
        "y_train": np.arange(train) % classes,
        "x_test": rng.normal(size=(test, *shape)).astype(dtype),
        "y_test": np.arange(test) % classes,
    }


def write(tmp_path, arrays, name="data.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("shape", [(6,), (9, 11), (12, 10, 3)], ids=["vectors", "grey", "colour"])
def test_good_files_load_with_their_shape_and_classes(tmp_path, shape):
    from weightlab import data

    dataset = data.load(str(write(tmp_path, good_arrays(shape))))
    assert dataset.example_shape == shape and dataset.classes == 3 and dataset.source == "file"
    assert dataset.image_shape == (None if len(shape) == 1 else list(shape))
    assert len(dataset.sha256) == 64


BAD = {
    "object array": (lambda a: a.update(x_train=np.array([[1.0], "x"] * 20, dtype=object)), "object array"),
    "labels out of range": (lambda a: a.update(y_test=np.full(10, 7)), "no training label reaches"),
    "negative label": (lambda a: a.update(y_train=np.arange(40) % 3 - 1), "0 or more"),
    "NaN": (lambda a: a["x_train"].__setitem__((3, 2), np.nan), "NaN or infinite"),
    "infinity": (lambda a: a["x_test"].__setitem__((0, 0), np.inf), "NaN or infinite"),
    "float labels": (lambda a: a.update(y_train=np.zeros(40, np.float32)), "integers"),
    "short labels": (lambda a: a.update(y_train=np.arange(39) % 3), "one label each"),
    "shapes differ": (lambda a: a.update(x_test=np.zeros((10, 7), np.float32)), "must be the same"),
    "one class": (lambda a: a.update(y_train=np.zeros(40, int), y_test=np.zeros(10, int)), "one class"),
    "5-d": (lambda a: a.update(x_train=np.zeros((40, 1, 2, 3, 4)), x_test=np.zeros((10, 1, 2, 3, 4))), "pass (n,"),
    "strings": (lambda a: a.update(x_train=np.array([["a"] * 6] * 40)), "real numbers"),
    "missing": (lambda a: a.pop("y_test"), "lacks array(s) y_test"),
}


@pytest.mark.parametrize("fault", list(BAD))
def test_bad_contents_give_one_line_and_exit_2(tmp_path, capsys, fault):
    from weightlab.cli import main

    arrays = good_arrays()
    spoil, message = BAD[fault]
    spoil(arrays)
    path = write(tmp_path, arrays)
    code = main(["run", "--dataset", str(path), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_an_object_array_is_never_unpickled(tmp_path, monkeypatch):
    import pickle

    ran = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: ran.append(1))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: ran.append(1))
    arrays = good_arrays()
    arrays["y_train"] = np.array([object()] * 40, dtype=object)
    with pytest.raises(DataError, match="never unpickles"):
        user.read(write(tmp_path, arrays))
    assert not ran


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    train=st.integers(0, 5),
    features=st.integers(0, 4),
    labels=st.lists(st.integers(-3, 12), min_size=0, max_size=6),
    value=st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf]),
    dtype=st.sampled_from(["float32", "float64", "uint8", "int16", "bool", "complex64"]),
)
def test_check_accepts_exactly_the_valid_arrays(train, features, labels, value, dtype):
    """Every array set either passes `check` and satisfies its promises, or raises a one-line DataError."""
    x = np.full((train, features), value if dtype.startswith("float") else 1).astype(dtype)
    y = np.array(labels[:train] + [0] * max(0, train - len(labels)), dtype=np.int64) if labels else np.zeros(train, int)
    arrays = {"x_train": x, "y_train": y, "x_test": x[:2], "y_test": y[:2]}
    try:
        user.check(arrays, "f.npz")
    except DataError as error:
        assert "\n" not in str(error) and str(error).startswith("f.npz: ")
        return
    assert x.dtype.kind in "uif" and train >= 1 and features >= 1
    assert np.isfinite(x).all() and y.min() >= 0 and len(set(y.tolist())) >= 1 and y.max() >= 1


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=0, max_size=400))
def test_random_bytes_give_a_data_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "random.npz"
    path.write_bytes(data)
    with pytest.raises(DataError):
        user.read(path)


@pytest.mark.slow
def test_a_run_on_flat_vectors_and_on_colour_images(tmp_path):
    import weightlab

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    x[:, 4] = 0  # a feature that is 0 everywhere: its weights cannot move
    arrays = {
        "x_train": x[:240],
        "y_train": (x[:240, 0] > 0).astype(np.int64),
        "x_test": x[240:],
        "y_test": (x[240:, 0] > 0).astype(np.int64),
    }
    run = weightlab.run(
        dataset=str(write(tmp_path, arrays, "vectors.npz")),
        epochs=5,
        hidden=8,
        learning_rate=0.01,
        out=tmp_path / "runs",
    )
    s = run.summary
    assert s["input_shape"] == [5] and s["image_shape"] is None and s["classes"] == 2
    assert s["frozen_inputs"]["never_active_pixels"] == [[4]] and s["frozen_inputs"]["never_active_rows_unchanged"]
    assert s["test_accuracy_after"] > 0.8 and (run.path / "report.html").is_file()
    from weightlab.report.terminal import frozen_explanation

    said = " ".join(frozen_explanation(s))
    assert "1 of 5 features are 0 in every training example" in said and "pixel" not in said and "image" not in said
    record = json.loads((run.path / "config.json").read_text())
    assert record["dataset_sha256"] == user.file_sha256(tmp_path / "vectors.npz")
    colour = good_arrays((12, 12, 3), classes=4, train=128, test=32, dtype=np.uint8)
    run = weightlab.run(
        dataset=str(write(tmp_path, colour, "colour.npz")), model="cnn", epochs=1, out=tmp_path / "runs"
    )
    assert run.summary["input_shape"] == [12, 12, 3] and run.summary["classes"] == 4
    assert (run.path / "report.html").is_file()
