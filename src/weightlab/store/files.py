"""Reading one file of a run (or proof, comparison, sweep) directory through its schema.

Every reader checks the file as a whole — sizes before reading, then keys, types, shapes and
ranges — and turns any fault into one `RunDirError` line that names the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from weightlab import safeio
from weightlab.errors import RunDirError
from weightlab.store.format import DIGESTS, file_digest
from weightlab.store.schema import Dims, SchemaError, arrays, header_checker
from weightlab.store.schemas import JSON_LIMIT

DAMAGED = "it is damaged or was not written by weightlab: rerun the experiment"


@contextlib.contextmanager
def reading(path: Path, advice: str = DAMAGED):
    """Any fault while reading ``path`` becomes one line naming it (and what to do)."""
    try:
        yield path
    except RunDirError:
        raise
    except FileNotFoundError as error:
        raise RunDirError(f"{path}: missing; {advice}") from error
    except (
        SchemaError,
        safeio.UnsafeInput,
        OSError,
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        EOFError,
        RuntimeError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
        RecursionError,
    ) as error:
        known = isinstance(error, (SchemaError, safeio.UnsafeInput))
        detail = str(error) if known else f"damaged ({type(error).__name__}: {error})"
        raise RunDirError(f"{path}: {detail[:200]}; {advice}") from error


def check_digest(path: Path, digests: dict | None) -> None:
    """Refuse a file whose bytes are not those its directory's digests.json recorded (damaged or swapped)."""
    if digests and path.name in digests and file_digest(path) != digests[path.name]:
        raise SchemaError(f"does not match its SHA-256 in {DIGESTS} (it changed after the directory was written)")


def _no_constants(name: str):
    raise ValueError(f"holds {name}, which JSON does not allow")


def read_json(path: Path, spec, dims: Dims | None = None, advice: str = DAMAGED, digests: dict | None = None):
    """A JSON file, checked against ``spec`` (and against its recorded digest, where ``digests`` holds one)."""
    with reading(path, advice):
        check_digest(path, digests)
        text = safeio.read_bytes(path, JSON_LIMIT).decode("utf-8")
        try:
            value = json.loads(text, parse_constant=_no_constants)
        except json.JSONDecodeError as error:
            raise SchemaError(f"is not valid JSON ({error})") from error
        return spec.check(value, "", Dims() if dims is None else dims)


def read_npz(
    path: Path, specs: dict, dims: Dims | None = None, advice: str = DAMAGED, digests: dict | None = None
) -> dict[str, np.ndarray]:
    """An ``.npz`` archive's arrays: headers checked before any data is read, then every value."""
    dims = Dims() if dims is None else dims
    with reading(path, advice):
        check_digest(path, digests)
        values = safeio.npz_arrays(path, check=header_checker(specs, dims))
        return arrays(specs, values, dims)


def read_csv(
    path: Path, columns: dict, dims: Dims | None = None, advice: str = DAMAGED, digests: dict | None = None
) -> dict[str, list]:
    """A CSV file with a header row: every column in ``columns`` present, every cell a number (empty or nan: None)."""
    dims = Dims() if dims is None else dims
    with reading(path, advice):
        check_digest(path, digests)
        text = safeio.read_bytes(path, JSON_LIMIT).decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            raise SchemaError("is empty")
        header, body = rows[0], rows[1:]
        missing = [name for name in columns if name not in header]
        if missing:
            raise SchemaError(f"lacks the column(s) {', '.join(missing)}")
        result: dict[str, list] = {name: [] for name in columns}
        for number, row in enumerate(body, start=2):
            if len(row) != len(header):
                raise SchemaError(f"row {number} has {len(row)} cells, not {len(header)}")
            for name, spec in columns.items():
                cell = row[header.index(name)].strip()
                result[name].append(spec.check(_cell(cell, spec, number, name), f"row {number}, {name}", dims))
        dims.bind("history_epochs", len(body), f"the {len(body)} rows of {path.name}")
        return result


def _cell(cell: str, spec, number: int, name: str) -> float | int | None:
    """A CSV cell as a number: empty or nan is None, a whole number in an integer column an int."""
    try:
        value = float(cell) if cell else math.nan
    except ValueError as error:
        raise SchemaError(f"row {number}, {name}: {cell[:30]!r} is not a number") from error
    if math.isnan(value):
        return None
    if value.is_integer() and getattr(spec, "integer", False):
        return int(value)
    return value


def read_h5(
    path: Path,
    specs: dict,
    tree: str,
    check_tree,
    dims: Dims,
    advice: str = DAMAGED,
    digests: dict | None = None,
    load_tree: bool = True,
):
    """(named datasets, {name: array} of every dataset under ``tree``) of an HDF5 file.

    ``check_tree(name, shape, dtype)`` checks each dataset under ``tree`` before it is read;
    with ``load_tree=False`` only that is done, and the dict holds each dataset's shape instead.
    """
    import h5py

    limit = safeio.read_cap()
    with reading(path, advice):
        check_digest(path, digests)
    with reading(path, advice), h5py.File(path, "r") as h5:

        def load(name: str, node, check) -> np.ndarray:
            if not isinstance(node, h5py.Dataset):
                raise SchemaError(f"{name} is not a dataset")
            check(name, tuple(node.shape), node.dtype)
            if math.prod(node.shape) * node.dtype.itemsize > limit:
                raise SchemaError(f"{name} declares {node.shape}, more than this machine can hold")
            return np.asarray(node[()])

        headers = header_checker(specs, dims)
        named = {name: load(name, h5[name], headers) for name in specs if name in h5}
        named = arrays(specs, named, dims)
        if tree not in h5 or not isinstance(h5[tree], h5py.Group):
            raise SchemaError(f"lacks the group /{tree}")
        found: dict[str, np.ndarray | tuple] = {}

        def visit(name: str, node) -> None:
            if isinstance(node, h5py.Dataset) and not load_tree:
                check_tree(name, tuple(node.shape), node.dtype)
                found[name] = tuple(node.shape)
            elif isinstance(node, h5py.Dataset):
                found[name] = load(f"{tree}/{name}", node, lambda at, shape, dtype: check_tree(name, shape, dtype))

        h5[tree].visititems(visit)
        return named, found
