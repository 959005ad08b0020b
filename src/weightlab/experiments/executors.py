"""Where a sweep's cells run: here, in worker processes that die with the sweep, or as Ray tasks.

Every cell runs `run_cell`, which trains it under its lock (`cells.cell_lock`) and returns a
small record, never raising for a failed cell. Either executor stops when Ctrl-C or SIGTERM
asks (its `signals.StopFlag` is checked twice a second): local workers are terminated, Ray
tasks cancelled; their cells stay hidden and are rerun by the next sweep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from weightlab.config import RunConfig
from weightlab.errors import ConfigError, WeightlabError
from weightlab.experiments.cells import cell_lock, check_ray_address
from weightlab.signals import die_with_parent

if TYPE_CHECKING:
    from weightlab.experiments.sweep import Cell


def run_cell(config_values: dict, runs_dir: str, cell_id: str, data_dir: str | None, progress=None) -> dict:
    """Train one cell into ``runs_dir/cell_id``; returns a small record (never raises for a failed cell).

    The cell is trained only under its lock: a cell another sweep is training is left to it ("pending").
    """
    with cell_lock(Path(runs_dir), cell_id) as held:
        if not held:
            return {"cell": cell_id, "status": "pending", "error": None, "seconds": 0.0}
        if (Path(runs_dir) / cell_id / "summary.json").is_file():  # another sweep finished it meanwhile
            return {"cell": cell_id, "status": "complete", "seconds": 0.0}
        shutil.rmtree(Path(runs_dir) / f".incomplete-{cell_id}", ignore_errors=True)  # cut off earlier: start again
        return _train_cell(config_values, runs_dir, cell_id, data_dir, progress)


def _train_cell(config_values: dict, runs_dir: str, cell_id: str, data_dir: str | None, progress=None) -> dict:
    from weightlab.experiments.run import run

    start = time.perf_counter()
    try:
        config = RunConfig.from_dict(config_values)
        run(config, out=runs_dir, data_dir=data_dir, report=False, run_id=cell_id, progress=progress)
        return {"cell": cell_id, "status": "complete", "seconds": time.perf_counter() - start}
    except WeightlabError as error:
        return {"cell": cell_id, "status": "failed", "error": str(error), "seconds": time.perf_counter() - start}
    except Exception as error:  # a bug or a crash in one cell must not stop the others
        return {
            "cell": cell_id,
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "seconds": time.perf_counter() - start,
        }


def _limit_threads(threads: int) -> None:
    """Runs first in each worker process: it dies with the sweep, and shares the cores instead of grabbing all of them."""
    die_with_parent()
    threads = str(max(1, threads))
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ[name] = threads
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen={'true' if threads != '1' else 'false'} "
        f"intra_op_parallelism_threads={threads}"
    ).strip()


def execute_local(pending: list[Cell], runs_dir: Path, data_dir, workers: int, progress, stop=None) -> list[dict]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited Keras backend or threads
    records: list[dict] = []
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_limit_threads, initargs=(threads,))
    try:
        futures = {
            pool.submit(run_cell, cell.config.to_dict(), str(runs_dir), cell.cell_id, data_dir): cell
            for cell in pending
        }
        waiting = set(futures)
        while waiting:
            # Woken twice a second to see whether Ctrl-C or SIGTERM asked the sweep to stop.
            finished, waiting = wait(waiting, timeout=0.5, return_when=FIRST_COMPLETED)
            if stop is not None:
                stop.check()
            for future in finished:
                cell = futures[future]
                try:
                    records.append(future.result())
                except Exception as error:  # the worker process itself died (killed, out of memory)
                    records.append({"cell": cell.cell_id, "status": "failed", "error": f"worker died: {error}"})
                if progress:
                    progress(len(records), len(pending), cell.cell_id)
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)
    return records


def _stop_workers(pool) -> None:
    """Cancel what has not started and end the workers now (their cells stay hidden and are rerun next time)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.join(timeout=5)


def execute_ray(pending: list[Cell], runs_dir: Path, data_dir, address: str | None, progress, stop=None) -> list[dict]:
    try:
        import ray
    except ImportError as error:
        raise ConfigError("--executor ray needs Ray: pip install 'weightlab[ray]'") from error
    started_here = not ray.is_initialized()
    if started_here:
        check_ray_address(address)
        # Workers need the same backend choice; the run directories must be on storage every node sees.
        try:
            ray.init(
                address=address,
                log_to_driver=False,
                include_dashboard=False,
                logging_level=logging.ERROR,
                runtime_env={
                    "env_vars": {
                        key: os.environ[key] for key in ("KERAS_BACKEND", "WEIGHTLAB_HOME") if key in os.environ
                    }
                },
            )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            first = (str(error).splitlines() or [type(error).__name__])[0][:160]
            raise ConfigError(
                f"could not join Ray at {address or 'a new local cluster'} ({first}); check --address"
            ) from error
    try:
        remote = ray.remote(num_cpus=1)(run_cell)
        references = {
            remote.remote(cell.config.to_dict(), str(runs_dir), cell.cell_id, data_dir): cell for cell in pending
        }
        records, waiting = [], list(references)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=0.5)
            if stop is not None:
                try:
                    stop.check()
                except KeyboardInterrupt:
                    for reference in waiting:  # the sweep stops: so do its tasks
                        with contextlib.suppress(Exception):
                            ray.cancel(reference, force=True)
                    raise
            if not ready:
                continue
            cell = references[ready[0]]
            try:
                records.append(ray.get(ready[0]))
            except Exception as error:
                records.append(
                    {
                        "cell": cell.cell_id,
                        "status": "failed",
                        "error": f"ray task failed: {str(error).splitlines()[0]}",
                    }
                )
            if progress:
                progress(len(records), len(pending), cell.cell_id)
        return records
    finally:
        if started_here:
            ray.shutdown()
