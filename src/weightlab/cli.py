"""The command line: parses flags, calls the library, prints. No experiment logic lives here.

Every error a user can cause ends with one line on stderr and exit code 2 (``--debug``
shows the traceback instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from weightlab.config import BACKENDS, OPTIMIZERS, TRAINING_PATHS, RunConfig, hidden_text, parse_hidden
from weightlab.errors import WeightlabError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse prints its whole usage block; one line saying what to fix reads better.
        self.exit(EXIT_USAGE, f"weightlab: error: {message} (see `{self.prog} --help`)\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the machine-readable result on stdout, nothing else")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _run_flags(parser: argparse.ArgumentParser, defaults: RunConfig, several_hidden: bool = False) -> None:
    """The flags of a RunConfig, shared by every command that trains."""
    _common(parser)
    if several_hidden:
        parser.add_argument(
            "--hidden",
            type=_hidden,
            nargs="+",
            default=None,
            metavar="N[xN…]",
            help="hidden widths to compare, 128x64 for two layers (shorthand for --compare hidden=N1,N2; default 16 64)",
        )
    else:
        parser.add_argument(
            "--hidden",
            type=_hidden,
            default=defaults.hidden,
            metavar="N[xN…]",
            help="hidden units; 128x64 gives two hidden layers (default %(default)s)",
        )
    parser.add_argument(
        "--model",
        default=defaults.model,
        metavar="mlp|cnn|PATH.keras",
        help="the tutorial's MLP, a small convnet, or a saved Keras model trained from its own weights (default %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="batch size (default %(default)s)")
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="learning rate (default %(default)s)"
    )
    parser.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=defaults.optimizer, help="optimizer (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed for initialisation and data order (default %(default)s)"
    )
    parser.add_argument(
        "--dataset",
        default=defaults.dataset,
        metavar="NAME|PATH.npz",
        help="mnist, fashion_mnist, synthetic, or an .npz with x_train, y_train, x_test, y_test (default %(default)s)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None, help="Keras backend (default: $KERAS_BACKEND, else jax)"
    )
    parser.add_argument(
        "--training-path",
        choices=TRAINING_PATHS,
        default=defaults.training_path,
        help="auto: the fused JAX loop on jax (same weights as model.fit, faster), else model.fit (default %(default)s)",
    )
    parser.add_argument(
        "--snapshots",
        type=int,
        default=defaults.snapshots,
        metavar="N",
        help="snapshots of the weights to keep: step 0, each epoch's end and log-spaced steps, dense early (default %(default)s)",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=defaults.snapshot_every,
        metavar="N",
        help="also keep the weights every N steps, on top of --snapshots (default: none)",
    )
    parser.add_argument("--shuffle-labels", action="store_true", help="a control: train on the labels permuted once")
    parser.add_argument(
        "--no-step-stats",
        dest="step_stats",
        action="store_false",
        help="skip the per-step weight norms (snapshots are still kept); for measuring their cost",
    )
    parser.add_argument(
        "--step-stats-every",
        type=int,
        default=defaults.step_stats_every,
        metavar="N",
        help="take the weight norms every N steps, exactly, and at each epoch's end (default %(default)s; 1: every step)",
    )
    parser.add_argument("--data-dir", default=None, help="a directory holding the dataset's .npz or IDX files")


def _hidden(text: str):
    """argparse's type for --hidden: a ConfigError becomes argparse's one-line usage error."""
    from weightlab.errors import ConfigError

    try:
        return parse_hidden(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _config(args, leave_out: tuple[str, ...] = ()) -> RunConfig:
    fields = {field.name for field in dataclasses.fields(RunConfig)} - set(leave_out)
    return RunConfig(**{key: value for key, value in vars(args).items() if key in fields})


def build_parser() -> argparse.ArgumentParser:
    defaults = RunConfig()
    parser = _Parser(prog="weightlab", description="See, and prove, how training changes a neural network's weights.")
    parser.add_argument("--version", action="version", version=f"weightlab {__import__('weightlab').__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    run = commands.add_parser("run", help="the tutorial's experiment: train, track every weight, explain what changed")
    _run_flags(run, defaults)
    run.add_argument("--out", default="runs", help="where run directories go (default %(default)s)")
    run.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue an interrupted run from its last epoch: its hidden runs/.incomplete-<id> directory (its own config is used)",
    )

    prove = commands.add_parser("prove", help="the experiment against controls, over seeds, with a verdict")
    _run_flags(prove, defaults)
    prove.add_argument("--seeds", type=int, default=3, help="how many seeds, from --seed on (default %(default)s)")
    prove.add_argument("--out", default="proofs", help="where proof directories go (default %(default)s)")

    compare = commands.add_parser("compare", help="variants (e.g. --hidden 16 64) over the same seeds, side by side")
    _run_flags(compare, defaults, several_hidden=True)
    compare.add_argument(
        "--compare",
        default=None,
        metavar="FIELD=V1,V2",
        help="any config field as the compared axis, e.g. learning_rate=1e-3,3e-3",
    )
    compare.add_argument("--seeds", type=int, default=3, help="how many seeds, from --seed on (default %(default)s)")
    compare.add_argument("--out", default="comparisons", help="where comparison directories go (default %(default)s)")

    sweep = commands.add_parser(
        "sweep", help="a grid of configs × seeds in parallel, here (--workers) or on Ray (--executor ray)"
    )
    _common(sweep)
    for flag, text in (
        ("--hidden", "hidden units (128x64: two layers)"),
        ("--model", "model: mlp, cnn or PATH.keras"),
        ("--epochs", "epochs"),
        ("--batch-size", "batch size"),
        ("--learning-rate", "learning rate"),
        ("--optimizer", "optimizer"),
        ("--dataset", "dataset"),
        ("--snapshots", "snapshots kept per run"),
    ):
        sweep.add_argument(
            flag, default=None, metavar="V[,V…]", help=f"{text}: one value, or a comma-separated list to sweep"
        )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="any config field as a grid axis (repeatable)",
    )
    sweep.add_argument(
        "--grid-file", default=None, metavar="FILE.toml", help="seeds, [config] base values and [grid] lists in TOML"
    )
    sweep.add_argument(
        "--seed", type=int, default=None, help=f"the first seed (default: the grid file's, else {defaults.seed})"
    )
    sweep.add_argument("--seeds", type=int, default=None, help="seeds per grid point (default 2)")
    sweep.add_argument(
        "--backend", choices=BACKENDS, default=None, help="Keras backend (default: $KERAS_BACKEND, else jax)"
    )
    sweep.add_argument(
        "--training-path",
        choices=TRAINING_PATHS,
        default=None,
        help=f"as for run (default: the grid file's, else {defaults.training_path})",
    )
    sweep.add_argument("--data-dir", default=None, help="a directory holding the dataset's .npz or IDX files")
    sweep.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    sweep.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="run cells here, or as Ray tasks (default %(default)s)",
    )
    sweep.add_argument("--address", default=None, help="the Ray cluster to join (default: start a local one)")
    sweep.add_argument("--out", default="sweeps", help="where sweep directories go (default %(default)s)")
    sweep.add_argument(
        "--name",
        default=None,
        help="the sweep's directory name (default: derived from the grid, so a rerun resumes it)",
    )

    report = commands.add_parser("report", help="(re)render report.html of a run, proof, comparison or sweep directory")
    _common(report)
    report.add_argument("directory", help="a directory made by weightlab run, prove, compare or sweep")

    export = commands.add_parser("export", help="export a run for other tools")
    export_commands = export.add_subparsers(dest="export_format", required=True, parser_class=_Parser, metavar="FORMAT")
    tensorboard = export_commands.add_parser(
        "tensorboard", help="TensorBoard event files: scalars, and weight histograms per snapshot"
    )
    _common(tensorboard)
    tensorboard.add_argument("directory", help="a run directory")
    tensorboard.add_argument("--out", default=None, help="where the event files go (default: RUN_DIR/tensorboard)")

    data = commands.add_parser("data", help="fetch, verify and describe datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser, metavar="ACTION")
    for name, text in (
        ("fetch", "get a dataset from the first source that has it, verify it and cache it"),
        ("verify", "check the cached copy against the carried SHA-256 digests"),
        ("info", "what weightlab knows about a dataset and whether it is cached"),
    ):
        action = data_commands.add_parser(name, help=text)
        _common(action)
        action.add_argument(
            "dataset", nargs="?", default=None if name == "info" else "mnist", help="dataset name (default: mnist)"
        )
        if name != "info":
            action.add_argument("--data-dir", default=None, help="a directory holding the dataset's .npz or IDX files")
    return parser


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

    config = _config(args)
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
    from weightlab.report import terminal
    from weightlab.store import dumps

    with terminal.stage_progress(show=not args.json) as hook:
        proof = prove(
            _config(args), seeds=args.seeds, out=args.out, data_dir=args.data_dir, progress=hook, stop=args.stop
        )
    if args.json:
        print(dumps(proof.result))
    else:
        terminal.print_proof(proof.result, proof.path)
    return 0


def _compare(args) -> int:
    from weightlab.errors import ConfigError
    from weightlab.experiments.compare import compare, parse_axis
    from weightlab.report import terminal
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
            _config(args, leave_out=("hidden",)),
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
        terminal.print_comparison(comparison.result, comparison.path)
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
    from weightlab.report import terminal
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
        terminal.print_sweep(result.result, result.path)
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
