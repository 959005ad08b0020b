"""Adds what the snapshots helper's runs will store (agreed names) to a run directory made before it:
``/test_loss``, ``/test_accuracy``, ``/panel/*`` in snapshots.h5 and ``landscape.npz``, computed honestly
with numpy from the stored snapshots of a Dense stack (ReLU, softmax output) and the run's dataset."""

from __future__ import annotations

import h5py
import numpy as np

from weightlab import data
from weightlab.store import read_run


def dense_probabilities(weights: dict[str, np.ndarray], index: int, inputs: np.ndarray) -> np.ndarray:
    """Softmax outputs of the Dense stack at snapshot ``index`` (kernels and biases alternate, in model order)."""
    names = list(weights)
    activation = inputs.astype(np.float64)
    pairs = list(zip(names[::2], names[1::2]))
    for depth, (kernel, bias) in enumerate(pairs):
        activation = activation @ weights[kernel][index].astype(np.float64) + weights[bias][index]
        if depth < len(pairs) - 1:
            activation = np.maximum(activation, 0.0)
    activation -= activation.max(axis=1, keepdims=True)
    exp = np.exp(activation)
    return exp / exp.sum(axis=1, keepdims=True)


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-12))))


def add_snapshot_data(run_path, panel_size: int = 24, grid: int = 9, samples: int = 256) -> None:
    """Adds what is missing (a run that already stores it is left as it is)."""
    run = read_run(run_path)
    if "test_accuracy" in run.snapshot_evaluations() and run.landscape() is not None:
        return
    steps, _, weights = run.snapshots()
    dataset = data.load(run.summary["dataset"], use_remote=False)
    x_test = dataset.x_test.reshape(len(dataset.x_test), -1).astype(np.float32) / 255.0
    y_test = dataset.y_test.astype(np.int64)
    n = len(steps)
    losses, accuracies, panel_probabilities = [], [], []
    panel = np.arange(panel_size) * (len(x_test) // panel_size)
    for index in range(n):
        probabilities = dense_probabilities(weights, index, x_test)
        losses.append(cross_entropy(probabilities, y_test))
        accuracies.append(float(np.mean(probabilities.argmax(axis=1) == y_test)))
        panel_probabilities.append(probabilities[panel])
    with h5py.File(run.path / "snapshots.h5", "a") as h5:
        h5["test_loss"] = np.asarray(losses)
        h5["test_accuracy"] = np.asarray(accuracies)
        h5["panel/indices"] = panel.astype(np.int64)
        h5["panel/labels"] = y_test[panel]
        h5["panel/inputs"] = x_test[panel]
        h5["panel/probabilities"] = np.asarray(panel_probabilities, dtype=np.float32)
    flat = np.concatenate([stack.reshape(n, -1) for stack in weights.values()], axis=1).astype(np.float64)
    mean = flat.mean(axis=0)
    _, singular, directions = np.linalg.svd(flat - mean, full_matrices=False)
    ratio = singular[:2] ** 2 / np.sum(singular**2)
    path = (flat - mean) @ directions[:2].T
    x_train = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32)[:samples] / 255.0
    y_train = dataset.y_train.astype(np.int64)[:samples]
    shapes = {name: stack.shape[1:] for name, stack in weights.items()}

    def loss_at(vector: np.ndarray) -> float:
        parts, start = {}, 0
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            parts[name] = vector[start : start + size].reshape(1, *shape)
            start += size
        return cross_entropy(dense_probabilities(parts, 0, x_train), y_train)

    grid_a = np.linspace(path[:, 0].min() * 1.3 - 1e-3, path[:, 0].max() * 1.3 + 1e-3, grid)
    grid_b = np.linspace(path[:, 1].min() * 1.3 - 1e-3, path[:, 1].max() * 1.3 + 1e-3, grid)
    grid_loss = np.array([[loss_at(mean + a * directions[0] + b * directions[1]) for a in grid_a] for b in grid_b])
    np.savez(
        run.path / "landscape.npz",
        explained_variance_ratio=ratio,
        path=path,
        path_loss=np.array([loss_at(row) for row in flat]),
        grid_a=grid_a,
        grid_b=grid_b,
        grid_loss=grid_loss,
        sample_indices=np.arange(samples),
    )
