"""The process's compiled programs: each built once per key and compiled once per argument signature.

A key names what a program computes: an architecture, usually, so that runs of one architecture
(a comparison's seeds, a proof's controls) share one program and compile it once. A program can
be compiled from its arguments' shapes alone (`jax.ShapeDtypeStruct`s), before the arrays exist:
`experiments.ahead` compiles the evaluations while the runs train, and the call that needs one
finds it ready. Safe across threads: a compilation already under way is waited for, not repeated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


def signature(arguments: Any) -> str:
    """The shapes and dtypes of a tree of arrays (or `jax.ShapeDtypeStruct`s), with the tree's structure.

    Dtypes as JAX takes them (int64 is int32 unless 64-bit mode is on), so a numpy argument and
    the shape it was compiled ahead from agree."""
    import jax

    leaves, structure = jax.tree_util.tree_flatten(arguments)
    return repr(
        (structure, [(tuple(np.shape(leaf)), jax.dtypes.canonicalize_dtype(leaf.dtype).str) for leaf in leaves])
    )


# Layer attributes that change what a layer computes beyond its weights' shapes.
_COMPUTING_ATTRIBUTES = ("strides", "padding", "pool_size", "data_format", "dilation_rate", "groups", "axis")


def architecture(model) -> list:
    """What a model computes, short of its weights' values: its loss and, per layer, its kind, name, weight shapes,
    activation and computing settings. Programs are shared by the models that agree on it.

    Built from the layers themselves: get_config() would import TensorFlow (≈2.5 s) to serialise.
    """
    loss = getattr(model, "loss", None)
    if hasattr(loss, "get_config"):  # a Loss object: its class and settings (from_logits, …)
        loss = [type(loss).__name__, loss.get_config()]
    return [
        loss if isinstance(loss, (str, list)) else getattr(loss, "__name__", repr(loss)),
        *(
            (
                type(layer).__name__,
                layer.name,
                [tuple(v.shape) for v in layer.weights],
                getattr(getattr(layer, "activation", None), "__name__", None),
                {name: getattr(layer, name) for name in _COMPUTING_ATTRIBUTES if hasattr(layer, name)},
            )
            for layer in model.layers
        ),
    ]


def architecture_key(model) -> tuple:
    """`architecture` as a key: its JSON text, and a loss given as a plain function, itself.

    `architecture` names such a loss only by its ``__name__``, and two functions of one name (made
    by a factory, say) may compute different things; a `keras.losses.Loss` is described by its
    class and settings, so it needs nothing more."""
    import json

    loss = getattr(model, "loss", None)
    function = loss if callable(loss) and not hasattr(loss, "get_config") else None
    return json.dumps(architecture(model), default=str), function


class Programs:
    """Programs by key (``build()`` makes one: any object, a `jax.jit` function for `compiled`) and their compilations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[Hashable, _Once] = {}
        self._compiled: dict[tuple[Hashable, str], _Once] = {}

    def built(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The program of ``key``, built by ``build()`` the first time it is asked for.

        Only that key waits while it is built: a build may ask for other programs (a training
        program asks whether a kernel is ready), and other threads' keys go on.
        """
        with self._lock:
            once = self._built.setdefault(key, _Once())
        return once.result(build)

    def compiled(self, key: Hashable, build: Callable[[], Any], arguments: tuple) -> Any:
        """The jitted program of ``key`` lowered and compiled for ``arguments``' shapes: call it with arrays of those shapes.

        A call that is not a compilation's first waits for the first to finish, whichever thread runs it.
        """
        with self._lock:
            compilation = self._compiled.setdefault((key, signature(arguments)), _Once())
        return compilation.result(lambda: self.built(key, build).lower(*arguments).compile())

    def compilations(self) -> int:
        """How many (program, signature) compilations have been asked for."""
        with self._lock:
            return len(self._compiled)


class _Once:
    """A value made once, by the first thread that asks (a program, or a program's compilation for one signature)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made = False
        self._value: Any = None

    def result(self, make: Callable[[], Any]) -> Any:
        with self._lock:
            if not self._made:
                self._value = make()
                self._made = True
            return self._value


# One per process, as JAX's own caches are: a program compiled for one run serves every later run of its kind.
PROGRAMS = Programs()
