"""Training through Keras's own ``model.fit``: any backend, the tutorial's exact call."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import keras
import numpy as np

from weightlab.config import RunConfig
from weightlab.train.tracker import TrackedWeights, WeightTracker

TRAINING_PATH = "keras.fit"
# A progress hook: called with (steps done, steps in all, the latest epoch logs or None).
ProgressHook = Callable[[int, int, "dict | None"], None]


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    history: dict[str, list[float]]  # Keras-style: metric -> one value per epoch
    epoch_seconds: list[float]
    train_seconds: float
    steps: int
    tracked: TrackedWeights
    path: str = TRAINING_PATH
    # None, or where training stopped because the loss stopped being finite: {"step" (1-based,
    # the first step whose loss was not finite), "epoch" (1-based), "loss" ("nan" or "inf"), "kept_steps"}.
    diverged: dict | None = None


def to_inputs(images: np.ndarray) -> np.ndarray:
    """Images (n, 28, 28) uint8 -> (n, 784) float32 in [0, 1], as the tutorial prepares them."""
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)


def steps_per_epoch(samples: int, config: RunConfig) -> int:
    """Batches per epoch once Keras has held out the last ``validation_split`` of the samples."""
    return -(-config.fit_samples(samples) // config.batch_size)


class _EpochClock(keras.callbacks.Callback):
    """Times each epoch and reports progress every few steps (rich redraws are not free)."""

    def __init__(self, progress: ProgressHook | None, every: int = 64):
        super().__init__()
        self.progress, self.every = progress, every
        self.seconds: list[float] = []
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.progress and self._step % self.every == 0:
            self.progress(self._step, self._total, None)

    def on_train_begin(self, logs=None):
        self._total = int(self.params.get("steps") or 0) * int(self.params.get("epochs") or 0)

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        if self.progress:
            self.progress(self._step, self._total, dict(logs or {}, epoch=epoch + 1, seconds=self.seconds[-1]))


def fit(model, x_train: np.ndarray, y_train: np.ndarray, config: RunConfig, progress: ProgressHook | None = None) -> FitResult:
    """``model.fit`` exactly as the tutorial calls it, with a WeightTracker and a clock attached."""
    samples = len(x_train)
    fit_samples = config.fit_samples(samples)
    tracker = WeightTracker(snapshot_every=config.snapshot_every, batch_size=config.batch_size, samples=fit_samples, step_stats=config.step_stats)
    clock = _EpochClock(progress)
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_split=config.validation_split,
        callbacks=[tracker, clock],
        verbose=0,
    )
    train_seconds = time.perf_counter() - start
    tracked = tracker.result()
    epochs_done = len(clock.seconds)
    if tracker.diverged:
        # Keep what was finite: the weights of the last finite step, and only the epochs that ended before.
        model.set_weights(list(tracked.final().values()))
        epochs_done = tracker.diverged["kept_steps"] // max(1, steps_per_epoch(samples, config))
    return FitResult(
        history={key: [float(v) for v in values][:epochs_done] for key, values in history.history.items()},
        epoch_seconds=clock.seconds[:epochs_done],
        train_seconds=train_seconds,
        steps=len(tracked.loss),
        tracked=tracked,
        diverged=tracker.diverged,
    )


def predict(model, x: np.ndarray) -> np.ndarray:
    """Output probabilities (n, classes): a cached jitted call on JAX, `model.predict` elsewhere."""
    if keras.backend.backend() == "jax" and not model.non_trainable_variables:
        from weightlab.train import fused_jax

        return fused_jax.predict(model, x)
    return np.asarray(model.predict(x, batch_size=1000, verbose=0))


def evaluate(model, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray] | None = None) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on (x, y), with ``weights`` loaded first if given.

    The one evaluation every command uses, so that "before", "after" and every control are
    measured the same way: Keras's sparse categorical cross-entropy (on probabilities clipped
    as Keras clips them) averaged over the samples, and the fraction whose most probable
    class is the label — what `model.evaluate` reports, without compiling per model.
    """
    if weights is not None:
        model.set_weights(weights)
    probabilities = predict(model, x)
    labels = np.asarray(y).astype(np.int64)
    loss = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
    return float(np.mean(loss, dtype=np.float64)), float(np.mean(probabilities.argmax(axis=1) == labels))
