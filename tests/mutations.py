"""Hypothesis strategies that damage one file of a weightlab directory the way a disk, a person or an attacker might.

Each `mutate_*` takes the file's path and a Hypothesis ``data`` object, rewrites the file and
returns a short description of what it did (for the failure message). Structured mutations
understand the format (a JSON key deleted or retyped, an array reshaped, an HDF5 dataset
emptied, a CSV cell made text); raw ones do not (truncation, flipped bytes, foreign bytes).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

ODD_VALUES = [None, "text", "", [], {}, [1, "a"], -1, 0, 2**64, 1.5, -1e308, True, {"a": 1}]
RAW_CONTENTS = [b"", b"{}", b"[]", b"null", b"\xff\xfe\x00garbage", b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"]


def mutate_raw(path: Path, data) -> str:
    raw = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "flip", "replace", "append"]), label="raw")
    if kind == "truncate" and raw:
        cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
        path.write_bytes(bytes(raw[:cut]))
        return f"truncated to {cut} bytes"
    if kind == "flip" and raw:
        flips = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8), label="flips")
        for position in flips:
            raw[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        path.write_bytes(bytes(raw))
        return f"bits flipped at {flips}"
    if kind == "append":
        path.write_bytes(bytes(raw) + b"\x00trailing")
        return "bytes appended"
    content = data.draw(st.sampled_from(RAW_CONTENTS), label="content")
    path.write_bytes(content)
    return f"replaced by {content!r}"


def _json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):
            yield from _json_paths(item, (*prefix, index))


def mutate_json(path: Path, data) -> str:
    value = json.loads(path.read_text())
    paths = [p for p in _json_paths(value) if p]
    where = data.draw(st.sampled_from(paths), label="key path")
    parent = value
    for key in where[:-1]:
        parent = parent[key]
    kind = data.draw(st.sampled_from(["delete", "retype", "nest"]), label="json")
    if kind == "delete":
        del parent[where[-1]]
    elif kind == "retype":
        parent[where[-1]] = data.draw(st.sampled_from(ODD_VALUES), label="value")
    else:
        parent[where[-1]] = [parent[where[-1]]]
    path.write_text(json.dumps(value))
    return f"{kind} at {list(where)}"


def _array_change(array: np.ndarray, data) -> tuple[np.ndarray | None, str]:
    kind = data.draw(
        st.sampled_from(["delete", "shorter", "empty", "flat", "text", "float", "nan", "negative", "extra axis"]),
        label="array",
    )
    if kind == "delete":
        return None, kind
    if kind == "shorter":
        return array[:-1], kind
    if kind == "empty":
        return array[:0], kind
    if kind == "flat":
        return array.reshape(-1)[: max(1, array.size // 2)], kind
    if kind == "text":
        return array.astype(str), kind
    if kind == "float":
        return array.astype(np.float64) + 0.5, kind
    if kind == "nan":
        return np.full(array.shape, np.nan), kind
    if kind == "negative":
        return -np.abs(array.astype(np.float64)) - 1 if array.dtype.kind != "U" else array, kind
    return array[..., None], kind


def mutate_npz(path: Path, data) -> str:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    name = data.draw(st.sampled_from(sorted(arrays)), label="array name")
    changed, kind = _array_change(arrays[name], data)
    if changed is None:
        del arrays[name]
    else:
        arrays[name] = changed
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return f"{kind} {name}"


def mutate_h5(path: Path, data) -> str:
    import h5py

    datasets: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, node: datasets.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None
        )
    name = data.draw(st.sampled_from(sorted(datasets)), label="dataset")
    changed, kind = _array_change(datasets[name], data)
    if kind == "empty":  # zero snapshots everywhere: every dataset's first axis emptied
        datasets = {key: value[:0] for key, value in datasets.items()}
    elif changed is None:
        del datasets[name]
    else:
        datasets[name] = changed
    path.unlink()
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5.create_dataset(key, data=value.astype("S") if value.dtype.kind == "U" else value)
    return f"{kind} {name}"


def mutate_csv(path: Path, data) -> str:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    kind = data.draw(st.sampled_from(["drop row", "drop column", "cell", "extra cell", "duplicate row"]), label="csv")
    row = data.draw(st.integers(0, len(rows) - 1), label="row")
    column = data.draw(st.integers(0, len(rows[0]) - 1), label="column")
    if kind == "drop row":
        del rows[row]
    elif kind == "drop column":
        rows = [r[:column] + r[column + 1 :] for r in rows]
    elif kind == "cell":
        rows[row][column] = data.draw(st.sampled_from(["x", "", "1e999", "-5", "nan", "0"]), label="cell")
    elif kind == "extra cell":
        rows[row].append("1")
    else:
        rows.insert(row, rows[row])
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return f"{kind} at row {row}, column {column}"


STRUCTURED = {".json": mutate_json, ".npz": mutate_npz, ".h5": mutate_h5, ".csv": mutate_csv}


def mutate(path: Path, data, others: list[Path]) -> str:
    """One mutation of ``path``: structured for its format, raw bytes, or ``others``' file of the same name."""
    swaps = [other / path.name for other in others if (other / path.name).is_file()]
    kinds = ["structured", "raw", *(["swap"] if swaps else [])]
    kind = data.draw(st.sampled_from(kinds), label="kind")
    if kind == "swap":
        source = data.draw(st.sampled_from(swaps), label="swap from")
        shutil.copyfile(source, path)
        return f"swapped in {source.parent.name}'s {path.name}"
    if kind == "structured" and path.suffix in STRUCTURED:
        try:
            return STRUCTURED[path.suffix](path, data)
        except (ValueError, KeyError, TypeError, IndexError, OSError) as error:  # the format refuses that change
            return f"unchanged ({type(error).__name__})"
    return mutate_raw(path, data)
