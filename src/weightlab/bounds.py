"""Bounds before allocation: a run whose arrays cannot fit in this machine's memory is refused before it is built.

The estimate counts what a run holds in memory at once: the weights in every copy training
keeps (the weights, their gradient, the optimizer's slots, the initial weights, a snapshot in
flight, the compiled program's buffers), the device buffer snapshots pass through on their way
to snapshots.h5 (they are streamed to disk, not kept), and the per-step statistics (a loss and
an accuracy per step, three norms per step and variable). It is a
bound meant to catch values off by orders of magnitude (``--hidden 10000000``, ``--epochs
100000000000``), not to plan memory to the byte.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from weightlab.config import RunConfig
from weightlab.errors import ConfigError
from weightlab.safeio import available_memory

FLOAT_BYTES = 4
RECORD_BYTES = 8
# weights, gradient, two optimizer slots, initial weights, a snapshot in flight, and the
# compiled step's intermediates and donated buffers
WEIGHT_COPIES = 8
SNAPSHOT_BUFFER_BYTES = 64 << 20  # the most an epoch's snapshots occupy on the device before they are written


@dataclasses.dataclass(frozen=True)
class Footprint:
    parameters: int
    steps: int
    snapshots: int
    variables: int

    @property
    def bytes(self) -> int:
        weights = self.parameters * FLOAT_BYTES * WEIGHT_COPIES
        snapshots = min(self.snapshots * self.parameters * FLOAT_BYTES, SNAPSHOT_BUFFER_BYTES)
        records = self.steps * (2 + 3 * self.variables) * RECORD_BYTES
        return weights + snapshots + records


def footprint(config: RunConfig, fit_samples: int, parameters: int, variables: int) -> Footprint:
    """What one run of ``config`` on ``fit_samples`` training examples holds in memory."""
    steps = math.ceil(fit_samples / config.batch_size) * config.epochs
    snapshots = config.snapshots + config.epochs + 1 + (steps // config.snapshot_every if config.snapshot_every else 0)
    return Footprint(parameters=parameters, steps=steps, snapshots=snapshots, variables=variables)


def require_fits(config: RunConfig, fit_samples: int, parameters: int, variables: int, runs: int = 1) -> None:
    """Raise ConfigError, before anything is built, unless ``runs`` runs of ``config`` fit in the memory available."""
    need = footprint(config, fit_samples, parameters, variables)
    total = need.bytes * runs
    have = available_memory()
    if total > have:
        raise ConfigError(
            f"this needs about {_size(total)} of memory ({need.parameters:,} parameters, {need.steps:,} steps, "
            f"{need.snapshots:,} snapshots{f', {runs} runs' if runs > 1 else ''}) but {_size(have)} is available: "
            "pass a smaller --hidden or --epochs, or a larger --snapshot-every"
        )


def model_size(config: RunConfig, inputs: int, classes: int) -> tuple[int, int]:
    """(parameters, variables) of the config's model, known before it is built: exact for an MLP of any
    depth; for a CNN or a saved model, whose size is small or bounded by its file, none are counted."""
    if getattr(config, "model", "mlp") != "mlp":
        return 0, 8
    hidden = config.hidden if isinstance(config.hidden, (list, tuple)) else [config.hidden]
    widths = [inputs, *hidden, classes]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths)), 2 * (len(widths) - 1)


def _size(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e3:.1f} kB"
