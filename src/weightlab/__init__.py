"""weightlab: see, and prove, how training changes a neural network's weights.

    import weightlab
    run = weightlab.run(hidden=16, epochs=5)      # a stored, analysed `Run`
    run.summary["test_accuracy_after"]

Importing weightlab is cheap: Keras and its backend are imported by the first call that
trains, on the backend the config names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from weightlab.config import RunConfig
from weightlab.errors import ConfigError, DataError, RunDirError, WeightlabError
from weightlab.store import Run, read_run

if TYPE_CHECKING:
    from weightlab.train.tracker import TrackedWeights, WeightTracker

__all__ = [
    "ConfigError",
    "DataError",
    "Run",
    "RunConfig",
    "RunDirError",
    "TrackedWeights",
    "WeightTracker",
    "WeightlabError",
    "read_run",
    "run",
]


def run(config: RunConfig | None = None, **kwargs) -> Run:
    """Run the tutorial's experiment; see `weightlab.experiments.run.run`."""
    from weightlab.experiments.run import run as _run

    return _run(config, **kwargs)


def __getattr__(name: str):
    # WeightTracker subclasses keras.callbacks.Callback, so it is imported on first use:
    # `import weightlab` must not start a Keras backend.
    if name in ("WeightTracker", "TrackedWeights"):
        from weightlab.train import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module 'weightlab' has no attribute {name!r}")
