"""One test per kind of defect in issue 14: each failed before its fix (a traceback, a silent replacement, a hang)."""

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab import data
from weightlab.cli import main
from weightlab.data import formats
from weightlab.errors import ConfigError, DataError, RunDirError
from weightlab.store.checkpoint import arrays_digest
from weightlab.train.orders import EpochOrders

TINY = dict(dataset="synthetic", hidden=4, backend="jax")


def cli(argv) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("weightlab: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    return weightlab.run(**TINY, epochs=2, out=tmp_path_factory.mktemp("runs"), report=False)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    def stop(done, total, logs):
        if logs is not None and logs["epoch"] == 1:
            raise KeyboardInterrupt

    out = tmp_path_factory.mktemp("cut")
    with pytest.raises(KeyboardInterrupt):
        weightlab.run(**TINY, epochs=2, out=out, progress=stop, report=False)
    (left,) = out.iterdir()
    return left


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


# -- damaged directories ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("summary.json", b"{}", "lacks the key"),
        ("summary.json", b"[]", "not an object"),
        ("summary.json", b"\xff\xfe{", "UnicodeDecodeError"),
        ("summary.json", None, "history"),  # a list of text where numbers belong
    ],
)
def test_damaged_json_is_one_line(stored, tmp_path, name, content, says):
    run = copy_of(stored.path, tmp_path)
    (run / "digests.json").unlink()  # the schema, not the digest, must catch it
    if content is None:
        summary = json.loads((run / name).read_text())
        summary["history"]["loss"] = ["a", "b"]
        content = json.dumps(summary).encode()
    (run / name).write_bytes(content)
    code, _, err = cli(["report", run])
    assert code == 2 and says in one_line(err)


def test_npz_without_an_array_or_of_the_wrong_shape_and_zero_snapshots(stored, tmp_path):
    run = copy_of(stored.path, tmp_path)
    (run / "digests.json").unlink()
    with np.load(run / "steps.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(run / "steps.npz", **{k: v for k, v in arrays.items() if k != "loss"})
    assert "lacks the array loss" in one_line(cli(["report", run])[2])
    np.savez(run / "steps.npz", **dict(arrays, loss=arrays["loss"][:-1]))
    assert "steps" in one_line(cli(["export", "tensorboard", run])[2])
    np.savez(run / "steps.npz", **arrays)
    import h5py

    with h5py.File(run / "snapshots.h5", "a") as h5:
        for name in ("steps", "epochs"):
            del h5[name]
            h5[name] = np.zeros(0)
    assert "snapshots" in one_line(cli(["report", run])[2])


def test_a_file_swapped_in_from_another_run_is_refused(stored, tmp_path):
    other = weightlab.run(**{**TINY, "seed": 3}, epochs=2, out=tmp_path / "other", report=False)
    run = copy_of(stored.path, tmp_path)
    shutil.copyfile(other.path / "snapshots.h5", run / "snapshots.h5")
    assert "digests.json" in one_line(cli(["report", run])[2])
    (run / "digests.json").unlink()  # an older run without digests: the cross-checks still see it
    assert "norm" in one_line(cli(["report", run])[2])


# -- checkpoints that cannot lie ----------------------------------------------------------------


def resume(directory: Path) -> tuple[int, str]:
    code, _, err = cli(["run", "--resume", directory, "--json"])
    return code, err


def rewrite_checkpoint(directory: Path, change, keep_digest: bool = False) -> None:
    with np.load(directory / "checkpoint.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    if not keep_digest:
        arrays["digest"] = np.asarray(arrays_digest(arrays))  # a careful forger recomputes it
    np.savez(directory / "checkpoint.npz", **arrays)


def test_an_empty_checkpoint_is_refused_and_kept(interrupted, tmp_path):
    left = copy_of(interrupted, tmp_path)
    (left / "checkpoint.npz").write_bytes(b"")
    code, err = resume(left)
    assert code == 2 and "checkpoint.npz" in one_line(err) and left.is_dir()


def test_a_checkpoint_of_another_config_is_refused(interrupted, tmp_path):
    left = copy_of(interrupted, tmp_path)
    config = json.loads((left / "config.json").read_text())
    config["config"]["hidden"] = 6
    (left / "config.json").write_text(json.dumps(config))
    code, err = resume(left)
    assert code == 2 and "another config" in one_line(err)


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda a: a.__setitem__("epochs_done", np.asarray(2)), "digest"),  # altered without care
        (lambda a: a.__setitem__("losses", a["losses"][:, :-5]), "one per step"),
        (lambda a: a.__setitem__("epochs_done", np.asarray(2)), "one per step"),
        (lambda a: a.__setitem__("epochs_done", np.asarray(9)), "outside 1..2"),
        (lambda a: a.__setitem__("order_samples", np.asarray(7)), "orders 7 samples"),
        (lambda a: a.__setitem__("state_0_0", a["state_0_0"][:, :-1]), "not the model's"),
        (lambda a: a.__setitem__("order_key", a["order_key"][:10]), "generator state"),
    ],
)
def test_an_altered_checkpoint_never_becomes_a_complete_run(interrupted, tmp_path, change, says):
    left = copy_of(interrupted, tmp_path)
    rewrite_checkpoint(left, change, keep_digest=says == "digest")
    code, err = resume(left)
    assert code == 2 and says in one_line(err)
    assert left.is_dir() and not (left.parent / left.name.removeprefix(".incomplete-")).exists()


def test_altered_snapshots_in_the_hidden_directory_are_refused(interrupted, tmp_path):
    import h5py

    left = copy_of(interrupted, tmp_path)
    with h5py.File(left / "snapshots.h5", "r+") as h5:
        h5["weights/hidden/kernel"][0, 0, 0] += 1.0
    code, err = resume(left)
    assert code == 2 and "snapshots were altered" in one_line(err) and left.is_dir()


def test_the_resumed_run_shows_its_own_epochs(interrupted, tmp_path):
    left = copy_of(interrupted, tmp_path)
    code, out, _ = cli(["run", "--resume", left, "--epochs", "5"])
    assert code == 0 and "Epoch 2/2" in out and "/5" not in out


# -- huge values: bounds before allocation ------------------------------------------------------


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--seed", str(2**32)], "seed must be at most"),
        (["--hidden", str(10**9)], "of memory"),
        (["--epochs", str(10**11)], "of memory"),
    ],
)
def test_huge_values_are_refused_before_anything_is_built(tmp_path, argv, says):
    start = time.perf_counter()
    code, _, err = cli(["run", "--dataset", "synthetic", "--out", tmp_path, *argv])
    assert code == 2 and says in one_line(err) and time.perf_counter() - start < 30
    assert not any(tmp_path.iterdir())


def test_orders_are_drawn_per_epoch_exactly_as_the_global_generator_would():
    np.random.seed(5)
    orders = EpochOrders.from_global(100, 10**12)  # no 10¹² permutations are drawn now
    expected = [np.random.permutation(100) for _ in range(4)]
    assert all(np.array_equal(orders[e], expected[e]) for e in (0, 1, 2, 3, 1, 0))
    again = EpochOrders.from_state_arrays(orders.state_arrays(), 10**12)
    assert again == orders and np.array_equal(again[3], expected[3])


# -- every value used or refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, says",
    [
        (["sweep", "--hidden", "4,8", "--seeds", "0"], "seeds must be"),
        (["sweep", "--hidden", "4,8", "--workers", "0"], "workers must be"),
        (["sweep", "--hidden", "4,8", "--name", "../outside"], "not a plain directory name"),
        (["sweep", "--hidden", "4,8", "--name", ".hidden"], "not a plain directory name"),
        (["compare", "--compare", ""], "cannot compare"),
        (["sweep", "--hidden", "4,8", "--executor", "ray", "--address", "not a host"], "not HOST:PORT"),
    ],
)
def test_zero_empty_and_unusable_values_are_refused(tmp_path, argv, says):
    code, _, err = cli([*argv, "--dataset", "synthetic", "--out", tmp_path])
    assert code == 2 and says in one_line(err)
    assert not (tmp_path.parent / "outside").exists()


def test_an_unreachable_ray_address_fails_within_seconds(tmp_path):
    with socket_port() as port:  # a port nobody listens on
        start = time.perf_counter()
        code, _, err = cli(
            ["sweep", "--hidden", "4,8", "--executor", "ray", "--address", f"127.0.0.1:{port}", "--out", tmp_path]
        )
    assert code == 2 and "cannot reach the Ray cluster" in one_line(err) and time.perf_counter() - start < 30


@contextlib.contextmanager
def socket_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


@pytest.mark.parametrize(
    "text, says",
    [
        (b"grid = 5\n", "grid"),
        (b'config = "x"\n[grid]\nhidden = [4, 8]\n', "config"),
        (b"seeds = 0\n[grid]\nhidden = [4, 8]\n", "seeds"),
        (b"[grid]\nhidden = [4, 8]\n# \xff\xfe\n", "grid-file"),
    ],
)
def test_bad_grid_files_are_one_line(tmp_path, text, says):
    (tmp_path / "grid.toml").write_bytes(text)
    code, _, err = cli(["sweep", "--grid-file", tmp_path / "grid.toml", "--out", tmp_path / "s"])
    assert code == 2 and says in one_line(err)


def test_the_grid_files_seed_is_used_unless_the_flag_is_given(tmp_path):
    from weightlab.cli import _sweep_spec, build_parser

    (tmp_path / "grid.toml").write_text(
        'seeds = 1\n[config]\nseed = 7\ndataset = "synthetic"\n[grid]\nhidden = [4, 8]\n'
    )
    args = build_parser().parse_args(["sweep", "--grid-file", str(tmp_path / "grid.toml")])
    base, _, seeds = _sweep_spec(args)
    assert base.seed == 7 and seeds == 1
    args = build_parser().parse_args(
        ["sweep", "--grid-file", str(tmp_path / "grid.toml"), "--seed", "0", "--seeds", "3"]
    )
    base, _, seeds = _sweep_spec(args)
    assert base.seed == 0 and seeds == 3


def test_an_explicit_data_dir_is_read_even_when_the_cache_holds_the_dataset(tmp_path, monkeypatch):
    import test_data

    monkeypatch.setenv("WEIGHTLAB_HOME", str(tmp_path / "home"))
    tiny = test_data.generate(n_train=20, n_test=10, seed=1)
    digests = {
        name: test_data.ArrayDigest(a.shape, hashlib.sha256(a.tobytes()).hexdigest()) for name, a in tiny.items()
    }
    spec = test_data.DatasetSpec(
        name="tiny", description="t", sources=(), idx_files=dict(data.DATASETS["mnist"].idx_files)
    )
    monkeypatch.setattr(test_data.DatasetSpec, "digests", property(lambda self: digests if self.name == "tiny" else {}))
    monkeypatch.setitem(data.DATASETS, "tiny", spec)
    test_data.write_idx_dir(tmp_path / "good", tiny, gzipped=False)
    assert data.load("tiny", data_dir=tmp_path / "good", use_remote=False).source == "data_dir"  # now cached
    (tmp_path / "broken").mkdir()
    with pytest.raises(DataError, match="--data-dir"):
        data.load("tiny", data_dir=tmp_path / "broken", use_remote=False)


# -- compressed and declared sizes ----------------------------------------------------------------


def test_a_corrupt_deflate_stream_is_a_data_error(tmp_path):
    arrays = {name: np.zeros(4096, np.uint8) for name in formats.ARRAY_NAMES}
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    raw = bytearray((tmp_path / "a.npz").read_bytes())
    raw[200:260] = bytes(60)  # inside the first member's deflate stream
    (tmp_path / "a.npz").write_bytes(bytes(raw))
    with pytest.raises(DataError):
        formats.read_npz(tmp_path / "a.npz")


def test_an_npz_declaring_255_tib_is_refused_before_allocating(tmp_path):
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (280375465082880,), }"
    header += b" " * (118 - len(header)) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 16
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        for name in formats.ARRAY_NAMES:
            archive.writestr(f"{name}.npy", member)
    with pytest.raises(DataError, match="declares"):
        formats.read_npz(tmp_path / "huge.npz")


def test_a_gzip_bomb_stops_at_the_size_its_header_declares(tmp_path):
    header = bytes([0, 0, 8, 1]) + (16).to_bytes(4, "big")
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(header + bytes(50 << 20), compresslevel=1))
    with pytest.raises(DataError, match="more bytes"):
        formats.read_idx(tmp_path / "bomb.gz")


# -- names and paths ----------------------------------------------------------------------------


def test_a_report_written_before_commit_shows_the_final_name(tmp_path):
    from weightlab.experiments.compare import compare

    comparison = compare(epochs=1, values=[4, 6], seeds=1, out=tmp_path, dataset="synthetic")
    page = (comparison.path / "report.html").read_text()
    assert ".incomplete-" not in page and comparison.path.name in page


def test_a_damaged_jax_cache_entry_is_removed(tmp_path):
    from weightlab.backend import prune_damaged_cache_entries

    cache = tmp_path / "jax-cache"
    cache.mkdir()
    from jax._src import compilation_cache

    good = compilation_cache.compress_executable(b"x" * 1000)
    (cache / "good-cache").write_bytes(good)
    (cache / "empty-cache").write_bytes(b"")
    (cache / "cut-cache").write_bytes(good[: len(good) // 2])
    (cache / "cut-atime").write_bytes(b"12345678")
    removed = prune_damaged_cache_entries(cache)
    assert sorted(p.name for p in removed) == ["cut-cache", "empty-cache"]
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["good-cache"]


def test_errors_in_this_module_are_weightlab_errors():
    assert issubclass(RunDirError, weightlab.WeightlabError) and issubclass(ConfigError, weightlab.WeightlabError)
