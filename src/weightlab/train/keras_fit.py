"""Training through Keras's own ``model.fit``: any backend, the tutorial's exact call."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from weightlab.config import RunConfig
from weightlab.train.orders import EpochOrders
from weightlab.train.schedule import snapshot_schedule
from weightlab.train.snapshots import Snapshots
from weightlab.train.tracker import TrackedWeights, WeightTracker, variable_names

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


def to_inputs(examples: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Examples as the model takes them (`data.model_inputs`: float32, uint8 scaled to [0, 1]),
    each reshaped to ``shape`` (default: flat).

    ``shape`` is the model's input shape without the batch axis: (784,) for the tutorial's MLP,
    (28, 28, 1) for the CNN. The reshape is a view: pass a dataset's prepared inputs
    (`Dataset.inputs`), made once for all the runs that share it, and nothing is copied.
    """
    from weightlab.data import model_inputs

    flat = model_inputs(examples)
    if shape is None:
        return flat
    if int(np.prod(shape)) != flat.shape[1]:
        from weightlab.errors import ConfigError

        raise ConfigError(
            f"the model takes examples of shape {tuple(shape)} and the data's have {flat.shape[1]} values each; "
            "pass a model built for this data"
        )
    return flat.reshape(len(flat), *shape)


def steps_per_epoch(samples: int, config: RunConfig) -> int:
    """Batches per epoch once Keras has held out the last ``validation_split`` of the samples."""
    return -(-config.fit_samples(samples) // config.batch_size)


class _EpochClock(keras.callbacks.Callback):
    """Times each epoch and reports progress every few steps (rich redraws are not free).

    The end of an epoch is reported by the loop, once the epoch's checkpoint is written.
    """

    def __init__(self, progress: ProgressHook | None, total_steps: int, steps_done: int = 0, every: int = 64):
        super().__init__()
        self.progress, self.every = progress, every
        self.total, self.step = total_steps, steps_done
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.progress and self.step % self.every == 0:
            self.progress(self.step, self.total, None)

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _fit_would_build(model) -> bool:
    """Whether `model.fit` would first iterate its data once to build the compiled loss and metrics.

    That pass draws one shuffling permutation that no epoch uses; to follow `model.fit`'s data
    order one must draw it too. (The fused path's equivalence test notices if Keras changes this.)
    """
    compiled = [getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None)]
    return not all(layer.built for layer in model._flatten_layers()) or any(
        part is not None and not part.built for part in compiled
    )


def draw_orders(model, fit_samples: int, epochs: int) -> EpochOrders:
    """The data order of each epoch, from numpy's global generator as `model.fit` draws it on JAX.

    Call it right after seeding and building the model, where `model.fit` would start.
    Keras's JAX and NumPy data adapters draw ``np.random.permutation(n)`` once per epoch; the
    orders are drawn as each epoch asks for its own (`EpochOrders`), not all of them now.
    """
    if _fit_would_build(model):
        np.random.permutation(fit_samples)  # Keras's build pass draws (and discards) one permutation
    return EpochOrders.from_global(fit_samples, epochs)


def fit(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    config: RunConfig,
    progress: ProgressHook | None = None,
    *,
    orders: Sequence[np.ndarray] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    snapshots: Snapshots | None = None,
) -> FitResult:
    """``model.fit`` as the tutorial calls it, with a WeightTracker and a clock attached, one epoch per call.

    weightlab holds out the validation split as Keras does (the last fraction, unshuffled) and
    hands each epoch's ``model.fit`` its batches in ``orders`` (default: `draw_orders`, the
    permutations Keras itself draws on JAX, so that there the training is ``model.fit``'s bit
    for bit). Owning the order is what makes a run resumable on every backend; it also gives
    each epoch a fresh order on TensorFlow, where Keras's seeded shuffle repeats the first
    epoch's (its ``tf.random.shuffle`` restarts from a fixed op seed with each epoch's iterator).

    ``checkpoint(saved)`` is called after each epoch with everything needed to continue
    (weights, optimizer state, the record so far); ``resume=saved`` continues from it.
    ``snapshots`` receives the snapshots as they are taken (default: kept in memory); to resume,
    it must hold those the checkpoint counts.
    """
    samples = len(x_train)
    fit_samples = config.fit_samples(samples)
    x_fit, y_fit = x_train[:fit_samples], y_train[:fit_samples]
    validation = (x_train[fit_samples:], y_train[fit_samples:]) if fit_samples < samples else None
    per_epoch = steps_per_epoch(samples, config)
    orders = orders if orders is not None else draw_orders(model, fit_samples, config.epochs)

    tracker = WeightTracker(
        snapshot_every=config.snapshot_every,
        batch_size=config.batch_size,
        samples=fit_samples,
        step_stats=config.step_stats,
        step_stats_every=config.step_stats_every,
        across_fits=True,
        schedule=snapshot_schedule(per_epoch, config.epochs, config.snapshots, config.snapshot_every),
        store=snapshots,
    )
    history: dict[str, list[float]] = {}
    start_epoch, seconds_before = 0, []
    if resume is not None:
        start_epoch, history, seconds_before = _restore(model, tracker, resume, per_epoch)
    clock = _EpochClock(progress, total_steps=per_epoch * config.epochs, steps_done=per_epoch * start_epoch)
    start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        order = orders[epoch]
        logs = model.fit(
            x_fit[order],
            y_fit[order],
            batch_size=config.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_data=validation,
            shuffle=False,
            callbacks=[tracker, clock],
            verbose=0,
        )
        if tracker.diverged:
            break
        for key, values in logs.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        if checkpoint is not None:
            checkpoint(_saved(model, tracker, epoch + 1, history, seconds_before + clock.seconds))
        if progress:
            progress(
                clock.step,
                clock.total,
                {
                    **{key: values[-1] for key, values in history.items()},
                    "epoch": epoch + 1,
                    "seconds": clock.seconds[-1],
                },
            )
    train_seconds = sum(seconds_before) + time.perf_counter() - start  # a resumed run's earlier epochs count too
    tracked = tracker.result()
    epoch_seconds = seconds_before + clock.seconds
    if tracker.diverged:
        # Keep what was finite: the weights of the last finite step, and only the epochs that ended before.
        set_trainable(model, list(tracked.final().values()))
        epochs_done = tracker.diverged["kept_steps"] // per_epoch
        history = {key: values[:epochs_done] for key, values in history.items()}
        epoch_seconds = epoch_seconds[:epochs_done]
    return FitResult(
        history=history,
        epoch_seconds=epoch_seconds,
        train_seconds=train_seconds,
        steps=len(tracked.loss),
        tracked=tracked,
        diverged=tracker.diverged,
    )


def _saved(model, tracker: WeightTracker, epochs_done: int, history: dict, epoch_seconds: list[float]) -> dict:
    """A checkpoint in the layout the fused path writes (one run: a leading axis of 1)."""

    def numpy(variables) -> list[np.ndarray]:
        return [np.array(keras.ops.convert_to_numpy(v.value))[None] for v in variables]

    record = tracker.record()
    return {
        "path": TRAINING_PATH,
        "epochs_done": epochs_done,
        "state": (
            numpy(model.trainable_variables),
            numpy(model.non_trainable_variables),
            numpy(model.optimizer.variables),
        ),
        "losses": record["losses"][None],
        "norms": record["norms"][None],
        "snapshot_steps": record["snapshot_steps"],
        "history": [history],
        "epoch_seconds": list(epoch_seconds),
    }


def _restore(model, tracker: WeightTracker, saved: dict, per_epoch: int) -> tuple[int, dict, list[float]]:
    """Load a checkpoint from `_saved` into ``model`` and ``tracker``: (epochs done, history, epoch seconds)."""
    trainable, non_trainable, optimizer = ([leaf[0] for leaf in group] for group in saved["state"])
    model.optimizer.build(model.trainable_variables)
    for variable, value in zip(
        model.trainable_variables + model.non_trainable_variables + model.optimizer.variables,
        trainable + non_trainable + optimizer,
        strict=True,
    ):
        variable.assign(value)
    losses = np.asarray(saved["losses"][0], dtype=np.float64)
    record = (
        {"snapshots": [[w[0] for w in snapshot] for snapshot in saved["snapshots"]]} if saved.get("snapshots") else {}
    )
    tracker.restore(
        {
            **record,
            "names": variable_names(model),
            "snapshot_steps": saved["snapshot_steps"],
            "losses": losses,
            "epochs": np.arange(len(losses)) // per_epoch,
            "norms": saved["norms"][0],
        }
    )
    return (
        saved["epochs_done"],
        {key: list(values) for key, values in saved["history"][0].items()},
        list(saved["epoch_seconds"]),
    )


def predict(model, x: np.ndarray) -> np.ndarray:
    """Output probabilities (n, classes): a cached jitted call on JAX, `model.predict` elsewhere."""
    if keras.backend.backend() == "jax" and not model.non_trainable_variables:
        from weightlab.evaluation import outputs

        return outputs.predict(model, x)
    return np.asarray(model.predict(x, batch_size=1000, verbose=0))


def example_losses(model) -> Callable:
    """``loss(y, outputs)`` -> one loss per example: the model's own compiled loss, unreduced.

    A loss named by a string ("sparse_categorical_crossentropy") is Keras's function of that
    name, called as `model.fit` calls it; a `keras.losses.Loss` object is its unreduced
    ``call``. Averaged over a batch this is what `model.fit` minimises (a loss whose reduction
    is not the batch mean, or a regulariser, is not: the fused path does not take such models).
    """
    loss = model.loss
    function = keras.losses.get(loss) if isinstance(loss, str) else loss
    if isinstance(function, keras.losses.Loss):
        return lambda y, outputs: function.call(keras.ops.convert_to_tensor(y, dtype=function.dtype), outputs)
    if not callable(function):
        raise ValueError(f"the model's loss {loss!r} is not one loss function")
    return function


def set_trainable(model, values: list[np.ndarray]) -> None:
    """Load ``values`` into the model's trainable variables, in order: what a tracker records.

    Non-trainable state (BatchNormalization's moving statistics) is left as it is.
    """
    variables = model.trainable_variables
    if len(values) != len(variables):
        raise ValueError(f"{len(values)} arrays for the model's {len(variables)} trainable variables")
    for variable, value in zip(variables, values):
        variable.assign(value)


def evaluate(model, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray] | None = None) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on (x, y), with ``weights`` (its trainable variables') loaded first if given.

    The one evaluation every command uses, so that "before", "after" and every control are
    measured the same way: the model's own compiled loss (for the built-in models Keras's sparse
    categorical cross-entropy, on probabilities clipped as Keras clips them) averaged over the
    samples, and the fraction whose most probable class is the label — what `model.evaluate`
    reports, without compiling per model.
    """
    if weights is not None:
        set_trainable(model, weights)
    return scores(predict(model, x), y, model)


def scores(probabilities: np.ndarray, y: np.ndarray, model) -> tuple[float, float]:
    """(loss, accuracy) of ``model``'s output ``probabilities`` against labels ``y``, as `evaluate` measures them.

    The loss is the model's own (`example_losses`), averaged over the examples in float64.
    """
    labels = np.asarray(y).astype(np.int64)
    if keras.backend.backend() == "jax":
        from weightlab.evaluation.outputs import example_loss_values

        values = example_loss_values(model, labels, probabilities)
    else:
        values = keras.ops.convert_to_numpy(example_losses(model)(labels, probabilities))
    return float(np.mean(values, dtype=np.float64)), float(np.mean(probabilities.argmax(axis=1) == labels))
