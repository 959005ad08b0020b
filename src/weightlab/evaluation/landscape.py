"""The training loss over the plane of the path: landscape.npz.

The plane is the top two principal directions of the snapshots (`analysis.path`); the loss is
evaluated at W̄ + a·d1 + b·d2 on a grid around the path, on a fixed sample of training examples,
in one jitted ``lax.map`` over the grid points.

The cheap case: when the model's first layer is a Dense layer on the raw inputs, its
pre-activation at every grid point is x·(K̄ + a·K1 + b·K2) + (c̄ + a·c1 + b·c2) =
x·K̄ + a·x·K1 + b·x·K2 + …: three matrix products for the whole grid, and per point only an
elementwise sum and the deeper layers. Any other model runs whole at every point, on a smaller sample.
On backends other than JAX a coarser grid is evaluated point by point.
"""

from __future__ import annotations

import numpy as np

from weightlab.analysis.path import combine, gram_matrix, grid_axes, principal_plane
from weightlab.evaluation.snapshots import compile_ahead as compile_snapshots_ahead
from weightlab.evaluation.snapshots import evaluate_snapshots

GRID_POINTS = 25  # per axis, on JAX
LOOP_GRID_POINTS = 11  # per axis, point by point on other backends
SAMPLE = 1000  # training examples the losses use (the cheap case)
GENERIC_SAMPLE = 256  # … when the whole model runs at every grid point


def sample_indices(samples: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct indices into the first ``samples`` training examples, sorted, drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0x1A5D])
    return np.sort(rng.choice(samples, size=min(size, samples), replace=False)).astype(np.int64)


def landscape(model, snapshots, x_train: np.ndarray, y_train: np.ndarray, fit_samples: int, seed: int) -> dict:
    """landscape.npz's arrays for the path held in ``snapshots`` (keys in the README)."""
    plane = principal_plane(gram_matrix(snapshots))
    return plane_landscape(model, snapshots, plane, x_train, y_train, fit_samples, seed)


def plane_landscape(model, snapshots, plane, x_train, y_train, fit_samples: int, seed: int) -> dict:
    """The grid and path losses of ``plane`` (a `PathPlane` of ``snapshots``)."""
    import keras

    mean, first, second = _split(
        combine(snapshots, np.column_stack([np.full(snapshots.count, 1.0 / snapshots.count), plane.coefficients]))
    )
    on_jax = keras.backend.backend() == "jax"
    kind = _kind(model, x_train)
    x, y, sample = _sample(kind, x_train, y_train, fit_samples, seed)
    grid_a = grid_axes(plane.path[:, 0], GRID_POINTS if on_jax else LOOP_GRID_POINTS)
    grid_b = grid_axes(plane.path[:, 1], GRID_POINTS if on_jax else LOOP_GRID_POINTS)
    # b-major: (B·A, 2). A diverged path can reach past float32's range: those points are inf, their losses NaN.
    with np.errstate(over="ignore"):
        points = np.stack(np.meshgrid(grid_a, grid_b), axis=-1).reshape(-1, 2).astype(np.float32)
    if kind == "loop":
        losses = _grid_by_loop(model, mean, first, second, points, x, y)
    else:
        losses = _grid_program(model, kind, _arguments(model, kind, mean, first, second, points, x, y))()
    path_loss = evaluate_snapshots(model, snapshots, x, y, x[:1])["loss"]
    return {
        "explained_variance_ratio": plane.explained_variance_ratio,
        "path": plane.path,
        "path_loss": path_loss,
        "grid_a": grid_a,
        "grid_b": grid_b,
        "grid_loss": np.asarray(losses, dtype=np.float64).reshape(len(grid_b), len(grid_a)),
        "sample_indices": sample,
    }


def compile_ahead(model, count: int, x_train, y_train, fit_samples: int, seed: int) -> None:
    """Compile (or load) the programs `landscape` will run for a path of ``count`` snapshots of ``model``.

    For `experiments.ahead`, while the runs train: only the weights' shapes are needed.
    """
    import jax

    kind = _kind(model, x_train)
    if kind == "loop":
        return
    x, y, _ = _sample(kind, x_train, y_train, fit_samples, seed)
    weights = [jax.ShapeDtypeStruct(v.shape, np.float32) for v in model.trainable_variables]
    points = jax.ShapeDtypeStruct((GRID_POINTS * GRID_POINTS, 2), np.float32)
    _grid_program(model, kind, _arguments(model, kind, weights, weights, weights, points, x, y))
    compile_snapshots_ahead(model, count, x, y, x[:1])


def _kind(model, x_train) -> str:
    """How the grid is evaluated: "dense-first" (the cheap case), "whole" (the whole model at every point), or "loop" (off JAX)."""
    import keras

    if keras.backend.backend() != "jax":
        return "loop"
    return "dense-first" if _dense_first(model, x_train) is not None else "whole"


def _sample(kind: str, x_train, y_train, fit_samples: int, seed: int):
    """(x, y, indices) of the fixed training sample the losses are measured on."""
    sample = sample_indices(fit_samples, SAMPLE if kind == "dense-first" else GENERIC_SAMPLE, seed)
    return np.asarray(x_train[sample]), np.asarray(y_train[sample]).astype(np.int32), sample


def _split(combined: list[np.ndarray]) -> tuple[list, list, list]:
    """Per-variable (3, …) combinations -> (W̄, d1, d2), each a list of arrays."""
    return tuple([stack[j] for stack in combined] for j in range(3))  # type: ignore[return-value]


def _dense_first(model, x: np.ndarray):
    """(first layer, [(layer, its variable count)] after it) when the model is a chain whose first layer is Dense on raw flat inputs."""
    import keras

    if not isinstance(model, keras.Sequential) or model.non_trainable_variables or np.ndim(x) != 2:
        return None
    layers = list(model.layers)
    if not layers or type(layers[0]) is not keras.layers.Dense:
        return None
    owned = [v for layer in layers for v in layer.trainable_variables]
    if len(owned) != len(model.trainable_variables) or any(
        a is not b for a, b in zip(owned, model.trainable_variables)
    ):
        return None
    return layers[0], [(layer, len(layer.trainable_variables)) for layer in layers[1:]]


def _inference(layer) -> dict:
    """The keywords that call ``layer`` for inference: ``training=False`` where its ``call`` takes it.

    A model passes ``training`` on only to the layers that take it; called one by one, as here,
    a layer without it (Softmax, Activation, LayerNormalization) would refuse the keyword.
    """
    import inspect

    return {"training": False} if "training" in inspect.signature(layer.call).parameters else {}


def _loss(model):
    """``loss(y, outputs)`` -> the mean of the model's own compiled loss (`keras_fit.example_losses`)."""
    import keras

    from weightlab.train.keras_fit import example_losses

    per_example = example_losses(model)
    return lambda y, outputs: keras.ops.mean(per_example(y, outputs))


def _arguments(model, kind: str, mean, first, second, points, x, y) -> tuple:
    """The grid program's arguments (arrays, or their shapes to compile ahead)."""
    weights = tuple(list(w) for w in (mean, first, second))
    if kind == "whole":
        return (*weights, [v.value for v in model.non_trainable_variables], points, x, y)
    return (*weights, points, x, y)


def _grid_program(model, kind: str, arguments: tuple):
    """The grid's losses as a call with no arguments: its program compiled for ``arguments``' shapes, shared per architecture."""
    from weightlab.programs import PROGRAMS, architecture_key

    build = _build_dense_first if kind == "dense-first" else _build_whole_model
    compiled = PROGRAMS.compiled(
        ("landscape", kind, architecture_key(model)),
        lambda: build(model, arguments[-2]),
        arguments,
    )
    return lambda: np.asarray(compiled(*arguments))


def _build_dense_first(model, x):
    import jax

    layer, rest = _dense_first(model, x)
    width = len(layer.trainable_variables)
    loss = _loss(model)

    def program(mean, first, second, points, x, y):
        # x·(K̄ + a·K1 + b·K2) + bias: three products for the whole grid
        pre = [x @ kernel for kernel in (mean[0], first[0], second[0])]
        if width > 1:
            pre = [p + bias for p, bias in zip(pre, (mean[1], first[1], second[1]))]

        def at(point):
            a, b = point[0], point[1]
            hidden = layer.activation(pre[0] + a * pre[1] + b * pre[2])
            offset = width
            for deeper, count in rest:
                weights = [
                    m + a * u + b * v
                    for m, u, v in zip(
                        mean[offset : offset + count],
                        first[offset : offset + count],
                        second[offset : offset + count],
                    )
                ]
                hidden, _ = deeper.stateless_call(weights, [], hidden, **_inference(deeper))
                offset += count
            return loss(y, hidden)

        return jax.lax.map(at, points)

    return jax.jit(program)


def _build_whole_model(model, x):
    import jax

    loss = _loss(model)

    def program(mean, first, second, non_trainable, points, x, y):
        def at(point):
            weights = [m + point[0] * u + point[1] * v for m, u, v in zip(mean, first, second)]
            probabilities, _ = model.stateless_call(weights, non_trainable, x, training=False)
            return loss(y, probabilities)

        return jax.lax.map(at, points)

    return jax.jit(program)


def _grid_by_loop(model, mean, first, second, points, x, y) -> np.ndarray:
    from weightlab.train.keras_fit import predict, scores

    kept = [np.array(v.value) for v in model.trainable_variables]
    losses = []
    try:
        for a, b in points:
            for variable, m, u, v in zip(model.trainable_variables, mean, first, second):
                variable.assign(m + a * u + b * v)
            losses.append(scores(predict(model, x), y, model)[0])
    finally:
        for variable, value in zip(model.trainable_variables, kept):
            variable.assign(value)
    return np.asarray(losses)
