"""The fast path on JAX: the Keras model and optimizer driven statelessly in one jitted loop.

`model.fit` dispatches one jitted step per batch from Python and, with a per-step callback,
synchronises on every step. Here a whole epoch is one compiled loop over batch indices into data
that already lives on the device, and the tracker's per-step norms are computed inside the
loop. The scheduled snapshots (`schedule.snapshot_schedule`) are copied into a preallocated
buffer on the device as the loop passes them and streamed to their `Snapshots` store when the
chunk ends; an epoch is cut into several chunks only where its snapshots would overflow the
buffer's memory budget. The semantics are `model.fit`'s:

* the same initialisation (the Keras model's own variables),
* the same validation split (the last fraction of the training arrays, before shuffling),
* the same data order: Keras's JAX data adapter draws ``np.random.permutation(n)`` once per
  epoch from numpy's global generator, seeded by ``keras.utils.set_random_seed``; so does this,
* the same loss (Keras's sparse categorical cross-entropy on probabilities, averaged over the
  batch; the last, smaller batch is padded and masked, so its mean is over its real samples),
* the same optimizer update (``optimizer.stateless_apply``) and the same epoch metrics
  (sample-weighted mean loss, accuracy; validation loss and accuracy at each epoch's end).
"""

from __future__ import annotations

import time

import jax
import keras
import numpy as np

from weightlab.config import RunConfig
from weightlab.train import keras_fit
from weightlab.train.fused_chunks import buffer_capacity, last_finite_state, padded, stream_snapshots
from weightlab.train.fused_program import program_for, why_not
from weightlab.train.keras_fit import FitResult, ProgressHook
from weightlab.train.schedule import measured, plan_chunks, snapshot_schedule
from weightlab.train.snapshots import MemorySnapshots, Snapshots
from weightlab.train.tracker import TrackedWeights, variable_names

TRAINING_PATH = "fused-jax"


def applies(model, config: RunConfig) -> bool:
    """Whether the fused path can train ``model`` as `model.fit` would (see `why_not`)."""
    return keras.backend.backend() == "jax" and why_not(model) is None


def fit(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    config: RunConfig,
    progress: ProgressHook | None = None,
    *,
    orders: list[np.ndarray] | None = None,
    checkpoint=None,
    resume: dict | None = None,
    snapshots: Snapshots | None = None,
) -> FitResult:
    """Train ``model`` as ``model.fit`` would, in jitted chunks; the model holds the trained weights after.

    ``orders``, ``checkpoint``, ``resume`` and ``snapshots`` are `keras_fit.fit`'s: the two paths are interchangeable.
    """
    if orders is None:
        orders = keras_fit.draw_orders(model, config.fit_samples(len(x_train)), config.epochs)
    sinks = None if snapshots is None else [snapshots]
    return fit_many(
        [model], x_train, [y_train], config, [orders], progress, checkpoint=checkpoint, resume=resume, sinks=sinks
    )[0]


def _stack(trees: list):
    return jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves]), *trees)


def fit_many(
    models: list,
    x_train: np.ndarray,
    labels: list[np.ndarray],
    config: RunConfig,
    orders: list[list[np.ndarray]],
    progress: ProgressHook | None = None,
    checkpoint=None,
    resume: dict | None = None,
    sinks: list[Snapshots] | None = None,
) -> list[FitResult]:
    """Train several models of one architecture together, each as ``model.fit`` would train it alone.

    ``labels[r]`` and ``orders[r]`` (from `keras_fit.draw_orders`) belong to ``models[r]``; ``config`` is
    what they share (everything but the seed and the labels). Each model holds its trained
    weights after. ``checkpoint(saved)`` is called at each epoch's end with everything needed to
    continue (a dict of numpy arrays and lists); ``resume=saved`` continues from such a dict, and
    the result is bit for bit that of an uninterrupted run. ``sinks[r]`` receives model r's
    snapshots as they are taken (default: kept in memory); a resumed run's holds those the
    checkpoint counts.
    """
    packed_sinks = None if sinks is None else [[sink] for sink in sinks]
    return [
        results[0]
        for results in _fit(
            [[model] for model in models], x_train, labels, config, orders, progress, checkpoint, resume, packed_sinks
        )
    ]


def fit_packed(
    packs: list[list],
    x_train: np.ndarray,
    labels: list[np.ndarray],
    config: RunConfig,
    orders: list[list[np.ndarray]],
    progress: ProgressHook | None = None,
    sinks: list[list[Snapshots]] | None = None,
) -> list[list[FitResult]]:
    """Train ``packs[r]`` — models of one seed that see the same batches (a comparison's variants) — as one run of branches.

    ``labels[r]`` and ``orders[r]`` are shared by the models of ``packs[r]``; runs are vmapped as
    in `fit_many`. Each model trains as it would alone (to float rounding: a different program
    rounds differently) and holds its trained weights after. Returns a result per pack, per model.
    """
    return _fit(packs, x_train, labels, config, orders, progress, sinks=sinks)


def _fit(
    packs: list[list],
    x_train,
    labels,
    config: RunConfig,
    orders,
    progress=None,
    checkpoint=None,
    resume=None,
    sinks=None,
) -> list[list[FitResult]]:
    runs, branches = len(packs), len(packs[0])
    # One record per model ("view"): model k of run r is view r·branches + k.
    views = runs * branches
    samples = len(x_train)
    fit_samples = config.fit_samples(samples)
    batch = config.batch_size
    steps_per_epoch = keras_fit.steps_per_epoch(samples, config)
    total_steps = steps_per_epoch * config.epochs

    # The images go to the device once; everything per run (weights, optimizer state, labels,
    # snapshot buffers) is held on the host between chunks, as numpy, and handed to each call:
    # bookkeeping on device arrays would be JAX operations, each compiled for its shapes (≈90 of
    # them, ≈0.5 s, in a comparison's training: measured), where numpy's cost nothing.
    # (`jax.device_put`, not ``jnp.asarray``: no program per shape, `fused_chunks.to_device`)
    x_fit, x_val = jax.device_put(x_train[:fit_samples]), jax.device_put(x_train[fit_samples:])
    y_fit = np.stack([y[:fit_samples] for y in labels]).astype(np.int32)
    y_val = np.stack([y[fit_samples:] for y in labels]).astype(np.int32)

    for pack in packs:
        for model in pack:
            model.optimizer.build(model.trainable_variables)
    names = variable_names(packs[0][0])
    width = len(names)  # variables per model
    if any(len(model.trainable_variables) != width for pack in packs for model in pack):
        raise ValueError("packed models must have the same number of variables")
    if branches == 1:  # the model's own optimizer, whose state a checkpoint keeps
        optimizer = packs[0][0].optimizer
        optimizer_states = [[v.value for v in pack[0].optimizer.variables] for pack in packs]
    else:  # one optimizer over every branch's variables, configured as the models' own
        own = packs[0][0].optimizer
        optimizer = type(own).from_config(own.get_config())
        optimizer.build([v for model in packs[0] for v in model.trainable_variables])
        optimizer_states = [[v.value for v in optimizer.variables] for _ in packs]
    state = _stack(
        [
            (
                [v.value for model in pack for v in model.trainable_variables],
                [v.value for model in pack for v in model.non_trainable_variables],
                opt,
            )
            for pack, opt in zip(packs, optimizer_states)
        ]
    )
    initial = [np.array(v, copy=True) for v in state[0]]
    program = program_for(packs[0], optimizer, batch, config.step_stats)

    def by_view(per_run_and_branch):
        """(runs, steps, branches, ...) -> (views, steps, ...)."""
        moved = np.moveaxis(per_run_and_branch, 2, 1)
        return moved.reshape((views,) + moved.shape[2:])

    def norms_by_view(chunk_norms):
        """(runs, steps, 3, branches·width) -> (views, steps, 3, width)."""
        split = chunk_norms.reshape(chunk_norms.shape[:3] + (branches, width))
        return by_view(np.moveaxis(split, 3, 2))

    def branch_of(variables, k: int) -> list:
        return variables[k * width : (k + 1) * width]

    sinks = [
        sink
        for pack in (sinks or [[MemorySnapshots(names) for _ in range(branches)] for _ in range(runs)])
        for sink in pack
    ]
    schedule = snapshot_schedule(steps_per_epoch, config.epochs, config.snapshots, config.snapshot_every)
    capacity = buffer_capacity(schedule, steps_per_epoch, [np.shape(leaf) for leaf in initial])
    buffers = [np.zeros((runs, capacity) + np.shape(leaf)[1:], np.float32) for leaf in initial]
    losses, corrects, step_norms = [], [], []
    history = [{"accuracy": [], "loss": [], "val_accuracy": [], "val_loss": []} for _ in range(views)]
    epoch_seconds: list[float] = []
    # Batch b of an epoch holds positions [b·B, (b+1)·B) of that epoch's permutation; the last
    # batch is padded with position 0 and masked out.
    positions = np.arange(steps_per_epoch * batch)
    masks_epoch = (positions < fit_samples).astype(np.float32).reshape(steps_per_epoch, batch)
    sizes = masks_epoch.sum(axis=1)
    chunk_length = steps_per_epoch  # every chunk is padded to one length: one compilation

    stopped: dict[int, dict] = {}  # view -> where it diverged, and its run's last finite state it keeps
    start_epoch = 0
    if resume is not None:  # (a single model: views are runs; its sink holds the checkpoint's snapshots)
        start_epoch = resume["epochs_done"]
        state = jax.tree_util.tree_map(np.asarray, resume["state"])
        losses, corrects, step_norms = [resume["losses"]], [resume["corrects"]], [resume["norms"]]
        history, epoch_seconds = resume["history"], list(resume["epoch_seconds"])
    else:
        for v, sink in enumerate(sinks):
            r, k = divmod(v, branches)
            sink.append(0, [np.asarray(w[r]) for w in branch_of(initial, k)])
    start = epoch_start = time.perf_counter()
    for epoch, first, length, taken in plan_chunks(schedule, steps_per_epoch, config.epochs, capacity):
        if len(stopped) == views:
            break
        if epoch < start_epoch:
            continue
        if first == 0:
            padding = np.zeros(len(positions) - fit_samples, dtype=np.int64)
            epoch_orders = [
                np.concatenate([run_orders[epoch], padding]).reshape(steps_per_epoch, batch) for run_orders in orders
            ]
            epoch_start = time.perf_counter()
        indices = np.stack([padded(order, first, length, chunk_length) for order in epoch_orders])
        masks = padded(masks_epoch, first, length, chunk_length)
        slots = np.full(chunk_length, -1, dtype=np.int32)
        slots[[index for index, _ in taken]] = np.arange(len(taken), dtype=np.int32)
        global_steps = epoch * steps_per_epoch + first + 1 + np.arange(chunk_length)
        # (a snapshot step's norms are taken too, `loop_segments`: exact wherever its weights are kept)
        measured_steps = measured(global_steps, config.step_stats_every, steps_per_epoch, total_steps)
        before = state  # kept to replay this chunk if a run diverges in it (the chunk copies its inputs)
        state, buffers, (loss, correct, chunk_norms) = program.chunk(
            state, buffers, indices, masks, measured_steps, slots, length, x_fit, y_fit, initial
        )
        loss, correct, chunk_norms = (
            by_view(loss[:, :length]),
            by_view(correct[:, :length]),
            norms_by_view(chunk_norms[:, :length]),
        )
        chunk_losses = np.asarray(loss)
        global_first = epoch * steps_per_epoch + first
        newly_stopped = set()
        for v in np.nonzero(~np.isfinite(chunk_losses).all(axis=1))[0]:
            if v not in stopped:
                r, k = divmod(int(v), branches)
                bad = int(np.argmax(~np.isfinite(chunk_losses[v])))
                kept, kept_state = last_finite_state(
                    program,
                    before,
                    buffers,
                    r,
                    bad,
                    indices,
                    masks,
                    measured_steps,
                    slots,
                    x_fit,
                    y_fit,
                    initial,
                    slice(k * width, (k + 1) * width),
                )
                stopped[int(v)] = {
                    "step": global_first + bad + 1,
                    "epoch": epoch + 1,
                    "loss": str(float(chunk_losses[v, bad])),
                    "kept_steps": global_first + kept,
                    "state": kept_state,
                }
                newly_stopped.add(int(v))
        stream_snapshots(sinks, buffers, taken, stopped, newly_stopped, branches, width)
        losses.append(loss)
        corrects.append(correct)
        step_norms.append(chunk_norms)
        done = global_first + length
        if first + length == steps_per_epoch:
            epoch_losses = np.concatenate([np.asarray(chunk, dtype=np.float64) for chunk in losses], axis=1)[
                :, -steps_per_epoch:
            ]
            epoch_correct = np.concatenate([np.asarray(c) for c in corrects], axis=1)[:, -steps_per_epoch:]
            if fit_samples < samples:
                val_loss, val_accuracy = (
                    np.asarray(v).reshape(views) for v in program.evaluate(state[0], state[1], x_val, y_val)
                )
            else:
                val_loss = val_accuracy = np.full(views, np.nan)
            for v in range(views):
                history[v]["loss"].append(float((epoch_losses[v] * sizes).sum() / sizes.sum()))
                history[v]["accuracy"].append(float(epoch_correct[v].sum() / fit_samples))
                history[v]["val_loss"].append(float(val_loss[v]))
                history[v]["val_accuracy"].append(float(val_accuracy[v]))
            epoch_seconds.append(time.perf_counter() - epoch_start)
            if checkpoint is not None and not stopped:
                checkpoint(
                    {
                        "path": TRAINING_PATH,
                        "epochs_done": epoch + 1,
                        "state": jax.tree_util.tree_map(lambda leaf: np.array(leaf, copy=True), state),
                        "losses": np.concatenate([np.asarray(chunk) for chunk in losses], axis=1),
                        "corrects": np.concatenate([np.asarray(c) for c in corrects], axis=1),
                        "norms": np.concatenate([np.asarray(n) for n in step_norms], axis=1),
                        "snapshot_steps": sinks[0].steps.tolist(),
                        "history": history,
                        "epoch_seconds": list(epoch_seconds),
                    }
                )
            if progress:
                logs = {key: values[-1] for key, values in history[0].items()}
                progress(done, total_steps, dict(logs, epoch=epoch + 1, seconds=epoch_seconds[-1]))
        elif progress:
            progress(done, total_steps, None)
    train_seconds = sum(epoch_seconds[:start_epoch]) + time.perf_counter() - start  # and a resumed run's earlier epochs

    all_losses = np.concatenate([np.asarray(chunk, dtype=np.float64) for chunk in losses], axis=1)
    norms = np.concatenate([np.asarray(n, dtype=np.float64) for n in step_norms], axis=1)
    results: list[list[FitResult]] = [[] for _ in range(runs)]
    epochs_of_steps = np.repeat(np.arange(config.epochs), steps_per_epoch)
    for v in range(views):
        r, k = divmod(v, branches)
        model = packs[r][k]
        divergence = stopped.get(v)
        kept = divergence["kept_steps"] if divergence else all_losses.shape[1]
        final_state = (
            divergence["state"] if divergence else jax.tree_util.tree_map(lambda leaf, r=r: np.asarray(leaf[r]), state)
        )
        for variable, value in zip(model.trainable_variables, branch_of(list(final_state[0]), k)):
            variable.assign(value)
        if branches == 1:  # (branches share one optimizer, whose state no model holds)
            for variable, value in zip(model.optimizer.variables, final_state[2]):
                variable.assign(value)
        steps = sinks[v].steps
        tracked = TrackedWeights(
            variable_names=names,
            snapshot_steps=steps,
            snapshot_epochs=steps / steps_per_epoch,
            snapshots=sinks[v],
            loss=all_losses[v, :kept],
            epoch=epochs_of_steps[:kept],
            distance_from_init=norms[v, :kept, 0, :],
            update_norm=norms[v, :kept, 1, :],
            weight_norm=norms[v, :kept, 2, :],
        )
        completed_epochs = kept // steps_per_epoch
        model_history = {
            key: values[:completed_epochs]
            for key, values in history[v].items()
            if fit_samples < samples or not key.startswith("val_")
        }
        # Models trained together share the clock: each is charged its share of the time.
        results[r].append(
            FitResult(
                history=model_history,
                epoch_seconds=[t / views for t in epoch_seconds][:completed_epochs],
                train_seconds=train_seconds / views,
                steps=kept,
                tracked=tracked,
                path=TRAINING_PATH,
                diverged={key: value for key, value in divergence.items() if key != "state"} if divergence else None,
            )
        )
    return results
