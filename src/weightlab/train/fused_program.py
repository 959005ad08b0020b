"""The fused path's compiled program: a chunk of training steps as one jitted loop (`lax.fori_loop`), and evaluation.

The Keras model and optimizer are driven statelessly (``stateless_call``, ``stateless_apply``);
programs are cached per architecture and optimizer so that the runs of one process (seeds,
controls, variants) compile once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from weightlab.kernels import adam as adam_kernel
from weightlab.programs import PROGRAMS, architecture_key
from weightlab.train.fused_chunks import first_run, loop_segments, on_host, run_at, to_device
from weightlab.train.norms import step_norms


def why_not(model) -> str | None:
    """Why the fused path cannot drive ``model``, in words; None when it can.

    It drives the trainable weights of a one-output model with one loss, averaged per batch, and
    carries random state (Dropout's seed) from step to step as `model.fit` does: non-trainable
    weights (BatchNormalization's moving statistics, a frozen layer's) and regularisers (losses
    added inside the layers) are `model.fit`'s business.
    """
    stateful = [layer.name for layer in model._flatten_layers(include_self=False) if layer.non_trainable_weights]
    if stateful:
        return (
            f"layer(s) {', '.join(stateful[:4])} hold non-trainable variables "
            "(BatchNormalization statistics, a frozen layer's weights)"
        )
    regularised = [
        layer.name
        for layer in model._flatten_layers(include_self=False)
        if any(
            getattr(layer, kind, None) is not None
            for kind in ("kernel_regularizer", "bias_regularizer", "activity_regularizer")
        )
    ]
    if regularised:
        return f"layer(s) {', '.join(regularised[:4])} add regularisation losses"
    if isinstance(model.output_shape, list) or isinstance(model.loss, (list, dict)):
        return "the model has several outputs or losses"
    mixed = [
        layer.name
        for layer in model._flatten_layers(include_self=True)
        if layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
    ]
    if mixed:  # model.fit scales such a model's loss (LossScaleOptimizer) and casts as the policy says
        return f"layer(s) {', '.join(mixed[:4])} compute in another precision than their weights (a mixed-precision policy)"
    if getattr(model.optimizer, "loss_scale_factor", None) is not None:
        return "its optimizer scales the loss (loss_scale_factor), which model.fit applies before the gradient"
    loss = model.loss
    if getattr(loss, "reduction", "sum_over_batch_size") not in ("sum_over_batch_size", "mean"):
        return f"its loss reduces by {loss.reduction!r}, not the batch mean"
    return None


def slower_than_fit(model) -> str | None:
    """Why `model.fit` trains ``model`` faster than the fused loop here, in words; None when it does not.

    XLA's CPU backend runs a convolution inside a scan (a while loop) 3-5x slower than the same
    jitted step called once per batch, as `model.fit` calls it (measured: 21-31 against 6.3 ms a
    step for the CNN); dense layers run as fast, or faster, in the loop.
    """
    if jax.default_backend() != "cpu":
        return None
    convolutions = [layer.name for layer in model._flatten_layers(include_self=False) if "Conv" in type(layer).__name__]
    if convolutions:
        return (
            f"on the CPU, XLA runs the convolution(s) {', '.join(convolutions[:4])} inside the fused loop 3-5x slower "
            "than model.fit's step per batch (--training-path fused-jax forces the loop)"
        )
    return None


class _Program:
    """The jitted pieces: a chunk of training steps, and an evaluation over a whole array.

    A run is one model or several "branches": models that see the same batches (a comparison's
    variants of one seed) stepped together by one optimizer over all their variables. Branches
    share no weights and each has its own loss, and the optimizer's update is elementwise, so
    each branch trains exactly as it would alone; one program steps them all at once.
    """

    vmap_runs: bool | None = None  # several runs vmapped in one call; None: on an accelerator only (see `chunk`)

    def __init__(self, branches: list, optimizer, batch_size: int, step_stats: bool = True):
        from weightlab.train.keras_fit import example_losses

        # Each branch's own compiled loss, per example; a batch's loss is its mean over the real
        # (unmasked) examples, as model.fit's mean over a batch.
        loss_functions = [example_losses(model) for model in branches]
        bounds = np.cumsum([0] + [len(model.trainable_variables) for model in branches]).tolist()
        fixed = np.cumsum([0] + [len(model.non_trainable_variables) for model in branches]).tolist()

        def branch_outputs(trainable, non_trainable, x, training):
            """Each branch's output probabilities, and the non-trainable state after the call."""
            outputs, state = [], []
            for k, model in enumerate(branches):
                probs, branch_state = model.stateless_call(
                    trainable[bounds[k] : bounds[k + 1]], non_trainable[fixed[k] : fixed[k + 1]], x, training=training
                )
                outputs.append(probs)
                state.extend(branch_state)
            return outputs, state

        def loss_and_outputs(trainable, non_trainable, x, y, mask):
            outputs, non_trainable = branch_outputs(trainable, non_trainable, x, training=True)
            losses = [
                jnp.sum(loss_of(y, probs) * mask) / jnp.sum(mask) for loss_of, probs in zip(loss_functions, outputs)
            ]
            # One model: its own loss, untouched. Branches: the sum, whose gradient for each
            # branch's weights is that branch's own loss's gradient.
            total = losses[0] if len(losses) == 1 else sum(losses)
            return total, (jnp.stack(losses), outputs, non_trainable)

        grad_fn = jax.value_and_grad(loss_and_outputs, has_aux=True)
        # Keras's update, with the fused Adam kernel in it where it serves (kernels.adam).
        apply_gradients = adam_kernel.stateless_apply_for(optimizer, branches)

        norms_shape = (3, bounds[-1])  # a step's norms: three per variable of every branch

        @jax.jit
        def update(trainable, non_trainable, optimizer_vars, x, y, mask, initial, measure):
            """One optimizer step on a batch: the new state, its losses and correct answers, and the norms the
            Adam kernel took (``measure``; None per variable it did not). A jit of its own inside the loop: the
            loop's plain and measured steps call it, and it is traced once, not twice (≈40 ms)."""
            (_, (losses, outputs, non_trainable)), grads = grad_fn(trainable, non_trainable, x, y, mask)
            new_trainable, optimizer_vars, taken = apply_gradients(optimizer_vars, grads, trainable, initial, measure)
            correct = jnp.stack([jnp.sum((jnp.argmax(probs, axis=-1) == y) * mask) for probs in outputs])
            return new_trainable, non_trainable, optimizer_vars, losses, correct, taken

        def train_step(step, carry, indices, masks, x_all, y_all, initial, measure=False):
            """Training step ``step`` of the chunk: the update, its losses and correct answers; also the weights
            before it and the norms the kernel took."""
            (trainable, non_trainable, optimizer_vars), buffers, (losses_out, correct_out, norms_out) = carry
            mask = masks[step]
            x, y = x_all[indices[step]], y_all[indices[step]]
            # ``measure`` is traced inside `update` (a Python bool becomes an array argument): one trace serves both
            new_trainable, non_trainable, optimizer_vars, losses, correct, taken = update(
                trainable, non_trainable, optimizer_vars, x, y, mask, initial, measure and step_stats
            )
            outputs = (losses_out.at[step].set(losses), correct_out.at[step].set(correct), norms_out)
            return ((new_trainable, non_trainable, optimizer_vars), buffers, outputs), trainable, taken

        def segment_end(step, norm_row, carry, indices, masks, slots, x_all, y_all, initial):
            """The last step of a segment: trained, its weight norms written to ``norm_row``, its snapshot taken if it is one."""
            (state, buffers, (losses_out, correct_out, norms_out)), before, taken = train_step(
                step, carry, indices, masks, x_all, y_all, initial, measure=True
            )
            if step_stats:
                norms_out = norms_out.at[norm_row].set(step_norms(state[0], initial, before, taken)[0])
            slot = slots[step]
            buffers = jax.lax.cond(
                slot >= 0,
                lambda held: [
                    jax.lax.dynamic_update_index_in_dim(buffer, weight.astype(buffer.dtype), slot, 0)
                    for buffer, weight in zip(held, state[0])
                ],
                lambda held: list(held),
                buffers,
            )
            return state, buffers, (losses_out, correct_out, norms_out)

        def chunk(state, buffers, indices, masks, ends, norm_rows, segments, slots, x_all, y_all, initial):
            """The chunk's first ``segments`` segments: steps up to ``ends[j]``, the last of them measured.

            The weight norms cost a pass over every weight (≈25-35% of a step on XLA's CPU backend
            however the reductions are arranged: measured), so only the marked steps take them.
            The loop is cut at those steps (`loop_segments`): plain steps in an inner loop with no
            branch at all, then the measured one, its norms and its snapshot. A branch per step
            cost more: a switch carrying the state through its branches made XLA copy it every
            step (6.5 against 3.9 ms a step at hidden width 4,096), and a cond for the norms alone
            kept the old weights alive and cost ≈10% of a step at width 64 (measured). Chunks have
            one padded shape (one compilation); the trip counts are values, so padding is never
            stepped through. Norms of a segment's last step that is not measured go to a scratch row.
            """
            rows = indices.shape[0]
            per_branch = jnp.full((rows, len(branches)), jnp.nan, jnp.float32)
            outputs = (per_branch, per_branch, jnp.full((rows + 1,) + norms_shape, jnp.nan, jnp.float32))

            def segment(j, carry):
                first = jnp.where(j == 0, 0, ends[jnp.maximum(j - 1, 0)] + 1)
                carry = jax.lax.fori_loop(
                    first,
                    ends[j],
                    lambda step, inner: train_step(step, inner, indices, masks, x_all, y_all, initial)[0],
                    carry,
                )
                return segment_end(ends[j], norm_rows[j], carry, indices, masks, slots, x_all, y_all, initial)

            state, buffers, (losses, correct, norms) = jax.lax.fori_loop(
                0, segments, segment, (state, buffers, outputs)
            )
            return state, buffers, (losses, correct, norms[:rows])

        def evaluate(trainable, non_trainable, x, y):
            """Per branch: (loss, accuracy) on (x, y)."""
            outputs, _ = branch_outputs(trainable, non_trainable, x, training=False)
            losses = [jnp.mean(loss_of(y, probs)) for loss_of, probs in zip(loss_functions, outputs)]
            return jnp.stack(losses), jnp.stack([jnp.mean(jnp.argmax(probs, axis=-1) == y) for probs in outputs])

        # Several runs of one architecture (seeds, controls) share the data and batch masks; each
        # has its own weights, optimizer state, data order and labels. On an accelerator they
        # train in one call, vmapped over a leading run axis; on the CPU, side by side in threads
        # (`chunk`). A single run takes the unbatched program, whose arithmetic is exactly
        # model.fit's (a batch of one changes XLA's kernels).
        self.step_stats = step_stats
        self._chunk_one = jax.jit(chunk, donate_argnums=(0, 1))
        self._compiled_one: dict[str, object] = {}  # _chunk_one compiled ahead, by its arguments' shapes
        self._chunk_many = jax.jit(
            jax.vmap(chunk, in_axes=(0, 0, 0, None, None, None, None, None, None, 0, 0)), donate_argnums=(0, 1)
        )
        self._evaluate_one = jax.jit(evaluate)
        self._evaluate_many = jax.jit(jax.vmap(evaluate, in_axes=(0, 0, None, 0)))

    def chunk(self, state, buffers, indices, masks, measured, slots, length, x_all, y_all, initial):
        """Train every run (leading axis of state, buffers, indices, y_all, initial) through a chunk's first ``length`` steps.

        ``measured[t]`` marks a step whose weight norms are taken. The runs' arrays come from the
        host and go back to it, as numpy (`fused_jax` keeps them there between chunks); ``x_all``
        stays on the device. Returns (state, buffers, per-step outputs); ``buffers[v][r, slots[t]]``
        holds run r's variable v after step t where it is a snapshot.
        """
        segments = loop_segments(measured if self.step_stats else np.zeros_like(measured), slots, length)
        if len(indices) == 1:
            return on_host(
                self.run_one(
                    *to_device(first_run((state, buffers))),
                    indices[0],
                    masks,
                    segments,
                    slots,
                    x_all,
                    y_all[0],
                    first_run(initial),
                ),
                run_axis=True,
            )
        if self.vmap_runs or (self.vmap_runs is None and jax.default_backend() != "cpu"):
            return on_host(
                self._chunk_many(*to_device((state, buffers)), indices, masks, *segments, slots, x_all, y_all, initial)
            )
        return self._side_by_side(state, buffers, indices, masks, segments, slots, x_all, y_all, initial)

    def run_one(self, state, buffers, indices, masks, segments, slots, x_all, y, initial):
        """One run's chunk through the unbatched program (``segments`` from `loop_segments`); its state and buffers are donated."""
        return self._chunk_one(state, buffers, indices, masks, *segments, slots, x_all, y, initial)

    def _side_by_side(self, state, buffers, indices, masks, segments, slots, x_all, y_all, initial):
        """`chunk` for several runs on the CPU: each run's unbatched program in a thread of its own.

        One run's step keeps about one core busy; XLA's CPU backend gains little from vmapping
        runs, and each run then computes exactly what it would alone. A thread per run, not per
        core: a run leaves gaps in its core that another fills, and no core idles while a last
        run finishes alone (a comparison's three seeds of two branches on two cores: 533 µs a step
        vmapped, 280 in two threads, 225 in three; measured). The program is compiled here,
        ahead, so that no worker thread traces the Keras model.
        """

        def arguments(run: int) -> tuple:
            run_state, run_buffers = to_device(run_at((state, buffers), run))
            return (
                run_state,
                run_buffers,
                indices[run],
                masks,
                *segments,
                slots,
                x_all,
                y_all[run],
                run_at(initial, run),
            )

        first = arguments(0)
        signature = str(jax.tree_util.tree_map(lambda leaf: (np.shape(leaf), np.dtype(leaf.dtype).str), first))
        if signature not in self._compiled_one:
            self._compiled_one[signature] = self._chunk_one.lower(*first).compile()
        compiled = self._compiled_one[signature]

        def train(run: int):
            return on_host(compiled(*(first if run == 0 else arguments(run))))

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=min(len(indices), 4 * cores)) as pool:
            results = list(pool.map(train, range(len(indices))))
        return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *results)

    def evaluate(self, trainable, non_trainable, x, y):
        """(loss, accuracy) of every run (leading axis of the weights and y, from the host) on the shared x."""
        if len(y) > 1:
            return on_host(self._evaluate_many(trainable, non_trainable, x, y))
        return on_host(self._evaluate_one(first_run(trainable), first_run(non_trainable), x, y[0]), run_axis=True)


def program_for(branches: list, optimizer, batch_size: int, step_stats: bool) -> _Program:
    """A compiled program for these branches' architectures and this optimizer, reused across runs (seeds, controls).

    The program drives whatever variable values it is given through the first models' layers
    and optimizer, so any models with the same configuration can use it; reuse saves the
    compilation (≈1 s) for every run after the first in a process.
    """
    import json

    key = (
        "training",
        tuple(architecture_key(model) for model in branches),  # a loss given as a function: the function itself
        json.dumps([optimizer.get_config(), batch_size, step_stats], sort_keys=True, default=str),
    )
    return PROGRAMS.built(key, lambda: _Program(branches, optimizer, batch_size, step_stats))
