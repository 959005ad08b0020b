"""The experiment's configuration: one frozen dataclass whose defaults are the tutorial's.

The tutorial trains 784 -> Dense(64, relu) -> Dense(10, softmax) with Adam(1e-3) on
sparse categorical cross-entropy, batch 32, 5 epochs, validation_split 0.1, pixels / 255.
``RunConfig()`` is exactly that; every other run is a ``dataclasses.replace`` of it.

``hidden`` is one width (64) or several, for a deeper network ((128, 64)); on the command
line several widths are written ``128x64``, the same on every command: a comma or a space
separates variants (``--hidden 16,128x64`` in a sweep, ``--hidden 16 128x64`` in a comparison).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from weightlab.errors import ConfigError

BACKENDS = ("jax", "tensorflow", "torch")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "nadam")
DEFAULT_BACKEND = "jax"
# "auto": the fused JAX loop where it applies (bit-identical to model.fit, faster), else model.fit.
TRAINING_PATHS = ("auto", "fused-jax", "keras.fit")
# Built-in architectures; any other model is a path to a saved .keras file.
MODELS = ("mlp", "cnn")
# What `WeightTracker.save` records for a model and data weightlab did not build or load itself.
EXTERNAL = "external"
# numpy's legacy generator (which Keras and the data order draw from) takes seeds below 2³²;
# a sweep or proof counts seeds up from --seed, so the last of them must stay below it too.
SEED_LIMIT = 2**32 - 1
# Repetitions of one config: far more than any statistic needs, far fewer than would exhaust memory listing them.
MAX_SEEDS = 10_000


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's numbers. Defaults reproduce the tutorial."""

    dataset: str = "mnist"  # a registered name, or a path to an .npz with x_train, y_train, x_test, y_test
    model: str = "mlp"  # "mlp", "cnn", or a path to a saved .keras model
    hidden: int | tuple[int, ...] = (
        64  # the width of each hidden Dense layer (of the MLP, or after the CNN's convolutions)
    )
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    validation_split: float = 0.1
    seed: int = 0
    # A control: train on the training labels permuted once (by the seed), so nothing can be learned.
    shuffle_labels: bool = False
    # How many snapshots of the weights to keep: step 0, each epoch's end, the last step and
    # log-spaced steps between (dense early, where the weights move fastest); see train/schedule.py.
    snapshots: int = 48
    # Adds a snapshot every N steps on top of that schedule (0: none).
    snapshot_every: int = 0
    # Per-step weight statistics (‖W_t − W_0‖, update norm, weight norm); off only to measure their cost.
    step_stats: bool = True
    # The norms are taken every Nth step (and at the first, each epoch's last and the last step),
    # exactly; 1 takes them at every step. Every step costs ≈25-35% of a training step on CPU.
    step_stats_every: int = 10
    # None means: the KERAS_BACKEND environment variable, else jax (see `resolve_backend`).
    backend: str | None = None
    training_path: str = "auto"

    def __post_init__(self) -> None:
        # One width is an int, several a tuple: "64", [64] and (64,) are the same network.
        if isinstance(self.hidden, (list, tuple)):
            widths = tuple(self.hidden)
            object.__setattr__(self, "hidden", widths[0] if len(widths) == 1 else widths)
        validate(self)

    @property
    def widths(self) -> tuple[int, ...]:
        """The hidden widths as a tuple: (64,) for the tutorial's network."""
        return self.hidden if isinstance(self.hidden, tuple) else (self.hidden,)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["hidden"] = list(self.hidden) if isinstance(self.hidden, tuple) else self.hidden
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def fit_samples(self, samples: int) -> int:
        """How many of ``samples`` training examples are trained on: Keras trains on the first
        ``floor(samples · (1 − validation_split))`` and validates on the rest, before any shuffling.
        (Its own float expression: ``samples − int(samples · validation_split)`` differs from it for
        many sizes, e.g. 2,999 samples at 0.99 give 29 against 30.)"""
        return math.floor(samples * (1.0 - self.validation_split))

    def resolved(self) -> RunConfig:
        """This config with the backend made concrete, as it is recorded in a run."""
        return dataclasses.replace(self, backend=resolve_backend(self.backend))


def resolve_backend(requested: str | None) -> str:
    """``requested``, else the ``KERAS_BACKEND`` environment variable, else jax."""
    backend = requested or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def parse_hidden(text: str) -> int | tuple[int, ...]:
    """``"64"`` -> 64, ``"128x64"`` -> (128, 64): one hidden width, or several for a deeper network."""
    parts = str(text).strip().lower().split("x")
    try:
        widths = tuple(int(part) for part in parts)
    except ValueError as error:
        raise ConfigError(
            f"hidden {text!r} is not a width or widths joined by x: write e.g. 64, or 128x64 for two hidden layers"
        ) from error
    return widths[0] if len(widths) == 1 else widths


def hidden_text(hidden) -> str:
    """The command line's spelling of ``hidden``: "64", or "128x64"."""
    return "x".join(map(str, hidden)) if isinstance(hidden, (list, tuple)) else str(hidden)


def is_keras_file(model: str) -> bool:
    return isinstance(model, str) and model.endswith(".keras")


def is_npz_file(dataset: str) -> bool:
    return isinstance(dataset, str) and dataset.endswith(".npz")


def require_int(name: str, value: Any, minimum: int, flag: str, maximum: int | None = None) -> None:
    """Raise ConfigError unless ``value`` is an integer (not a bool) of at least ``minimum`` (and at most ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}: pass {flag} {minimum} or more")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:,}, got {value:,}: pass a smaller {flag}")


def validate(config: RunConfig) -> None:
    """Raise ConfigError naming the first unusable value and what to pass instead."""
    # Imported here so that `weightlab --help` never pays for the data registry.
    from weightlab.data.registry import DATASETS

    if config.dataset not in DATASETS and not is_npz_file(config.dataset) and config.dataset != EXTERNAL:
        raise ConfigError(
            f"unknown dataset {config.dataset!r}: choose one of {', '.join(DATASETS)}, or pass a PATH.npz of your own"
        )
    if config.model not in MODELS and not is_keras_file(config.model) and config.model != EXTERNAL:
        raise ConfigError(
            f"unknown model {config.model!r}: choose one of {', '.join(MODELS)}, or pass a saved model's PATH.keras"
        )
    if isinstance(config.hidden, tuple) and not config.hidden:
        raise ConfigError("hidden lists no width: pass e.g. --hidden 64, or --hidden 128x64 for two hidden layers")
    for width in config.widths:
        require_int("hidden", width, 1, "--hidden")
    require_int("epochs", config.epochs, 1, "--epochs")
    require_int("batch_size", config.batch_size, 1, "--batch-size")
    require_int("seed", config.seed, 0, "--seed", maximum=SEED_LIMIT)
    require_int("snapshots", config.snapshots, 0, "--snapshots")
    require_int("step_stats_every", config.step_stats_every, 1, "--step-stats-every")
    require_int("snapshot_every", config.snapshot_every, 0, "--snapshot-every")
    rate = config.learning_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ConfigError(
            f"learning_rate must be a positive finite number, got {rate!r}: pass e.g. --learning-rate 1e-3"
        )
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    split = config.validation_split
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise ConfigError(f"validation_split must be in [0, 1), got {split!r}")
    for flag in ("step_stats", "shuffle_labels"):
        if not isinstance(getattr(config, flag), bool):
            raise ConfigError(f"{flag} must be true or false, got {getattr(config, flag)!r}")
    if config.training_path not in TRAINING_PATHS:
        raise ConfigError(f"unknown training path {config.training_path!r}: choose one of {', '.join(TRAINING_PATHS)}")
    if config.training_path == "fused-jax" and config.backend not in (None, "jax"):
        raise ConfigError(
            f"the fused-jax training path runs on the jax backend only, not {config.backend}; pass --backend jax or --training-path auto"
        )
    if config.backend is not None and config.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {config.backend!r}: choose one of {', '.join(BACKENDS)}")
