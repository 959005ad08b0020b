"""`weightlab sweep`: a grid of configs × seeds, run in parallel here or on a Ray cluster.

Every cell (one grid point at one seed) has a name derived from its config, and its run
directory is written atomically under that name: a cell is finished exactly when its
directory exists. Rerunning the same sweep therefore skips finished cells and runs the rest
(a cell cut off halfway left only a temporary directory, which is cleared and rerun). A cell
that fails is recorded with its error; the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import time
from pathlib import Path

from weightlab.analysis import aggregate
from weightlab.config import MAX_SEEDS, RunConfig, hidden_text, require_int
from weightlab.errors import ConfigError, RunDirError
from weightlab.experiments.executors import execute_local, execute_ray, run_cell
from weightlab.fileio import atomic_write
from weightlab.store import FORMAT_VERSION, dumps

EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class Cell:
    cell_id: str
    config: RunConfig
    point: dict  # the grid values of this cell (without the seed)


@dataclasses.dataclass(frozen=True, eq=False)
class Sweep:
    path: Path
    result: dict  # the contents of sweep.json


def _check_before_any_cell(cells: list[Cell], executor: str) -> None:
    """What would fail every cell alike, or some cells after others trained, refused once, before anything is written:
    devices that cannot start (on this machine's executor) and the cells' saved models' settings."""
    from weightlab.backend import devices_or_error, keras_for
    from weightlab.config import is_keras_file
    from weightlab.models import saved

    files = {
        (c.config.model, c.config.optimizer, c.config.learning_rate): c.config
        for c in cells
        if is_keras_file(c.config.model)
    }
    backend = cells[0].config.backend
    if executor == "local" and backend == "jax":
        devices_or_error()
    if files:
        keras = keras_for(backend)
        for config in files.values():
            saved.check_settings(config, keras)


def cells_of(base: RunConfig, grid: dict[str, list], seeds: int) -> list[Cell]:
    """Every grid point × seed, in a fixed order, each with a name that says what it is."""
    require_int("seeds", seeds, 1, "--seeds", maximum=MAX_SEEDS)
    fields = list(grid)
    cells = []
    for values in itertools.product(*(grid[field] for field in fields)):
        point = dict(zip(fields, values))
        for seed in range(base.seed, base.seed + seeds):
            config = dataclasses.replace(base, **point, seed=seed)  # validates every value
            name = "_".join(
                f"{field}-{hidden_text(value) if field == 'hidden' else value}"
                for field, value in {**point, "seed": seed}.items()
            )
            cells.append(Cell(cell_id=name.replace("/", "-"), config=config, point=point))
    return cells


def check_name(name: str) -> None:
    """A sweep's --name is one plain directory name inside --out: never a path that leaves it, never hidden."""
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(
            f"--name {name!r} is not a plain directory name; pass a name without '/' that does not start with '.'"
        )


def sweep_name(base: RunConfig, grid: dict[str, list], seeds: int) -> str:
    """The same sweep, asked for again, finds the same directory."""
    spec = json.dumps({"base": base.to_dict(), "grid": grid, "seeds": seeds}, sort_keys=True, default=str)
    return f"sweep-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


# -- the sweep --------------------------------------------------------------------------------


def sweep(
    config: RunConfig | None = None,
    *,
    grid: dict[str, list] | None = None,
    seeds: int = 2,
    out: str | Path = "sweeps",
    name: str | None = None,
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
    data_dir=None,
    progress=None,
    report: bool = True,
    stop=None,
    **overrides,
) -> Sweep:
    """Run every cell of ``grid`` × ``seeds`` not finished yet, then aggregate all of them into sweep.json."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    require_int("workers", workers, 1, "--workers")
    if name is not None:
        check_name(name)
    base = dataclasses.replace(config or RunConfig(), **overrides).resolved()
    grid = {field: list(values) for field, values in (grid or {"hidden": [16, 64]}).items()}
    for field in grid:
        if field in ("seed", "backend"):
            raise ConfigError(
                f"{field} cannot be a grid axis: use --seeds for repetitions and --backend for the backend"
            )
    cells = cells_of(base, grid, seeds)

    _check_before_any_cell(cells, executor)
    directory = Path(out) / (name or sweep_name(base, grid, seeds))
    runs_dir = directory / "runs"
    if Path(out).exists() and not Path(out).is_dir():
        raise RunDirError(f"--out {out} is a file; pass a directory (it is created if missing)")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(
            f"cannot create the sweep directory {directory} ({error.strerror}); pass a writable --out"
        ) from error
    previous = _read_previous(directory)
    pending = [cell for cell in cells if not (runs_dir / cell.cell_id / "summary.json").is_file()]

    start = time.perf_counter()
    if pending:
        if executor == "ray":
            records = execute_ray(pending, runs_dir, data_dir, address, progress, stop)
        elif workers == 1:
            records = []
            check = stop.guard() if stop is not None else None  # checked inside each cell's training too
            for cell in pending:
                if check is not None:
                    check()
                records.append(run_cell(cell.config.to_dict(), str(runs_dir), cell.cell_id, data_dir, check))
        else:
            records = execute_local(pending, runs_dir, data_dir, min(workers, len(pending)), progress, stop)
    else:
        records = []
    result = summarise(base, grid, seeds, cells, runs_dir, {r["cell"]: r for r in records}, previous)
    result["last_invocation"] = {
        "executor": executor,
        "workers": workers if executor == "local" else None,
        "ran": len(pending),
        "skipped": len(cells) - len(pending),
        "seconds": time.perf_counter() - start,
    }
    _write_json(directory / "sweep.json", result)
    if report:
        from weightlab.report.html import write_report

        write_report(directory)
    return Sweep(path=directory, result=json.loads(dumps(result)))


def _read_previous(directory: Path) -> dict:
    """The last invocation's record of each cell (its failures); a missing or damaged sweep.json counts as none."""
    from weightlab.store import read_sweep

    if not (directory / "sweep.json").is_file():
        return {}
    try:
        return {cell["cell"]: cell for cell in read_sweep(directory)["cells"]}
    except RunDirError:
        return {}


def _write_json(path: Path, value) -> None:
    with atomic_write(path) as handle:
        handle.write(dumps(value) + "\n")


def summarise(
    base: RunConfig, grid: dict, seeds: int, cells: list[Cell], runs_dir: Path, records: dict, previous: dict
) -> dict:
    """sweep.json: every cell's state, and statistics per grid point over its finished seeds."""
    from weightlab.store import read_run

    rows, finished = [], {}
    for cell in cells:
        summary_file = runs_dir / cell.cell_id / "summary.json"
        row = {"cell": cell.cell_id, "point": cell.point, "seed": cell.config.seed}
        if summary_file.is_file():
            summary = read_run(runs_dir / cell.cell_id).summary
            finished[cell.cell_id] = summary
            row.update(
                status="complete",
                test_accuracy_after=summary["test_accuracy_after"],
                test_loss_after=summary["test_loss_after"],
                train_seconds=summary["train_seconds"],
            )
        else:
            failure = records.get(cell.cell_id) or previous.get(cell.cell_id) or {}
            row.update(status="failed" if failure.get("status") == "failed" else "pending", error=failure.get("error"))
        rows.append(row)
    points = []
    for values in itertools.product(*(grid[field] for field in grid)):
        point = dict(zip(grid, values))
        summaries = [finished[c.cell_id] for c in cells if c.point == point and c.cell_id in finished]
        entry = {"point": point, "finished": len(summaries), "of": seeds}
        if summaries:
            entry.update(aggregate.variant_summary(summaries))
        points.append(entry)
    return {
        "format_version": FORMAT_VERSION,
        "config": base.to_dict(),
        "grid": grid,
        "seeds": seeds,
        "cells": rows,
        "points": points,
        "counts": {state: sum(r["status"] == state for r in rows) for state in ("complete", "failed", "pending")},
    }
