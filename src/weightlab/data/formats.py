"""Readers for the file formats MNIST-like datasets come in. Pure I/O, no network.

Each reader returns plain numpy arrays or raises DataError naming the file and the fault.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from weightlab.errors import DataError

# IDX magic: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions.
_IDX_UBYTE = 0x08
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array held in an IDX file (gzipped or not), shaped as its header says."""
    try:
        with _open_maybe_gzip(path) as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {path}: {error}; replace the file with a fresh copy") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (wrong magic number); replace it with the original file")
    if raw[2] != _IDX_UBYTE:
        raise DataError(
            f"{path} holds IDX type 0x{raw[2]:02x}, not unsigned bytes (0x08); use the original MNIST-format file"
        )
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path} is truncated inside its header; replace it with a fresh copy")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(raw) - header_size
    if body != expected:
        raise DataError(
            f"{path} holds {body} bytes of data but its header promises {expected} for shape {shape}; replace it with a fresh copy"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a keras-style ``mnist.npz`` (x_train, y_train, x_test, y_test)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in ARRAY_NAMES if name not in archive.files]
            if missing:
                raise DataError(f"{path} lacks array(s) {', '.join(missing)}; it must hold {', '.join(ARRAY_NAMES)}")
            return {name: archive[name] for name in ARRAY_NAMES}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"cannot read {path} as an .npz archive ({error}); replace it with a fresh copy") from error


class ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and nothing else.

    A pickle is a program: ``pickle.load`` on a downloaded file runs whatever callable it
    names. This admits only the globals numpy's array reconstruction needs, so a hostile
    file fails with an error instead of running code. (``_codecs.encode`` is how Python 3
    writes an array's raw bytes at pickle protocol 2; it only turns a str into bytes.)
    """

    _ALLOWED = {
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 4 and 5 arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct
        if name == "_frombuffer":
            return np._core.numeric._frombuffer
        if name == "encode":
            import codecs

            return codecs.encode
        return getattr(np, name)


def load_arrays_pickle(data: bytes, origin: str) -> object:
    """Unpickle ``data`` (gzipped or not) admitting numpy arrays only."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DataError(f"{origin} is not a pickle of numpy arrays ({error}); it will not be loaded") from error
