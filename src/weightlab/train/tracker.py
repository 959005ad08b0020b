"""WeightTracker: a Keras callback that records how every weight moves, cheaply.

Drop it into any ``model.fit(..., callbacks=[tracker])``. It keeps:

* snapshots of every trainable variable on a schedule (`schedule.snapshot_schedule`): step 0,
  each epoch's end and log-spaced steps between, about ``snapshots`` in all, plus every
  ``snapshot_every`` steps if asked — each handed to its `Snapshots` store as it is taken
  (in memory by default; a run directory's streams them into snapshots.h5);
* per training step: the batch loss and, per variable, ‖W_t − W_0‖, ‖W_t − W_{t−1}‖ and ‖W_t‖
  (the update's ratio to the weight is their quotient).

The per-step norms are computed where the weights live, by one compiled function per step
whose small results stay on the device until the epoch ends: no weight crosses to the host
except in a snapshot.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from weightlab.backend import compile_function
from weightlab.train.norms import step_norms
from weightlab.train.schedule import measured, snapshot_schedule
from weightlab.train.snapshots import MemorySnapshots, Snapshots


@dataclasses.dataclass(frozen=True, eq=False)
class TrackedWeights:
    """What a WeightTracker recorded, as numpy arrays."""

    variable_names: list[str]  # "layer/variable", e.g. "hidden/kernel"
    snapshot_steps: np.ndarray  # (n,) global step of each snapshot; 0 is the initialisation
    snapshot_epochs: np.ndarray  # (n,) the same in epochs (step / steps per epoch)
    snapshots: Snapshots  # a mapping name -> (n, *shape) float32, read from where they were streamed
    loss: np.ndarray  # (T,) each step's batch loss
    epoch: np.ndarray  # (T,) the epoch (from 0) each step belongs to
    distance_from_init: np.ndarray  # (T, V) ‖W_t − W_0‖ after step t
    update_norm: np.ndarray  # (T, V) ‖W_t − W_{t−1}‖
    weight_norm: np.ndarray  # (T, V) ‖W_t‖

    @property
    def update_ratio(self) -> np.ndarray:
        """(T, V) ‖W_t − W_{t−1}‖ / ‖W_t‖ (0 where the weight norm is 0; NaN where the norms were not recorded)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.weight_norm == 0, 0.0, self.update_norm / self.weight_norm)

    def initial(self) -> dict[str, np.ndarray]:
        return self.snapshots.initial()

    def final(self) -> dict[str, np.ndarray]:
        return self.snapshots.final()


def variable_names(model, variables=None) -> list[str]:
    """Names of ``variables`` (default: the trainable ones) relative to the model: "hidden/kernel",
    not "my_model/hidden/kernel" — names that survive renaming the model."""
    prefix = f"{model.name}/"
    return [
        variable.path.removeprefix(prefix)
        for variable in (model.trainable_variables if variables is None else variables)
    ]


class WeightTracker(keras.callbacks.Callback):
    """Records weight snapshots and per-step weight statistics during ``model.fit``.

    With ``step_stats=False`` only the snapshots and the per-step loss are kept (the norms read NaN).
    If a batch's loss is not finite, it stops training, keeps the weights of the last finite step
    as the final snapshot and records where in ``diverged``.

    ``batch_size`` and ``samples`` (the number of training examples) let it weigh a final,
    smaller batch exactly when it recovers each batch's loss from Keras's running mean;
    without them every batch of an epoch is taken to be the same size.

    Each ``fit`` starts a new record, unless ``across_fits=True``: then fit calls that continue
    one another (one per epoch with ``initial_epoch``, say) extend one record, and `restore`
    loads a `record` saved earlier, so that a training resumed in another process goes on
    recording exactly where it stopped.

    ``snapshots`` is how many snapshots to keep over the fit's epochs (``schedule``, global steps,
    overrides the schedule); ``store`` receives them as they are taken (default: in memory).
    """

    def __init__(
        self,
        snapshot_every: int = 0,
        batch_size: int | None = None,
        samples: int | None = None,
        step_stats: bool = True,
        across_fits: bool = False,
        snapshots: int = 48,
        schedule: np.ndarray | None = None,
        store: Snapshots | None = None,
        step_stats_every: int = 1,
    ):
        super().__init__()
        self.step_stats = step_stats
        if step_stats_every < 1:
            raise ValueError(f"step_stats_every must be >= 1, got {step_stats_every}")
        self.step_stats_every = step_stats_every
        self.across_fits = across_fits
        if snapshot_every < 0 or snapshots < 0:
            raise ValueError(f"snapshot_every and snapshots must be >= 0, got {snapshot_every} and {snapshots}")
        self.snapshot_every = snapshot_every
        self.snapshots = snapshots
        self._fixed_schedule = None if schedule is None else {int(step) for step in schedule}
        self._given_store = store
        self._store: Snapshots = store if store is not None else MemorySnapshots()
        self._schedule: set[int] = set()
        self.batch_size = batch_size
        self.samples = samples
        self._norms = compile_function(keras, step_norms)
        self._reset()

    def _reset(self) -> None:
        self.diverged: dict | None = None  # where the loss stopped being finite, if it did
        self._names: list[str] = []
        self._step = 0
        self._epoch = 0
        self._steps_per_epoch = 1
        self._pending_norms: list = []  # device tensors of the current epoch
        self._norm_chunks: list[np.ndarray] = []
        self._losses: list[float] = []
        self._epochs: list[int] = []
        self._running: tuple[float, float] = (0.0, 0.0)  # (samples seen this epoch, running mean)
        self.history: dict[str, list[float]] = {}  # Keras's epoch logs, as model.fit's History keeps them
        self.epoch_seconds: list[float] = []

    # -- the weights, wherever they live ------------------------------------------------
    def _current_values(self) -> list:
        model = self.model
        state = getattr(model, "_jax_state", None)
        # On JAX, model.fit keeps the live weights in _jax_state between epoch ends and
        # leaves the model's own variables stale; Keras publishes that state for callbacks.
        if state and not getattr(model, "_jax_state_synced", True):
            return list(state["trainable_variables"])
        return [variable.value for variable in model.trainable_variables]

    def _snapshot(self, values) -> None:
        self._snapshot_values([np.array(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in values])

    def _snapshot_values(self, arrays: list[np.ndarray]) -> None:
        if self._store.count and self._store.steps[-1] == self._step:
            return
        self._store.append(self._step, arrays)

    def _new_store(self) -> None:
        """An empty store for a new record: the given one emptied, or a fresh one in memory."""
        if self._given_store is not None:
            self._store = self._given_store
            self._store.truncate(0)
        else:
            self._store = MemorySnapshots()
        self._store.names = list(self._names)

    # -- Keras callback hooks ---------------------------------------------------------------
    def on_train_begin(self, logs=None):
        values = self._current_values()
        if self.across_fits and self._store.count:  # this fit continues the recorded one
            self._initial = [keras.ops.convert_to_tensor(w) for w in self._store.at(0)]
            self._previous = [keras.ops.copy(v) for v in values]
        else:
            self._start_record(values)
        self._steps_per_epoch = max(1, int(self.params.get("steps") or 1))
        epochs = int(self.params.get("epochs") or 1)
        self._schedule = (
            self._fixed_schedule
            if self._fixed_schedule is not None
            else set(snapshot_schedule(self._steps_per_epoch, epochs, self.snapshots, self.snapshot_every).tolist())
        )

    def _start_record(self, values) -> None:
        self._reset()
        self._names = variable_names(self.model)
        self._new_store()
        self._initial = [keras.ops.copy(v) for v in values]
        self._previous = self._initial
        self._snapshot(values)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._running = (0.0, 0.0)
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.diverged:
            return
        batch_loss = self._batch_loss(batch, (logs or {}).get("loss", float("nan")))
        if not np.isfinite(batch_loss):
            self._stop(batch_loss)
            return
        values = self._current_values()
        if self.step_stats:
            norms, self._previous = self._norms(values, self._initial, self._previous)
            self._pending_norms.append(norms)
        self._step += 1
        self._losses.append(batch_loss)
        self._epochs.append(self._epoch)
        if self._step in self._schedule:
            self._snapshot(values)

    def on_epoch_end(self, epoch, logs=None):
        self._flush_norms()
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch_seconds.append(time.perf_counter() - getattr(self, "_epoch_start", time.perf_counter()))
        if not self.diverged:
            self._snapshot(self._current_values())
        self._store.flush()

    def _stop(self, batch_loss: float) -> None:
        """The loss stopped being finite: stop training and keep the weights of the last finite step.

        Those are the weights this batch's loss was computed with (the tracker's copy of the
        previous step), if they are finite; else the last finite snapshot (the later ones go).
        """
        self.diverged = {
            "step": self._step + 1,
            "epoch": self._epoch + 1,
            "loss": str(float(batch_loss)),
            "kept_steps": self._step,
        }
        self.model.stop_training = True
        previous = (
            [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in self._previous]
            if self.step_stats
            else None
        )
        if previous is not None and all(np.isfinite(w).all() for w in previous):
            self._snapshot_values(previous)
        else:  # fall back to the last finite snapshot, and drop the statistics recorded after it
            while self._store.count > 1 and not all(np.isfinite(w).all() for w in self._store.at(-1)):
                self._store.truncate(self._store.count - 1)
            kept = int(self._store.steps[-1])
            self._flush_norms()
            self._losses, self._epochs = self._losses[:kept], self._epochs[:kept]
            self._norm_chunks = [np.concatenate(self._norm_chunks)[:kept]] if self._norm_chunks else []
            self._step = self.diverged["kept_steps"] = kept

    def on_train_end(self, logs=None):
        self._flush_norms()

    def _flush_norms(self) -> None:
        if self._pending_norms:
            stacked = keras.ops.convert_to_numpy(keras.ops.stack(self._pending_norms))
            self._norm_chunks.append(np.asarray(stacked, dtype=np.float64))
            self._pending_norms = []

    def _batch_loss(self, batch: int, running_mean: float) -> float:
        """This batch's loss, from Keras's running mean over the epoch so far.

        Keras logs the mean of the loss over the epoch's samples so far, m_t. With S_t samples
        seen, the batch's own loss is (S_t·m_t − S_{t−1}·m_{t−1}) / b_t.
        """
        size = 1.0
        if self.batch_size:
            size = float(self.batch_size)
            if self.samples and batch == self._steps_per_epoch - 1:
                size = float(self.samples - batch * self.batch_size)
        seen_before, mean_before = self._running
        seen = seen_before + size
        self._running = (seen, float(running_mean))
        return (seen * float(running_mean) - seen_before * mean_before) / size

    # -- saving and restoring a record (to resume in another process) ----------------------
    def record(self) -> dict:
        """Everything recorded so far, as numpy arrays: what `restore` needs to continue.

        The snapshots themselves stay in their store (a file survives the process); only a store
        in memory puts them in the record.
        """
        self._flush_norms()
        variables = len(self._names)
        record = {
            "names": list(self._names),
            "snapshot_steps": self._store.steps.tolist(),
            "losses": np.asarray(self._losses, dtype=np.float64),
            "epochs": np.asarray(self._epochs, dtype=np.int64),
            "norms": np.concatenate(self._norm_chunks) if self._norm_chunks else np.zeros((0, 3, variables)),
        }
        if isinstance(self._store, MemorySnapshots):
            record["snapshots"] = [self._store.at(i) for i in range(self._store.count)]
        return record

    def restore(self, record: dict) -> None:
        """Continue from ``record`` (from `record`): the next fit extends it (needs ``across_fits``).

        The store must hold the record's snapshots already, unless the record carries them.
        """
        if not self.across_fits:
            raise ValueError("restore() needs a WeightTracker made with across_fits=True")
        self._reset()
        self._names = list(record["names"])
        if "snapshots" in record:
            self._new_store()
            for step, weights in zip(record["snapshot_steps"], record["snapshots"]):
                self._store.append(step, weights)
        if self._store.steps.tolist() != [int(step) for step in record["snapshot_steps"]]:
            raise ValueError("the tracker's store does not hold the record's snapshots")
        self._losses = [float(loss) for loss in record["losses"]]
        self._epochs = [int(epoch) for epoch in record["epochs"]]
        self._step = len(self._losses)
        self._norm_chunks = (
            [np.asarray(record["norms"], dtype=np.float64)] if self.step_stats and len(record["norms"]) else []
        )

    # -- results -------------------------------------------------------------------------
    def save(self, path, model, test_data, train_data=None, report: bool = True):
        """Write what this tracker recorded in ``model.fit`` as an ordinary run directory at ``path``; returns its `Run`.

        ``test_data=(x_test, y_test)`` (inputs as the model takes them, integer labels) is scored
        with the initial and the trained weights; ``train_data=(x_train, y_train)``, if given,
        lets the run count the inputs that can never move a first Dense layer's weights.
        `weightlab report path` renders it again; the run cannot be retrained by weightlab.
        """
        from weightlab.experiments.external import save

        return save(self, path, model, test_data, train_data=train_data, report=report)

    def result(self) -> TrackedWeights:
        """Everything recorded so far, as numpy arrays (the snapshots read from their store)."""
        norms = (
            np.concatenate(self._norm_chunks)
            if self._norm_chunks
            else np.full((len(self._losses), 3, len(self._names)), np.nan)
        )
        if self.step_stats_every > 1 and len(norms):  # the run's format: exact at the measured steps, NaN between
            total = int(self.params.get("epochs", 1) or 1) * self._steps_per_epoch if self.params else len(norms)
            steps = np.arange(1, len(norms) + 1)
            kept = measured(steps, self.step_stats_every, self._steps_per_epoch, total) | np.isin(
                steps, self._store.steps
            )
            norms = np.where(kept[:, None, None], norms, np.nan)
        self._store.flush()
        steps = self._store.steps
        return TrackedWeights(
            variable_names=list(self._names),
            snapshot_steps=steps,
            snapshot_epochs=steps / self._steps_per_epoch,
            snapshots=self._store,
            loss=np.asarray(self._losses, dtype=np.float64),
            epoch=np.asarray(self._epochs, dtype=np.int64),
            distance_from_init=norms[:, 0, :],
            update_norm=norms[:, 1, :],
            weight_norm=norms[:, 2, :],
        )
