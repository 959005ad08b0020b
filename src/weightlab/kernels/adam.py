"""Adam's update of a large float32 kernel in one pass over memory: the fused kernel (``adam.cc``) in Keras's place.

XLA's CPU backend compiles Keras's ``Adam.update_step`` into three loops; at hidden width 4,096
they take a third of a training step, bound by memory bandwidth. The kernel reads each weight,
gradient and moment once, and on a measured step takes the weight norms in the same pass.
`stateless_apply_for` gives ``optimizer.stateless_apply`` with the kernel standing in for
``update_step`` on the variables it serves — everything around it (gradient clipping by value,
weight decay, accumulation, the learning rate and its schedule) stays Keras's.

It is used only where it is `ready`: built, loaded, and found to compute bit for bit what
Keras's own update computes, on this machine, before the first training step (`_agrees`).
Elsewhere — no compiler, another platform, a CPU whose XLA rounds differently — Keras's update
runs, and the results are the same, only slower.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field

import numpy as np

TARGET = "weightlab_adam_update"
HANDLER = "WeightlabAdamUpdate"  # the symbol adam.cc defines
REFUSED = "the kernel's results differ from Keras's Adam on this machine"
# Below this many weights XLA's three loops stay in cache and the kernel gains little: the
# tutorial's 784×64 kernel (50,176) is above it, its biases and 64×10 kernel below.
SMALLEST = 1 << 15


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # why not, in words; "" when ready


@dataclass
class _Step:
    """What the kernel is given for one traced update, and the norms it hands back."""

    served: set[int]  # ids of the variables it updates
    initial: dict[int, object] = field(default_factory=dict)  # W_0 by variable id, on a measured step
    measure: object = 0  # nonzero: take the norms
    norms: dict[int, object] = field(default_factory=dict)  # (3,) by variable id, filled while tracing


def stateless_apply_for(optimizer, models: list):
    """``optimizer``'s update as ``apply(optimizer_variables, grads, trainable_variables, initial=None, measure=False)``,
    with the fused kernel in it where it serves.

    ``apply`` returns ``(trainable_variables, optimizer_variables, norms)`` like
    ``optimizer.stateless_apply`` with one more list: per trainable variable, its (3,) norms
    ‖W_t − W_0‖, ‖W_t − W_{t−1}‖, ‖W_t‖ where the kernel took them (``measure`` true and
    ``initial`` the W_0 of every variable), else None — the caller takes those itself.

    ``models`` are those whose variables ``optimizer`` steps: where the kernel `serves`
    ``optimizer`` it updates the large float32 kernels of their Dense and convolution layers
    (`served_variables`). Decided here, before any program is traced (the check runs programs of
    its own); ``apply`` is called while the training step is traced, and the kernel replaces
    ``optimizer.update_step`` for the length of that call only.
    """
    served = served_variables(models) if serves(optimizer) else set()

    def apply(optimizer_variables, grads, trainable_variables, initial=None, measure=False):
        if not served:
            new_trainable, new_optimizer = optimizer.stateless_apply(optimizer_variables, grads, trainable_variables)
            return new_trainable, new_optimizer, [None] * len(new_trainable)
        variables = optimizer._trainable_variables
        step = _Step(served, measure=measure)
        if initial is not None:
            step.initial = {id(variable): values for variable, values in zip(variables, initial)}
        with _kernel_steps(optimizer, step):
            new_trainable, new_optimizer = optimizer.stateless_apply(optimizer_variables, grads, trainable_variables)
        return new_trainable, new_optimizer, [step.norms.get(id(variable)) for variable in variables]

    return apply


def serves(optimizer) -> bool:
    """Whether the kernel takes over ``optimizer``'s update of the variables it serves.

    Keras's Adam and its subclasses that keep its update (AdamW decays the weights before it),
    without amsgrad, on the CPU, once the kernel is `ready`. Not with ``clipnorm`` or
    ``global_clipnorm``: there XLA fuses the gradient's scaling into its update loops and
    rounds the product inside a multiply-add, which the kernel, handed the scaled gradient,
    cannot (measured: the last bits differ).
    """
    import jax
    import keras

    return (
        type(optimizer).update_step is keras.optimizers.Adam.update_step
        and not optimizer.amsgrad
        and optimizer.clipnorm is None
        and optimizer.global_clipnorm is None
        and jax.default_backend() == "cpu"
        and readiness().ready
    )


def served_variables(models: list) -> set[int]:
    """The ids of the variables the kernel updates: the trainable float32 kernels of at least `SMALLEST` weights of
    Dense, EinsumDense and convolution layers.

    Their gradients are matrix products, which XLA never fuses into the update that reads them,
    so the kernel, handed the same gradient, rounds exactly as XLA's loops do. A weight whose
    gradient ends in an elementwise operation could be fused into XLA's update and rounded
    inside a multiply-add there; those keep Keras's update.
    """
    import keras
    from keras.src.layers.convolutional.base_conv import BaseConv

    kinds = (keras.layers.Dense, keras.layers.EinsumDense, BaseConv)
    return {
        id(layer.kernel)
        for model in models
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, kinds)
        and getattr(layer, "kernel", None) is not None
        and layer.kernel.trainable
        and layer.kernel.dtype == "float32"
        and math.prod(layer.kernel.shape) >= SMALLEST
    }


def readiness() -> Readiness:
    """Whether the kernel is built, loaded and agrees with Keras's Adam here; checked once a process."""
    from weightlab.programs import PROGRAMS

    return PROGRAMS.built(("kernel", TARGET), _prepare)


def _prepare() -> Readiness:
    import jax

    from weightlab.kernels.build import KernelUnavailable, library, verdict

    if os.environ.get("WEIGHTLAB_KERNELS") == "0":
        return Readiness(False, "turned off (WEIGHTLAB_KERNELS=0)")
    try:
        loaded, path = library("adam", HANDLER)
    except KernelUnavailable as error:
        return Readiness(False, str(error))
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(getattr(loaded, HANDLER)), platform="cpu")
    try:
        agrees = verdict(path, _agrees)
    except Exception as error:  # a check that cannot run proves nothing: Keras's update is always safe
        return Readiness(False, f"the check against Keras's Adam could not run: {error}")
    if not agrees:
        return Readiness(False, REFUSED)
    return Readiness(True, "")


@contextlib.contextmanager
def _kernel_steps(optimizer, step: _Step):
    optimizer.update_step = lambda gradient, variable, learning_rate: (
        _update_step(optimizer, gradient, variable, learning_rate, step)
        if id(variable) in step.served
        else type(optimizer).update_step(optimizer, gradient, variable, learning_rate)
    )
    try:
        yield
    finally:
        del optimizer.update_step


def _update_step(optimizer, gradient, variable, learning_rate, step: _Step):
    """Keras's ``Adam.update_step``, the moments and the weight updated by the kernel in one pass."""
    import jax
    import jax.numpy as jnp
    from keras import ops

    # The step size as Keras's Adam.update_step computes it, in the variable's dtype.
    lr = ops.cast(learning_rate, variable.dtype)
    local_step = ops.cast(optimizer.iterations + 1, variable.dtype)
    beta_1_power = ops.power(ops.cast(optimizer.beta_1, variable.dtype), local_step)
    beta_2_power = ops.power(ops.cast(optimizer.beta_2, variable.dtype), local_step)
    alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    # Keras multiplies by 1 - beta and adds epsilon as Python floats, which XLA rounds to float32.
    rest = np.float32([1 - optimizer.beta_1, 1 - optimizer.beta_2, optimizer.epsilon])
    index = optimizer._get_variable_index(variable)
    m, v = optimizer._momentums[index], optimizer._velocities[index]
    initial = step.initial.get(id(variable)) if _before_and_after(optimizer, variable) else None
    measure = jnp.asarray(step.measure if initial is not None else 0, jnp.int32)
    shape = jax.ShapeDtypeStruct(variable.shape, jnp.float32)
    kernel = jax.ffi.ffi_call(
        TARGET,
        (shape, shape, shape, jax.ShapeDtypeStruct((3,), jnp.float32)),
        input_output_aliases={4: 0, 5: 1, 6: 2},
        vmap_method="sequential",
    )
    weight, first, second, norms = kernel(
        ops.cast(gradient, "float32"),
        jnp.concatenate([jnp.reshape(alpha, (1,)), rest]),
        measure,
        jnp.zeros((0,), jnp.float32) if initial is None else initial,  # read only when measured
        variable.value,
        m.value,
        v.value,
    )
    optimizer.assign(m, first)
    optimizer.assign(v, second)
    optimizer.assign(variable, weight)
    if initial is not None:
        step.norms[id(variable)] = norms


def _before_and_after(optimizer, variable) -> bool:
    """Whether the weight ``update_step`` is handed is the step's W_{t−1} and the one it writes the step's W_t.

    The kernel's norms assume it. Not so where Keras changes the weight around the update: weight
    decay (before it), a constraint (after it), an exponential moving average written over the
    weights, or gradient accumulation (whose steps compute an update and then drop it). There the
    loop takes the norms from the weights themselves.
    """
    decayed = optimizer.weight_decay is not None and optimizer._use_weight_decay(variable)
    return not (
        decayed
        or getattr(variable, "constraint", None) is not None
        or optimizer.use_ema
        or optimizer.gradient_accumulation_steps
    )


def _agrees() -> bool:
    """Whether three kernel steps equal three of Keras's own Adam steps bit for bit, on weights of many magnitudes.

    The kernel writes the multiply-adds XLA fuses on a CPU with FMA; a machine or XLA version
    that fuses others would round differently, and the run would no longer be `model.fit`'s.
    Every step is measured too: taking the norms must not change the update.
    """
    import jax
    import keras

    rng = np.random.default_rng(0)
    size = SMALLEST + 1_003  # several blocks, and a remainder for every vector width
    magnitudes = 10.0 ** rng.uniform(-8, 2, size)
    weights = (rng.standard_normal(size) * magnitudes).astype(np.float32)
    gradients = [(rng.standard_normal(size) * magnitudes[::-1]).astype(np.float32) for _ in range(3)]
    variable = keras.Variable(weights)
    optimizer = keras.optimizers.Adam(learning_rate=3e-3)
    optimizer.build([variable])

    def kernel_update(state, trained, grads):
        with _kernel_steps(optimizer, _Step({id(variable)}, initial={id(variable): weights}, measure=1)):
            return optimizer.stateless_apply(state, grads, trained)

    def three_steps(update) -> list[np.ndarray]:
        step = jax.jit(lambda state, trained, gradient: update(state, trained, [gradient]))
        state, trained = [v.value for v in optimizer.variables], [variable.value]
        for gradient in gradients:
            trained, state = step(state, trained, gradient)
        return [np.asarray(values) for values in (*trained, *state)]

    fused = three_steps(kernel_update)
    plain = three_steps(lambda state, trained, grads: optimizer.stateless_apply(state, grads, trained))
    return all(np.array_equal(a, b) for a, b in zip(fused, plain))
