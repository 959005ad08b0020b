"""Compiled programs: shared per key and signature across threads, and compiled ahead exactly as the finish needs them."""

import threading
import time

import numpy as np
import pytest

from weightlab import programs
from weightlab.programs import Programs, signature


def test_a_program_compiled_from_several_threads_at_once_is_traced_and_compiled_once():
    import jax

    traces = []

    def build():
        def slow_square(x):
            traces.append(1)
            time.sleep(0.2)  # long enough for every thread to ask while the first compiles
            return x * x

        return jax.jit(slow_square)

    cache = Programs()
    arguments = (np.ones(3, np.float32),)
    found = []
    threads = [
        threading.Thread(target=lambda: found.append(cache.compiled("square", build, arguments))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(traces) == 1 and all(executable is found[0] for executable in found)
    assert cache.compilations() == 1
    assert np.array_equal(found[0](np.full(3, 2.0, np.float32)), np.full(3, 4.0))


def test_a_build_may_ask_for_other_programs_and_builds_of_one_key_run_once():
    """A training program's build asks whether a kernel is ready (another key): it must not wait on itself."""
    cache = Programs()
    builds = []

    def outer():
        builds.append("outer")
        time.sleep(0.1)  # the other threads ask while this build runs
        return cache.built("inner", lambda: builds.append("inner") or 1) + 1

    found = []
    threads = [
        threading.Thread(target=lambda: found.append(cache.built("outer", outer)), daemon=True) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a nested build waited on the cache's lock"
    assert found == [2, 2, 2] and builds == ["outer", "inner"]


def test_shapes_given_ahead_and_the_arrays_later_have_one_signature():
    import jax

    arrays = ([np.zeros((2, 3), np.float32)], np.zeros(5, np.int64))  # int64 is int32 to JAX
    shapes = ([jax.ShapeDtypeStruct((2, 3), np.float32)], jax.ShapeDtypeStruct((5,), np.int32))
    assert signature(arrays) == signature(shapes)
    assert signature(arrays) != signature(([np.zeros((3, 2), np.float32)], np.zeros(5, np.int64)))
    assert signature(arrays) != signature((np.zeros((2, 3), np.float32), np.zeros(5, np.int64)))  # another structure


def test_a_failed_compilation_is_tried_again_by_the_next_caller():
    import jax

    attempts = []

    def build():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the first build fails")
        return jax.jit(lambda x: x + 1)

    cache = Programs()
    with pytest.raises(RuntimeError):
        cache.compiled("flaky", build, (np.zeros(2, np.float32),))
    assert np.array_equal(cache.compiled("flaky", build, (np.zeros(2, np.float32),))(np.zeros(2, np.float32)), [1, 1])


def test_the_finish_compiles_nothing_its_preparation_did_not(monkeypatch, tmp_path):
    """Every program a run's finish runs on JAX — predictions, losses, the snapshots' evaluation, the landscape —
    is one of `finish_steps` compiled ahead, for the same shapes: otherwise the preparation saved nothing."""
    from weightlab.config import RunConfig
    from weightlab.evaluation.landscape import landscape
    from weightlab.experiments import run as run_module
    from weightlab.experiments.ahead import finish_steps
    from weightlab.experiments.finish import evaluated_snapshots
    from weightlab.models import input_shape
    from weightlab.train.keras_fit import evaluate, predict, scores, steps_per_epoch, to_inputs
    from weightlab.train.schedule import snapshot_schedule
    from weightlab.train.snapshots import MemorySnapshots
    from weightlab.train.tracker import variable_names

    fresh = Programs()
    monkeypatch.setattr(programs, "PROGRAMS", fresh)
    monkeypatch.setattr("weightlab.evaluation.outputs.PROGRAMS", fresh)
    config = RunConfig(dataset="synthetic", epochs=2, hidden=[7], snapshots=9).resolved()
    keras, dataset = run_module.keras_and_data(config, tmp_path)
    model, x_train, y_train, _ = run_module.prepare(keras, config, dataset)

    for step in finish_steps([model], config, dataset, landscape=True, report=False):
        step()
    prepared = fresh.compilations()
    assert prepared >= 5  # predictions, losses, snapshots on the test set, the grid, the path's losses

    samples, fit_samples = len(dataset.x_train), config.fit_samples(len(dataset.x_train))
    count = len(snapshot_schedule(steps_per_epoch(samples, config), config.epochs, config.snapshots))
    rng = np.random.default_rng(0)
    snapshots = MemorySnapshots(variable_names(model))
    for step in range(count):
        snapshots.append(step, [v.numpy() + rng.normal(0, 0.01, v.shape) for v in model.trainable_variables])
    x_test = to_inputs(dataset.inputs("test"), input_shape(model))
    probabilities = predict(model, x_test)
    scores(probabilities, dataset.y_test, model)
    evaluate(model, x_test, dataset.y_test, weights=snapshots.at(0))
    evaluated_snapshots(model, snapshots, x_test, dataset.y_test)
    landscape(model, snapshots, x_train, y_train, fit_samples, config.seed)
    assert fresh.compilations() == prepared


def test_preparation_starts_at_the_first_progress_call_every_call_passes_on_and_it_ends_with_the_block():
    from weightlab.experiments.ahead import preparing

    ran, seen = [], []
    slow_started = threading.Event()

    def slow():
        ran.append(threading.current_thread().name)
        slow_started.set()
        time.sleep(0.2)  # the block ends meanwhile

    with preparing(lambda *arguments: seen.append(arguments), [slow, lambda: ran.append("never")]) as hook:
        assert not ran  # nothing before the training's first chunk
        hook(10, 100, None)
        hook(20, 100, {"loss": 1.0})
        assert seen == [(10, 100, None), (20, 100, {"loss": 1.0})]
        assert slow_started.wait(5)
    # the thread stopped after the step it was in, and was joined before the block ended
    assert ran == ["weightlab-ahead"]
    assert not any(thread.name == "weightlab-ahead" for thread in threading.enumerate())


def test_a_failing_step_is_silent_and_an_interrupted_run_still_stops_and_joins_the_thread():
    from weightlab.experiments.ahead import preparing

    done = []

    def failing():
        raise RuntimeError("a program that cannot be compiled ahead")  # the finish compiles it and says why

    def stop(*arguments):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), preparing(stop, [failing, lambda: done.append(1)]) as hook:
        hook(1, 2, None)
    assert not any(thread.name == "weightlab-ahead" for thread in threading.enumerate())
    with preparing(None, [failing, lambda: done.append(2)]) as hook:  # no hook of the caller's: only the steps
        hook(1, 2, None)
    assert 2 in done


def test_a_second_interrupt_while_waiting_is_raised_only_once_the_thread_has_ended():
    from weightlab.experiments.ahead import _join_through_interrupts

    class Compiling:  # a thread that is inside a compilation when Ctrl-C comes again
        def __init__(self):
            self.joins, self.alive = 0, True

        def is_alive(self):
            return self.alive

        def join(self):
            self.joins += 1
            if self.joins == 1:
                raise KeyboardInterrupt
            self.alive = False

    thread = Compiling()
    with pytest.raises(KeyboardInterrupt):
        _join_through_interrupts(thread)
    assert thread.joins == 2 and not thread.alive


def test_losses_given_as_functions_of_one_name_are_not_mixed_up():
    import keras

    from weightlab.backend import keras_for
    from weightlab.train.keras_fit import scores

    keras_for("jax")

    def scaled_loss(factor):
        def loss(y, probabilities):  # every one of them is named "loss"
            return factor * keras.losses.sparse_categorical_crossentropy(y, probabilities)

        return loss

    probabilities = np.full((6, 3), 1 / 3, np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    values = []
    for factor in (1.0, 2.0):
        # one architecture (layers of the same names and shapes): only the loss tells them apart
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="out")])
        model.compile(optimizer="adam", loss=scaled_loss(factor))
        values.append(scores(probabilities, labels, model)[0])
    np.testing.assert_allclose(values, [np.log(3), 2 * np.log(3)], rtol=1e-5)


def test_the_training_program_is_not_shared_by_losses_of_one_name():
    import keras

    from weightlab.backend import keras_for
    from weightlab.train.fused_program import program_for

    keras_for("jax")

    def model_with(loss):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="out")])
        model.compile(optimizer="adam", loss=loss)
        return model

    def named_loss(factor):
        def loss(y, probabilities):
            return factor * keras.losses.sparse_categorical_crossentropy(y, probabilities)

        return loss

    one, two = named_loss(1.0), named_loss(2.0)
    optimizer = keras.optimizers.Adam()
    program = program_for([model_with(one)], optimizer, 8, True)
    assert program_for([model_with(one)], optimizer, 8, True) is program  # one function: one program
    assert program_for([model_with(two)], optimizer, 8, True) is not program
