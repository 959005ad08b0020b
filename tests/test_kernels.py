"""The fused Adam kernel: bit for bit Keras's Adam where it serves, Keras's own update everywhere else."""

import hashlib
import shutil

import jax
import numpy as np
import pytest

from weightlab.backend import keras_for

keras = keras_for("jax")
from conftest import adam_kernel_ready  # noqa: E402
from weightlab.kernels import adam, build  # noqa: E402


def model(inputs=300, widths=(200, 180, 10), dtype="float32"):
    """Dense kernels of 60,000 and 36,000 weights (above adam.SMALLEST; neither a whole number of the kernel's
    blocks), and a small one and the biases below it."""
    layers = [keras.layers.Dense(width, dtype=dtype) for width in widths]
    return keras.Sequential([keras.Input((inputs,)), *layers])


@pytest.fixture(scope="module")
def ready():
    if not adam_kernel_ready():
        pytest.skip(adam.REFUSED)


def stepped(optimizer, steps=4, kernel=True, seed=0, **shape):
    """A model's weights and optimizer state after ``steps`` jitted updates, through the kernel or Keras's update."""
    keras.utils.set_random_seed(seed)
    net = model(**shape)
    rng = np.random.default_rng(seed)
    magnitudes = [10.0 ** rng.uniform(-6, 1, v.shape) for v in net.trainable_variables]
    optimizer.build(net.trainable_variables)
    apply = adam.stateless_apply_for(optimizer, [net]) if kernel else optimizer.stateless_apply
    step = jax.jit(lambda state, weights, grads: apply(state, grads, weights)[:2])
    state = [v.value for v in optimizer.variables]
    weights = [
        (rng.standard_normal(v.shape) * m).astype(np.float32) for v, m in zip(net.trainable_variables, magnitudes)
    ]
    for _ in range(steps):
        grads = [(rng.standard_normal(m.shape) * m[::-1]).astype(np.float32) for m in magnitudes]
        weights, state = step(state, weights, grads)
    return [np.asarray(values) for values in (*weights, *state)]


def kernel_calls(optimizer, net) -> int:
    """How many variables the traced update hands to the kernel."""
    optimizer.build(net.trainable_variables)
    apply = adam.stateless_apply_for(optimizer, [net])
    values = [v.value for v in net.trainable_variables]
    jaxpr = jax.make_jaxpr(lambda s, w, g: apply(s, g, w)[:2])([v.value for v in optimizer.variables], values, values)
    return str(jaxpr).count(adam.TARGET)


OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(learning_rate=3e-3),
    "adamw": lambda: keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01),
    "adam, schedule": lambda: keras.optimizers.Adam(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=2, decay_rate=0.5),
        beta_1=0.8,
        beta_2=0.99,
        epsilon=1e-5,
    ),
    "adam, accumulated": lambda: keras.optimizers.Adam(gradient_accumulation_steps=3),
    "adam, values clipped": lambda: keras.optimizers.Adam(clipvalue=0.01),
}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_kernel_updates_equal_kerass_adam_bit_for_bit(ready, make):
    assert kernel_calls(make(), model()) == 2  # it serves both large kernels: this is not Keras against itself
    for fused, plain in zip(stepped(make()), stepped(make(), kernel=False), strict=True):
        assert np.array_equal(fused, plain)


def test_runs_vmapped_through_the_kernel_equal_each_run_alone(ready):
    net, optimizer = model(widths=(200,)), keras.optimizers.Adam(learning_rate=3e-3)
    optimizer.build(net.trainable_variables)
    apply = adam.stateless_apply_for(optimizer, [net])
    rng = np.random.default_rng(1)
    runs = 3
    weights = [rng.standard_normal((runs, *v.shape)).astype(np.float32) for v in net.trainable_variables]
    grads = [rng.standard_normal((runs, *v.shape)).astype(np.float32) for v in net.trainable_variables]
    state = [np.stack([np.asarray(v.value)] * runs) for v in optimizer.variables]
    step = jax.jit(lambda s, w, g: apply(s, g, w, w, True))  # measured: the norms come back per run too
    together = jax.jit(jax.vmap(lambda s, w, g: apply(s, g, w, w, True)))(state, weights, grads)
    for run in range(runs):
        alone = step(*([leaf[run] for leaf in tree] for tree in (state, weights, grads)))
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together), strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b)[run])


def test_norms_taken_in_the_update_are_numpys_and_change_nothing_else(ready):
    keras.utils.set_random_seed(0)
    net, optimizer = model(), keras.optimizers.Adam(learning_rate=0.05)
    optimizer.build(net.trainable_variables)
    apply = adam.stateless_apply_for(optimizer, [net])
    rng = np.random.default_rng(3)
    initial = [rng.standard_normal(v.shape).astype(np.float32) for v in net.trainable_variables]
    weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in initial]
    grads = [rng.standard_normal(w.shape).astype(np.float32) for w in initial]
    state = [v.value for v in optimizer.variables]
    measured = jax.jit(lambda s, w, g, i: apply(s, g, w, i, True))(state, weights, grads, initial)
    plain = jax.jit(lambda s, w, g, i: apply(s, g, w, i, False))(state, weights, grads, initial)
    for a, b in zip(jax.tree.leaves(measured[:2]), jax.tree.leaves(plain[:2]), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))  # measuring changes no bit of the update
    served = [id(v) in adam.served_variables([net]) for v in net.trainable_variables]
    assert served == [True, False, True, False, False, False]
    assert [n is None for n in measured[2]] == [n is None for n in plain[2]] == [not s for s in served]
    assert all(np.isnan(n).all() for n in plain[2] if n is not None)  # not measured: NaN, as the loop's other rows
    for after, before, start, norms in zip(measured[0], weights, initial, measured[2]):
        if norms is not None:
            after, before, start = (np.asarray(a, np.float64) for a in (after, before, start))
            expected = [np.linalg.norm(after - start), np.linalg.norm(after - before), np.linalg.norm(after)]
            np.testing.assert_allclose(np.asarray(norms), expected, rtol=1e-6)


def test_what_the_kernel_does_not_serve_keeps_kerass_update(ready):
    assert kernel_calls(keras.optimizers.Adam(), model(widths=(100, 10))) == 0  # 30,000 weights: below SMALLEST
    assert kernel_calls(keras.optimizers.Adam(), model(dtype="float16")) == 0
    for other in (
        keras.optimizers.Adam(amsgrad=True),
        keras.optimizers.Adam(clipnorm=1.0),  # XLA fuses the scaled gradient into its update: other rounding
        keras.optimizers.Adam(global_clipnorm=1.0),
        keras.optimizers.SGD(),
        keras.optimizers.RMSprop(),
    ):
        assert not adam.serves(other) and kernel_calls(other, model()) == 0

    class OwnUpdate(keras.optimizers.Adam):  # a subclass with an update of its own is not Adam's any more
        def update_step(self, gradient, variable, learning_rate):
            self.assign_sub(variable, gradient * learning_rate)

    assert not adam.serves(OwnUpdate())


def test_clipped_norms_would_round_differently_through_the_kernel(ready, monkeypatch):
    """Why clipnorm is not served: forced through the kernel, the last bits differ from Keras's update."""
    monkeypatch.setattr(adam, "serves", lambda optimizer: True)
    fused = stepped(keras.optimizers.Adam(clipnorm=0.5))
    plain = stepped(keras.optimizers.Adam(clipnorm=0.5), kernel=False)
    assert not all(np.array_equal(a, b) for a, b in zip(fused, plain, strict=True))


def test_turned_off_the_kernel_says_so_and_keras_updates(monkeypatch):
    monkeypatch.setenv("WEIGHTLAB_KERNELS", "0")
    readiness = adam._prepare()
    assert not readiness.ready and "WEIGHTLAB_KERNELS=0" in readiness.reason


@pytest.mark.slow
def test_without_a_compiler_readiness_says_why(home, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", "")
    readiness = adam._prepare()
    assert not readiness.ready and "no C++ compiler" in readiness.reason


def test_norms_are_left_to_the_loop_where_keras_changes_the_weight_around_the_update(ready):
    """Weight decay (before the update), a constraint (after it), accumulation (updates computed and dropped) and
    an EMA written over the weights: the kernel still updates, but the weights it sees are not W_{t-1} and W_t."""

    def taken(optimizer, constraint=None) -> list[bool]:
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((300,)), keras.layers.Dense(200, kernel_constraint=constraint)])
        optimizer.build(net.trainable_variables)
        apply = adam.stateless_apply_for(optimizer, [net])
        values = [v.value for v in net.trainable_variables]
        state = [v.value for v in optimizer.variables]
        norms = jax.jit(lambda s, w, g, i: apply(s, g, w, i, True)[2])(state, values, values, values)
        return [n is not None for n in norms]

    assert taken(keras.optimizers.Adam()) == [True, False]
    assert taken(keras.optimizers.AdamW(weight_decay=0.01)) == [False, False]
    assert taken(keras.optimizers.Adam(gradient_accumulation_steps=2)) == [False, False]
    assert taken(keras.optimizers.Adam(use_ema=True)) == [False, False]
    assert taken(keras.optimizers.Adam(), constraint=keras.constraints.MaxNorm(1.0)) == [False, False]


@pytest.mark.slow
def test_a_damaged_library_is_built_again_and_a_verdict_is_remembered(home):
    path = build.compiled("adam")
    built = path.read_bytes()
    # Damage goes in as a new file: this process has the library mapped (it was loaded when built), and
    # rewriting a mapped library in place makes the process fault when it touches it (SIGBUS at exit).
    path.unlink()
    path.write_bytes(built[: len(built) // 2])  # truncated: its digest no longer matches
    assert build.compiled("adam") == path and path.read_bytes() == built
    path.unlink()
    path.write_bytes(b"not a library")  # and a digest that matches it: loads as nothing, so it is built again
    path.with_suffix(".sha256").write_text(hashlib.sha256(b"not a library").hexdigest())
    loaded, again = build.library("adam", adam.HANDLER)
    assert again == path and path.read_bytes() == built and getattr(loaded, adam.HANDLER)
    checks = []

    def check() -> bool:
        checks.append(1)
        return True

    assert build.verdict(path, check) and build.verdict(path, check) and len(checks) == 1
    (remembered,) = path.parent.glob("adam-*.agrees-*")
    remembered.write_text("garbage")  # not a verdict: checked again
    assert build.verdict(path, check) and len(checks) == 2 and remembered.read_text() == "true"


@pytest.mark.slow
@pytest.mark.parametrize(
    "compiler, reason",
    [("true", "could not load"), ("junk", "could not load"), ("", "no C\\+\\+ compiler")],
    ids=["writes-nothing", "writes-garbage", "none"],
)
def test_a_compiler_that_fails_leaves_keras_update_and_caches_nothing(home, monkeypatch, tmp_path, compiler, reason):
    if compiler == "junk":
        script = tmp_path / "junk"
        script.write_text('#!/bin/sh\nfor a; do o="$a"; done\necho garbage > "$o"\n')
        script.chmod(0o755)
        compiler = str(script)
    elif compiler == "":
        monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CXX", compiler)
    with pytest.raises(build.KernelUnavailable, match=reason):
        build.library("adam", adam.HANDLER)
    assert not list((home / "kernels").glob("*.so")) if (home / "kernels").exists() else True


@pytest.mark.slow
def test_a_compiler_with_arguments_and_an_unwritable_cache(home, monkeypatch):
    monkeypatch.setenv("CXX", f"{shutil.which('c++') or shutil.which('g++')} -m64")
    assert build.library("adam", adam.HANDLER)[1].parent == home / "kernels"
    monkeypatch.setenv("WEIGHTLAB_HOME", str(home / "kernels" / build.compiled("adam").name))  # a file
    with pytest.raises(build.KernelUnavailable, match="could not build"):
        build.compiled("adam")
