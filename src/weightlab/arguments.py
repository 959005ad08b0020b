"""The command line's grammar: every command, its flags and their defaults (`build_parser`), and
the `RunConfig` parsed flags describe (`run_config`). `cli` runs what is parsed.
"""

from __future__ import annotations

import argparse
import dataclasses

from weightlab.config import BACKENDS, OPTIMIZERS, TRAINING_PATHS, RunConfig, parse_hidden

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
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


def run_config(args, leave_out: tuple[str, ...] = ()) -> RunConfig:
    """The `RunConfig` that parsed arguments describe (its fields named as the flags' destinations), less ``leave_out``."""
    fields = {field.name for field in dataclasses.fields(RunConfig)} - set(leave_out)
    return RunConfig(**{key: value for key, value in vars(args).items() if key in fields})


def build_parser() -> argparse.ArgumentParser:
    defaults = RunConfig()
    parser = Parser(prog="weightlab", description="See, and prove, how training changes a neural network's weights.")
    parser.add_argument("--version", action="version", version=f"weightlab {__import__('weightlab').__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

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
    export_commands = export.add_subparsers(dest="export_format", required=True, parser_class=Parser, metavar="FORMAT")
    tensorboard = export_commands.add_parser(
        "tensorboard", help="TensorBoard event files: scalars, and weight histograms per snapshot"
    )
    _common(tensorboard)
    tensorboard.add_argument("directory", help="a run directory")
    tensorboard.add_argument("--out", default=None, help="where the event files go (default: RUN_DIR/tensorboard)")

    data = commands.add_parser("data", help="fetch, verify and describe datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser, metavar="ACTION")
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
