"""Readers for the file formats MNIST-like datasets come in. Pure I/O, no network.

Each reader returns plain numpy arrays or raises DataError naming the file and the fault.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
from pathlib import Path

import numpy as np

from weightlab import safeio
from weightlab.errors import DataError

# IDX magic: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions.
_IDX_UBYTE = 0x08
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array held in an IDX file (gzipped or not), shaped as its header says.

    The header is read first; the body is streamed with exactly the size it declares as the cap
    (a small gzip that would inflate to gigabytes is refused after the declared size, not read to its end).
    """
    try:
        with safeio.open_maybe_gzip(path) as handle:
            magic = safeio.read_prefix(handle, 4, "the file")
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
                raise DataError(f"{path} is not an IDX file (wrong magic number); replace it with the original file")
            if magic[2] != _IDX_UBYTE:
                raise DataError(
                    f"{path} holds IDX type 0x{magic[2]:02x}, not unsigned bytes (0x08); use the original MNIST-format file"
                )
            dimensions = safeio.read_prefix(handle, 4 * magic[3], "the header")
            if len(dimensions) < 4 * magic[3]:
                raise DataError(f"{path} is truncated inside its header; replace it with a fresh copy")
            shape = tuple(int.from_bytes(dimensions[4 * i : 4 * i + 4], "big") for i in range(magic[3]))
            expected = math.prod(shape)
            if expected > safeio.read_cap():
                raise DataError(
                    f"{path} declares shape {shape} ({expected:,} bytes), more than this machine can hold; replace it with the original file"
                )
            body = safeio.read_exactly(handle, expected, f"the data for shape {shape}")
    except safeio.UnsafeInput as error:
        raise DataError(f"{path}: {error}; replace it with a fresh copy") from error
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}; replace the file with a fresh copy") from error
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a keras-style ``mnist.npz`` (x_train, y_train, x_test, y_test), sizes checked before reading."""
    try:
        arrays = safeio.npz_arrays(path)
    except safeio.UnsafeInput as error:
        raise DataError(f"cannot read {path} as an .npz archive ({error}); replace it with a fresh copy") from error
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror or error}); replace it with a fresh copy") from error
    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise DataError(f"{path} lacks array(s) {', '.join(missing)}; it must hold {', '.join(ARRAY_NAMES)}")
    return {name: arrays[name] for name in ARRAY_NAMES}


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
