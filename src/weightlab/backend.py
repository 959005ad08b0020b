"""Choosing and starting the Keras backend, once per process.

Keras reads ``KERAS_BACKEND`` when it is first imported and cannot switch afterwards, so
the choice is made here, before any import of keras, and checked against a keras that
someone (a notebook, a test) has already imported.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from pathlib import Path

from weightlab.config import resolve_backend
from weightlab.errors import ConfigError


def keras_for(backend: str | None):
    """The keras module, running on ``backend`` (resolved as in `resolve_backend`)."""
    backend = resolve_backend(backend)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise ConfigError(
                f"keras is already running on {keras.backend.backend()} in this process; "
                f"start a new process (or set KERAS_BACKEND={backend} before importing keras) to use {backend}"
            )
    elif backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as error:
            raise ConfigError("the torch backend needs PyTorch: pip install 'weightlab[torch]'") from error
    os.environ["KERAS_BACKEND"] = backend
    # TensorFlow's C++ start-up chatter is not the user's business.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The collector is paused (and what the import made frozen) only for the import itself: freezing
    # later would also exempt the caller's own objects, and a finished run's model, from collection.
    with collector_paused() if "keras" not in sys.modules else contextlib.nullcontext():
        if backend == "jax":  # also where the user imported keras first (a notebook, `WeightTracker`)
            _persistent_compilation_cache()
            if "keras" not in sys.modules:
                _start_devices_beside()
        import keras

    if backend == "jax":
        devices_or_error()
    return keras


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the block, and what it made exempt from later passes.

    For imports: JAX's and Keras's make about a million long-lived objects and no garbage, and
    the collector's passes over them took ≈0.2 s of a 0.85 s import (measured), then as much
    again after it, as they aged through its generations. Frozen (`gc.freeze`), they are never
    traversed again; the collector then runs as it did.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _start_devices_beside() -> None:
    """Start JAX's devices in a thread of their own, while Keras imports in this one.

    Neither needs the other, and the client starts in C++ with the interpreter released: on an
    H200 the devices were ready 0.4 s sooner (2.5 against 2.9 s after the start, four pairs) and
    a whole run 0.3 s sooner; on the CPU the client takes 0.03 s and nothing changes. Whoever
    asks for a device next waits for it under JAX's own lock. The thread is not a daemon, so the
    interpreter never tears JAX down under it: a library caller interrupted during the import
    waits for the client to finish starting (the `weightlab` command ends with ``os._exit`` and
    does not). A device that fails to start fails again in the caller's thread, where its
    error is reported (`devices_or_error`); here it is not.
    """
    import threading

    import jax

    def start() -> None:
        with contextlib.suppress(Exception):
            jax.devices()

    threading.Thread(target=start, name="weightlab-devices").start()


def devices_or_error() -> None:
    """JAX's devices, started; or, where they cannot start (a platform this machine lacks, a plugin
    missing or broken), a `ConfigError` that names the platforms asked for and what to do."""
    import jax

    try:
        jax.devices()
    except Exception as error:  # a RuntimeError, or an AssertionError for a CUDA plugin that is missing
        platforms = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")
        why = (str(error).splitlines() or [""])[0].split(" (set JAX_PLATFORMS")[0].rstrip(". ")
        why = why or f"no backend for {platforms!r} could be loaded (is JAX's plugin for it installed?)"
        raise ConfigError(
            f"JAX could not start its devices (platforms {platforms!r}): {why}; check the device and JAX's plugin "
            "for it, or set JAX_PLATFORMS=cpu to run on the CPU"
        ) from error


def _persistent_compilation_cache() -> None:
    """Keep JAX's compiled programs on disk, so a second run of a config skips compilation (≈1.5 s).

    ``$WEIGHTLAB_HOME/jax-cache``; set WEIGHTLAB_JAX_CACHE=0 to turn it off. The cache only
    saves time: a program compiled anew computes exactly what the cached one does. Every
    program is kept, however quick to compile: the dozens of small ones (initialisers,
    evaluations) took ≈15 ms each, ≈0.4 s a run, and load from disk in a fraction of that.
    """
    if os.environ.get("WEIGHTLAB_JAX_CACHE", "1") == "0":
        return
    import jax

    if jax.config.jax_compilation_cache_dir:  # set already: by an earlier call, or by the user for their own
        return
    from weightlab.data import weightlab_home

    directory = weightlab_home() / "jax-cache"
    prune_damaged_cache_entries(directory)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def prune_damaged_cache_entries(directory: Path) -> list[Path]:
    """Remove the compilation-cache entries JAX could not read back: empty, truncated or not decompressible.

    JAX never overwrites an entry, so one cut short (a full disk, a killed process) would be
    warned about on every later run. Only entries written since the last check are read (a
    stamp file marks it), so the check costs little however large the cache grows.
    """
    from jax._src import compilation_cache

    stamp = directory / ".weightlab-checked"
    try:
        since = stamp.stat().st_mtime - 2.0  # entries written in the same moment as the last check are read again
    except OSError:
        since = 0.0
    removed = []
    for entry in directory.glob("*-cache") if directory.is_dir() else ():
        try:
            if entry.stat().st_mtime < since:
                continue
            data = entry.read_bytes()
            if data:
                compilation_cache.decompress_executable(data)
                continue
        except OSError:
            continue  # vanished or unreadable now: JAX will say so itself if it matters
        except Exception:  # not a stream the decompressor accepts: damaged
            pass
        for path in (entry, entry.with_name(entry.name.removesuffix("-cache") + "-atime")):
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(entry)
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    return removed


def compile_function(keras, function):
    """``function`` compiled for the running backend: one dispatch per call instead of one per op."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True)
    if backend == "torch":
        import torch

        return torch.no_grad()(function)
    return function


def set_random_seed(keras, seed: int) -> None:
    """What ``keras.utils.set_random_seed`` does, without importing TensorFlow when it is not in use.

    Keras seeds Python's and numpy's generators, its own global seed generator, and
    TensorFlow's if TensorFlow is installed — importing it (≈2.5 s) even on JAX. On other
    backends, with TensorFlow not yet imported, nothing of TensorFlow's can be drawn from,
    so seeding the rest gives the same random streams.
    """
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)
