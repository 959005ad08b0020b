"""Every snapshot evaluated: test loss, test accuracy, and the panel's predicted probabilities.

On JAX (and for any Keras model) all snapshots go through one jitted program: ``lax.map``
over a block of snapshots, and for each a ``lax.scan`` over the test set in batches, so a
convnet's activations stay within one batch's memory. Snapshots are read from their store in
blocks of at most `BLOCK_SNAPSHOTS` and `BLOCK_BYTES`, so memory does not grow with their number;
one compilation serves every block (the last is padded). A block is scored on its own
(`score_block`), so a run's first blocks can be scored while it still trains
(`experiments.ahead.EarlyScores`) and the rest afterwards (``start``). On other backends each
snapshot is loaded into the model and predicted in a Python loop (Keras has no batched stateless
call there).

A model with non-trainable state (batch-norm statistics) is evaluated with its final state
at every snapshot: the snapshots hold the trainable variables only.
"""

from __future__ import annotations

import numpy as np

from weightlab.train.snapshots import Snapshots

BLOCK_BYTES = 64 << 20
# Snapshots are scored one after another inside a block (`lax.map`), so a block's size changes only
# the padding of the last block and the grain at which scoring can start during training.
BLOCK_SNAPSHOTS = 8
ACTIVATION_BYTES = 256 << 20  # a test batch's layer outputs: the batch is as large as they allow
SMALLEST_BATCH = 500  # where a model's layer outputs cannot be read off it


def snapshot_block_size(snapshots: Snapshots, budget: int = BLOCK_BYTES) -> int:
    """How many snapshots one block holds within ``budget`` bytes (at least one)."""
    return block_size(snapshots.count, snapshots.bytes_per_snapshot(), budget)


def block_size(count: int, bytes_per_snapshot: int, budget: int = BLOCK_BYTES) -> int:
    """How many of ``count`` snapshots of ``bytes_per_snapshot`` one block holds: at most `BLOCK_SNAPSHOTS`, within
    ``budget`` bytes, and at least one."""
    return max(1, min(count, BLOCK_SNAPSHOTS, budget // max(1, bytes_per_snapshot)))


def stored_bytes(model) -> int:
    """The bytes of one snapshot of ``model`` as a store holds it (float32)."""
    return sum(4 * int(np.prod(v.shape)) for v in model.trainable_variables)


def test_batch(model, examples: int, budget: int | None = None) -> int:
    """How many test examples one step of the evaluation takes: as many as ``budget`` holds of every layer's outputs.

    Larger batches make larger matrix products, which XLA runs faster (48 snapshots of the
    tutorial's MLP: 0.15 s in one batch of 10,000, 0.19-0.30 s in batches of 500; measured); a
    convnet's feature maps keep its batches small. A model whose layer outputs cannot be read
    off it (a subclassed model) takes `SMALLEST_BATCH`.
    """
    try:
        floats = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    except (AttributeError, ValueError, TypeError):
        floats = 0
    if not floats:
        return min(examples, SMALLEST_BATCH)
    per_example = 4 * 2 * floats  # float32, and room for the step's temporaries
    return int(min(examples, max(SMALLEST_BATCH, (ACTIVATION_BYTES if budget is None else budget) // per_example)))


def evaluate_snapshots(
    model, snapshots: Snapshots, x: np.ndarray, y: np.ndarray, panel_x: np.ndarray, start: int = 0
) -> dict:
    """{"loss": (n,) float64, "accuracy": (n,) float64, "panel_probabilities": (n, P, classes) float32} of the
    n snapshots from ``start`` (< their count) on.

    The loss is the model's own compiled loss (`keras_fit.example_losses`) averaged over (x, y), as
    `keras_fit.evaluate` measures it; the accuracy the fraction whose most probable class is the label.
    """
    import keras

    if keras.backend.backend() == "jax":
        return _evaluate_jax(model, snapshots, x, y, panel_x, start)
    return _evaluate_by_loop(model, snapshots, x, y, panel_x, start)


def score_block(model, stacks: list[np.ndarray], size: int, x, y: np.ndarray, panel_x: np.ndarray) -> dict:
    """`evaluate_snapshots`'s scores of one block: ``stacks`` holds each trainable variable's snapshots
    stacked (at most ``size`` of them; the program is compiled for ``size``, and a shorter block padded). JAX only."""
    real = len(stacks[0])
    if real < size:  # pad to the block size: one compilation for every block
        stacks = [np.concatenate([s, np.repeat(s[-1:], size - real, axis=0)]) for s in stacks]
    inputs = _inputs(x, y, panel_x)
    program = _block_program(model, _stack_shapes(model, size, stacks[0].dtype), inputs)
    loss_sums, correct_sums, panel_probabilities = program(stacks)
    return {
        "loss": np.asarray(loss_sums, dtype=np.float64)[:real].sum(axis=1) / len(x),
        "accuracy": np.asarray(correct_sums, dtype=np.float64)[:real].sum(axis=1) / len(x),
        "panel_probabilities": np.asarray(panel_probabilities, dtype=np.float32)[:real],
    }


def joined(parts: list[dict]) -> dict:
    """Scores of consecutive blocks (`score_block`, `evaluate_snapshots`) as one."""
    return {key: np.concatenate([part[key] for part in parts]) for key in ("loss", "accuracy", "panel_probabilities")}


def compile_ahead(model, count: int, x: np.ndarray, y: np.ndarray, panel_x: np.ndarray) -> None:
    """Compile (or load) the program `evaluate_snapshots` will run for ``count`` snapshots of ``model`` on these arrays.

    For `experiments.ahead`, while the runs train: only the snapshots' shapes are needed.
    """
    import keras

    if keras.backend.backend() == "jax":
        stacks = _stack_shapes(model, block_size(count, stored_bytes(model)), np.float32)
        _block_program(model, stacks, _inputs(x, y, panel_x))


def _inputs(x, y, panel_x) -> tuple:
    """(x, y, panel inputs): the evaluation's arrays after the snapshots' and the state. ``x`` may be on the
    device already (a run's finish puts its test set there once for all its evaluations) and stays there."""
    return x, np.asarray(y).astype(np.int32, copy=False), panel_x  # labels already int32 are not copied per block


def _stack_shapes(model, size: int, dtype) -> list:
    """A block of ``size`` snapshots' shapes, as the program takes them."""
    import jax

    return [jax.ShapeDtypeStruct((size, *v.shape), dtype) for v in model.trainable_variables]


def _block_program(model, stacks: list, inputs: tuple):
    """The evaluation of a block of snapshots, compiled for these arguments' shapes; shared by every model of ``model``'s architecture."""
    from weightlab.programs import PROGRAMS, architecture_key

    non_trainable = [v.value for v in model.non_trainable_variables]
    batch = test_batch(model, inputs[0].shape[0])
    key = ("snapshots", architecture_key(model), batch)
    compiled = PROGRAMS.compiled(key, lambda: _compile(model, batch), (stacks, non_trainable, *inputs))
    return lambda stacks: compiled(stacks, non_trainable, *inputs)


def _compile(model, batch: int):
    import jax
    import jax.numpy as jnp

    from weightlab.train.keras_fit import example_losses

    loss_of = example_losses(model)

    def batched(x, y):
        """(x, y, mask) cut into (batches, batch, …), the last batch padded with masked copies of row 0."""
        examples = x.shape[0]
        batches = -(-examples // batch)
        pad = batches * batch - examples
        mask = jnp.concatenate([jnp.ones(examples, jnp.float32), jnp.zeros(pad, jnp.float32)])
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)])
            y = jnp.concatenate([y, jnp.repeat(y[:1], pad, axis=0)])
        return x.reshape((batches, batch) + x.shape[1:]), y.reshape(batches, batch), mask.reshape(batches, batch)

    def one_snapshot(trainable, non_trainable, batches, panel_x):
        def batch(totals, inputs):
            x, y, mask = inputs
            probabilities, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            losses = loss_of(y, probabilities)
            correct = (jnp.argmax(probabilities, axis=-1) == y).astype(jnp.float32)
            return totals, (jnp.sum(losses * mask), jnp.sum(correct * mask))

        _, (loss_sums, correct_sums) = jax.lax.scan(batch, 0.0, batches)
        panel, _ = model.stateless_call(trainable, non_trainable, panel_x, training=False)
        return loss_sums, correct_sums, panel

    def block(stacks, non_trainable, x, y, panel_x):
        batches = batched(x, y)
        return jax.lax.map(lambda trainable: one_snapshot(trainable, non_trainable, batches, panel_x), stacks)

    return jax.jit(block)


def _evaluate_jax(model, snapshots: Snapshots, x, y, panel_x, start: int = 0) -> dict:
    import jax

    # The inputs go to the device once for every block (`device_put`: no staging program per shape);
    # the labels stay on the host, where `score_block` takes them as int32.
    x, panel_x = jax.device_put(x), jax.device_put(panel_x)
    y = np.asarray(y).astype(np.int32)
    size = snapshot_block_size(snapshots)
    parts = [
        score_block(model, snapshots.block(first, min(first + size, snapshots.count)), size, x, y, panel_x)
        for first in range(start, snapshots.count, size)
    ]
    return joined(parts)


def _evaluate_by_loop(model, snapshots: Snapshots, x, y, panel_x, start: int = 0) -> dict:
    from weightlab.train.keras_fit import predict, scores

    kept = [np.array(v.value) for v in model.trainable_variables]
    losses, accuracies, probabilities = [], [], []
    try:
        for index in range(start, snapshots.count):
            for variable, value in zip(model.trainable_variables, snapshots.at(index)):
                variable.assign(value)
            loss, accuracy = scores(predict(model, x), y, model)
            losses.append(loss)
            accuracies.append(accuracy)
            probabilities.append(np.asarray(predict(model, panel_x), dtype=np.float32))
    finally:
        for variable, value in zip(model.trainable_variables, kept):
            variable.assign(value)
    return {
        "loss": np.asarray(losses, dtype=np.float64),
        "accuracy": np.asarray(accuracies, dtype=np.float64),
        "panel_probabilities": np.stack(probabilities),
    }
