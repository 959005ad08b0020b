"""The fixed panel of test examples whose predictions a run records at every snapshot."""

from __future__ import annotations

import numpy as np

PANEL_SIZE = 24
# The panel depends on the test labels alone (never on the run's seed): every run, proof and
# comparison on one dataset shows the same examples.
PANEL_SEED = 0x9A4E1


def panel_indices(labels: np.ndarray, size: int = PANEL_SIZE) -> np.ndarray:
    """Test-set indices of ``size`` examples, stratified by class, sorted by class then index.

    The rule: shuffle the test indices once with a generator seeded by `PANEL_SEED`; then take
    examples round-robin over the classes (in increasing label order), each class's next
    example being its first not yet taken in that shuffled order, until ``size`` are taken
    (or the test set runs out). With 10 classes and 24 examples: 3 of classes 0–3, 2 of the rest.
    """
    labels = np.asarray(labels).astype(np.int64)
    order = np.random.default_rng(PANEL_SEED).permutation(len(labels))
    queues = {int(c): [int(i) for i in order if labels[i] == c] for c in np.unique(labels)}
    taken: list[int] = []
    depth = 0
    while len(taken) < min(size, len(labels)):
        for queue in queues.values():
            if depth < len(queue) and len(taken) < size:
                taken.append(queue[depth])
        depth += 1
    return np.asarray(sorted(taken, key=lambda i: (labels[i], i)), dtype=np.int64)
