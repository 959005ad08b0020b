"""Reading back a proof, a comparison, a sweep (and a sweep's grid file), each through its schema.

What the JSON names is checked against what it holds (a comparison's variants against its
values, a sweep's counts against its cells) and the run directories it names must be plain
names inside its ``runs/``: a file can point the reader nowhere else.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path

import numpy as np

from weightlab import safeio
from weightlab.errors import ConfigError, RunDirError
from weightlab.store import experiment_schemas, schemas
from weightlab.store.files import read_json, read_npz, reading
from weightlab.store.format import TEMP_PREFIX
from weightlab.store.run import Run, check_version, read_digests, read_run
from weightlab.store.schema import Dims, Record, SchemaError

KINDS = {"proof": "proof.json", "comparison": "comparison.json", "sweep": "sweep.json", "run": "summary.json"}


def display_name(path: Path) -> str:
    """A directory's name as the user will see it: a hidden, unfinished one by the name it will get."""
    return Path(path).name.removeprefix(TEMP_PREFIX)


def read_directory(directory: str | os.PathLike) -> str:
    """Which kind of directory this is ("proof", "comparison", "sweep", "run"), or RunDirError."""
    directory = Path(directory)
    for kind, name in KINDS.items():
        if (directory / name).is_file():
            return kind
    raise RunDirError(
        f"{directory} holds no summary.json, proof.json, comparison.json or "
        "sweep.json; pass a directory made by weightlab run, prove, compare or sweep"
    )


def _read(path: Path, spec) -> dict:
    check_version(read_json(path, Record(schemas.VERSIONED)), path.parent)
    return read_json(path, spec, digests=read_digests(path.parent))


def _plain(name: str) -> bool:
    """A plain directory name: not empty, not hidden, no separator (so it cannot lead out of its parent)."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name and os.sep not in name


def member_run(directory: Path, run_id: str, named_in: Path | None = None) -> Run:
    """The run ``run_id`` inside ``directory/runs``; refused if the name would lead anywhere else."""
    named_in = named_in or Path(directory)
    if not _plain(run_id):
        raise RunDirError(
            f"{named_in} names the run {run_id[:60]!r}, which is not a directory name; rerun the experiment"
        )
    return read_run(directory / "runs" / run_id)


def read_proof(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "proof.json"
    result = _read(path, experiment_schemas.PROOF_FILE)
    with reading(path):
        if 1.0 not in result["line"]["alphas"]:
            raise SchemaError("line.alphas lacks α = 1 (the trained weights)")
    for names in result["runs"]:  # the runs it names must lie inside its runs/
        for run_id in names.values():
            if not _plain(run_id):
                raise RunDirError(
                    f"{path} names the run {run_id[:60]!r}, which is not a directory name; rerun the proof"
                )
    return result


def read_proof_landscape(directory: str | os.PathLike, proof: dict) -> dict[str, np.ndarray] | None:
    """The proof's landscape.npz (its two paths in one plane), checked; None for a proof that has none."""
    entry = proof.get("landscape")
    if not entry:
        return None
    directory = Path(directory)
    name = entry["file"]
    if "/" in name or name.startswith("."):
        raise RunDirError(f"{directory / 'proof.json'} names the landscape file {name[:60]!r}; rerun the proof")
    return read_npz(directory / name, experiment_schemas.PROOF_LANDSCAPE_FILE, digests=read_digests(directory))


def read_comparison(directory: str | os.PathLike) -> tuple[dict, dict[int, list[Run]]]:
    """(comparison.json, each variant's runs by its index)."""
    directory = Path(directory)
    path = directory / "comparison.json"
    result = _read(path, experiment_schemas.COMPARISON_FILE)
    with reading(path):
        for index, (variant, value) in enumerate(zip(result["variants"], result["values"])):
            if variant["value"] != value:
                raise SchemaError(f"variants[{index}] is of {variant['value']!r}, not values[{index}] {value!r}")
    runs = {
        index: [member_run(directory, run_id, path) for run_id in variant["runs"]]
        for index, variant in enumerate(result["variants"])
    }
    with reading(path):
        for index, stored in runs.items():
            if [run.config.seed for run in stored] != result["seeds"]:
                raise SchemaError(
                    f"variants[{index}]'s runs are of seeds {[run.config.seed for run in stored]}, not {result['seeds']}"
                )
    return result, runs


def read_sweep(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "sweep.json"
    result = _read(path, experiment_schemas.SWEEP_FILE)
    with reading(path):
        axes = set(result["grid"])
        points = math.prod(len(values) for values in result["grid"].values())
        if len(result["points"]) != points:
            raise SchemaError(f"holds {len(result['points'])} grid points, not the grid's {points}")
        for where, point in [
            *(("cells", c["point"]) for c in result["cells"]),
            *(("points", p["point"]) for p in result["points"]),
        ]:
            if set(point) != axes:
                raise SchemaError(f"{where} holds a point over {sorted(point)}, not the grid's axes {sorted(axes)}")
        for state, count in result["counts"].items():
            if count != sum(cell["status"] == state for cell in result["cells"]):
                raise SchemaError(f"counts.{state} is {count}, not the number of {state} cells")
        for point in result["points"]:
            if point["finished"] and "test_accuracy_after" not in point:
                raise SchemaError("a point with finished seeds lacks its statistics")
    return result


def sweep_run(directory: Path, cell: str) -> Run:
    return member_run(Path(directory), cell, Path(directory) / "sweep.json")


def read_grid_file(path: str | os.PathLike) -> dict:
    """A sweep's TOML grid file: ``seeds``, ``[config]`` base values, ``[grid]`` lists; ConfigError if unusable."""
    path = Path(path)
    try:
        spec = tomllib.loads(safeio.read_bytes(path, schemas.JSON_LIMIT).decode("utf-8"))
        return experiment_schemas.GRID_FILE.check(spec, "", Dims())
    except (OSError, safeio.UnsafeInput, UnicodeDecodeError, tomllib.TOMLDecodeError, SchemaError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(
            f"cannot use --grid-file {path}: {detail[:160]}; fix the file (see the README's sweep section)"
        ) from error


def read_landscape(directory: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The landscape.npz of a run, proof or comparison directory, checked by its kind's schema; None if it has none."""
    directory = Path(directory)
    kind = read_directory(directory)
    if kind == "run":
        return read_run(directory).landscape()
    if kind == "proof":
        return read_proof_landscape(directory, read_proof(directory))
    path = directory / "landscape.npz"
    if not path.is_file():
        return None
    return read_npz(path, schemas.LANDSCAPE_FILE, digests=read_digests(directory))
