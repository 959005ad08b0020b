"""Reading untrusted bytes with bounds: sizes are checked before anything is allocated or inflated.

A file's header may declare anything (255 TiB of array, a gzip stream that inflates a
thousandfold); the readers here trust no declared size they have not checked against a cap,
and read compressed data as a stream that stops at the size the header promised. Each raises
`UnsafeInput` (a ValueError) with a short reason; callers add the file's name and the advice.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np


class UnsafeInput(ValueError):
    """Bytes that are damaged, or that declare more than may be read."""


def available_memory() -> int:
    """Bytes of memory this machine can still give (MemAvailable), or physical memory where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def read_cap() -> int:
    """The most bytes one array or file may declare: half the memory available now."""
    return available_memory() // 2


def read_bytes(path: Path, limit: int) -> bytes:
    """A whole (small) file, refused if it is larger than ``limit`` bytes."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafeInput(f"is larger than {limit:,} bytes, far more than such a file holds")
    return data


def read_exactly(stream: IO[bytes], size: int, what: str) -> bytearray:
    """``size`` bytes from ``stream``, streamed into one buffer; refused if the stream holds fewer or more."""
    buffer = bytearray(size)
    view, filled = memoryview(buffer), 0
    try:
        while filled < size:
            count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not count:
                raise UnsafeInput(f"{what} holds {filled:,} bytes but its header promises {size:,}")
            filled += count
        if stream.read(1):
            raise UnsafeInput(f"{what} holds more bytes than the {size:,} its header promises")
    except (zlib.error, EOFError, gzip.BadGzipFile, zipfile.BadZipFile) as error:
        raise UnsafeInput(f"{what} is a damaged compressed stream ({error})") from error
    return buffer


def _array_header(stream: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise UnsafeInput(f"array {name} is in .npy format {version}, which weightlab does not write")
    except (ValueError, SyntaxError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        if isinstance(error, UnsafeInput):
            raise
        raise UnsafeInput(f"array {name} has a damaged header ({str(error)[:80]})") from error
    if dtype.hasobject:
        raise UnsafeInput(f"array {name} holds Python objects; only plain arrays are read")
    return shape, fortran, dtype


def npz_arrays(path: Path, check=None, limit: int | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, each header checked before its data is read.

    ``check(name, shape, dtype)`` runs on each header first (raise to refuse); an array whose
    declared size exceeds ``limit`` (default `read_cap`) or its archive member's is refused, and
    its data is streamed with exactly the declared size as the cap (zip's CRC is checked at the end).
    """
    limit = read_cap() if limit is None else limit
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    shape, fortran, dtype = _array_header(member, name)
                    if check is not None:
                        check(name, shape, dtype)
                    size = math.prod(shape) * dtype.itemsize
                    if size > limit or size > info.file_size:
                        raise UnsafeInput(
                            f"array {name} declares {size:,} bytes, more than its archive member ({info.file_size:,}) "
                            f"or this machine's cap ({limit:,}) allows"
                        )
                    data = read_exactly(member, size, f"array {name}")
                arrays[name] = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        raise UnsafeInput(f"is not a readable .npz archive ({str(error)[:100]})") from error
    return arrays


def open_maybe_gzip(path: Path) -> IO[bytes]:
    """The file, decompressed as a stream when it starts with gzip's magic bytes."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_prefix(stream: IO[bytes], size: int, what: str) -> bytes:
    """The first ``size`` bytes of a (possibly compressed) stream; fewer only at its end."""
    try:
        return stream.read(size)
    except (zlib.error, EOFError, gzip.BadGzipFile) as error:
        raise UnsafeInput(f"{what} is a damaged compressed stream ({error})") from error
