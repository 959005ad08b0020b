"""The command line: parses flags, calls the library, prints. No experiment logic lives here.

Every error a user can cause ends with one line on stderr and exit code 2 (``--debug``
shows the traceback instead).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from weightlab.arguments import EXIT_USAGE, build_parser, run_config
from weightlab.config import RunConfig, hidden_text
from weightlab.errors import WeightlabError

EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from weightlab.signals import stop_on_signals

    try:
        # Ctrl-C and SIGTERM set a flag that the training loops check at safe points (see `signals`).
        with stop_on_signals(install=args.command in ("run", "prove", "compare", "sweep")) as args.stop:
            return _dispatch(args)
    except WeightlabError as error:
        if args.debug:
            raise
        from weightlab.report.terminal import print_error

        print_error(str(error))
        return EXIT_USAGE
    except OSError as error:  # the machine's, not weightlab's: a full disk, a permission, a vanished file
        if args.debug:
            raise
        from weightlab.report.terminal import print_error

        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        print_error(f"{error.strerror or error}{where}; fix that and rerun (--debug shows where it happened)")
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"weightlab: {interrupted_message(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry() -> None:
    """The `weightlab` command: `main`, then the process ends without the interpreter's teardown.

    Everything a command writes is closed before `main` returns. Python's finalisation would
    then free JAX's and XLA's objects one by one: ≈0.45 s of a 3.5 s `weightlab run`
    (measured). The atexit handlers (logging's, Ray's shutdown) still run first.
    """
    import atexit

    code = main()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (`| head`): nothing more can reach it
        pass
    os._exit(code)


def interrupted_message(args) -> str:
    """What an interruption of this command kept, and how to go on: each command says its own."""
    command = args.command
    if command == "run":
        return (
            f"run interrupted; a run that completed an epoch is kept hidden as {args.out}/.incomplete-<id>: "
            f"continue it with `weightlab run --resume {args.out}/.incomplete-<id>`"
        )
    if command == "sweep":
        return "sweep interrupted; finished cells are kept: run the same `weightlab sweep` command again to run only the rest"
    if command in ("prove", "compare"):
        return f"{command} interrupted; nothing of it was kept (it is written only when complete): run `weightlab {command}` again"
    return f"{command} interrupted; nothing was changed"


def _dispatch(args) -> int:
    return {
        "run": _run,
        "prove": _prove,
        "compare": _compare,
        "sweep": _sweep,
        "report": _report,
        "export": _export,
        "data": _data,
    }[args.command](args)


def _run(args) -> int:
    from weightlab.experiments.run import run
    from weightlab.report import terminal
    from weightlab.store import dumps

    config = run_config(args)
    if args.resume and (Path(args.resume) / "config.json").is_file():
        # the interrupted run's own config, not the flags', says how many epochs it has
        from weightlab.store import read_config

        config = read_config(args.resume)
    with terminal.training_progress(config.epochs, show_bar=not args.json, show_epochs=not args.json) as hook:
        result = run(config, out=args.out, data_dir=args.data_dir, progress=args.stop.guard(hook), resume=args.resume)
    if args.json:
        print(dumps(result.summary))
    else:
        terminal.print_run(result.summary, result.path)
    if result.summary["status"] == "diverged":
        d = result.summary["diverged"]
        terminal.print_error(
            f"training diverged at step {d['step']} (loss {d['loss']}); the run up to step {d['kept_steps']} is saved in {result.path}: "
            "pass a smaller --learning-rate"
        )
        return 1
    return 0


def _prove(args) -> int:
    from weightlab.experiments.prove import prove
    from weightlab.report import terminal, terminal_experiments
    from weightlab.store import dumps

    with terminal.stage_progress(show=not args.json) as hook:
        proof = prove(
            run_config(args), seeds=args.seeds, out=args.out, data_dir=args.data_dir, progress=hook, stop=args.stop
        )
    if args.json:
        print(dumps(proof.result))
    else:
        terminal_experiments.print_proof(proof.result, proof.path)
    return 0


def _compare(args) -> int:
    from weightlab.errors import ConfigError
    from weightlab.experiments.compare import compare, parse_axis
    from weightlab.report import terminal, terminal_experiments
    from weightlab.store import dumps

    if args.compare is not None and args.hidden:
        raise ConfigError("pass either --hidden N1 N2 or --compare FIELD=V1,V2, not both")
    axis, values = parse_axis(args.compare) if args.compare is not None else ("hidden", args.hidden or [16, 64])
    if axis == "hidden" and len({hidden_text(value) for value in values}) != len(values):
        raise ConfigError(f"--hidden lists a width twice: {' '.join(map(hidden_text, values))}")
    if len(values) < 2:
        raise ConfigError(f"compare needs at least two values of {axis}, got {values}")
    with terminal.stage_progress(show=not args.json) as hook:
        comparison = compare(
            run_config(args, leave_out=("hidden",)),
            axis=axis,
            values=values,
            seeds=args.seeds,
            out=args.out,
            data_dir=args.data_dir,
            progress=hook,
            stop=args.stop,
        )
    if args.json:
        print(dumps(comparison.result))
    else:
        terminal_experiments.print_comparison(comparison.result, comparison.path)
    return 0


def _sweep_spec(args) -> tuple[RunConfig, dict, int]:
    """The base config, the grid and the seed count, from a TOML file and the flags (flags win)."""
    from weightlab.errors import ConfigError
    from weightlab.experiments.compare import parse_axis
    from weightlab.store import read_grid_file

    base_values, grid, seeds = {}, {}, 2
    if args.grid_file:
        spec = read_grid_file(args.grid_file)
        seeds = spec.get("seeds", seeds)
        base_values.update(spec.get("config", {}))
        for field, values in spec.get("grid", {}).items():
            grid[field] = (
                parse_axis(f"{field}={','.join(map(str, values))}")[1] if isinstance(values, list) else [values]
            )
    for field in ("hidden", "model", "epochs", "batch_size", "learning_rate", "optimizer", "dataset", "snapshots"):
        text = getattr(args, field)
        if text is not None:
            name, values = parse_axis(f"{field}={text}")
            if len(values) == 1:
                base_values[name] = values[0]
                grid.pop(name, None)
            else:
                grid[name] = values
    for spec in args.grid:
        name, values = parse_axis(spec)
        grid[name] = values
    # A flag given wins over the grid file; a flag left out leaves the file's value (or the default).
    for field in ("seed", "backend", "training_path"):
        if getattr(args, field) is not None:
            base_values[field] = getattr(args, field)
    if not grid:
        raise ConfigError("the sweep has no grid: give a flag a list (--hidden 16,64) or pass --grid FIELD=V1,V2")
    return RunConfig.from_dict(base_values), grid, args.seeds if args.seeds is not None else seeds


def _sweep(args) -> int:
    from weightlab.experiments.sweep import sweep
    from weightlab.report import terminal, terminal_experiments
    from weightlab.store import dumps

    base, grid, seeds = _sweep_spec(args)
    with terminal.stage_progress(show=not args.json) as hook:
        result = sweep(
            base,
            grid=grid,
            seeds=seeds,
            out=args.out,
            name=args.name,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            data_dir=args.data_dir,
            progress=hook,
            stop=args.stop,
        )
    if args.json:
        print(dumps(result.result))
    else:
        terminal_experiments.print_sweep(result.result, result.path)
    return 0 if result.result["counts"]["failed"] == 0 else 1


def _report(args) -> int:
    from weightlab.report.html import write_report

    path = write_report(args.directory)
    print(json.dumps({"report": str(path)}) if args.json else f"Report written to {path}")
    return 0


def _export(args) -> int:
    from weightlab.report.tensorboard import export
    from weightlab.store import read_run

    stored = read_run(args.directory)
    logdir = export(stored, args.out or stored.path / "tensorboard")
    print(
        json.dumps({"logdir": str(logdir)})
        if args.json
        else f"TensorBoard events written to {logdir}; view with: tensorboard --logdir {logdir}"
    )
    return 0


def _data(args) -> int:
    from weightlab import data
    from weightlab.report import terminal
    from weightlab.store import dumps

    if args.data_command == "info":
        infos = [_dataset_info(name) for name in ([args.dataset] if args.dataset else data.DATASETS)]
        if args.json:
            print(dumps(infos if not args.dataset else infos[0]))
        else:
            for info in infos:
                if not info["verified_by_sha256"]:
                    state = "generated on demand, never cached"
                else:
                    state = (
                        f"cached at {info['cache']} ({info['cache_bytes'] / 1e6:.1f} MB)"
                        if info["cached"]
                        else "not cached"
                    )
                terminal.console.print(
                    f"[bold]{info['name']}[/]: {info['description']}; sources: {', '.join(info['sources'])}; {state}"
                )
        return 0
    dataset = data.load(args.dataset, data_dir=args.data_dir, use_remote=args.data_command == "fetch")
    if args.json:
        print(
            dumps(
                {
                    "name": dataset.name,
                    "source": dataset.source,
                    "seconds": dataset.seconds,
                    "verified": dataset.verified,
                    "tried": [{"source": source, "reason": reason} for source, reason in dataset.tried],
                    "cache": str(data.cache_path(dataset.name)),
                    "train": len(dataset.x_train),
                    "test": len(dataset.x_test),
                }
            )
        )
    else:
        terminal.print_dataset(dataset, data.cache_path(dataset.name))
    return 0


def _dataset_info(name: str) -> dict:
    from weightlab import data
    from weightlab.errors import DataError

    if name not in data.DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(data.DATASETS)}")
    spec = data.DATASETS[name]
    cache = data.cache_path(name)
    return {
        "name": name,
        "description": spec.description,
        "sources": ["cache", "--data-dir", *spec.sources] if spec.verified else list(spec.sources),
        "verified_by_sha256": spec.verified,
        "cached": cache.is_file(),
        "cache": str(cache),
        "cache_bytes": cache.stat().st_size if cache.is_file() else 0,
    }


if __name__ == "__main__":
    entry()
