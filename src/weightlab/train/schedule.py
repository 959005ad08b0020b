"""Which steps keep a snapshot: dense where the weights change fastest, always the ends.

A run keeps about ``count`` snapshots (`RunConfig.snapshots`): step 0, every epoch's end, the
last step, and between them steps spaced evenly in log(step) over the whole training. The
weights move fastest at the start, and a log spacing puts most snapshots there: on MNIST's
defaults (1,688 steps an epoch, 5 epochs, 48 snapshots) 36 fall in the first epoch.
``every`` adds every N-th step on top (``--snapshot-every N``): the union of the two.
"""

from __future__ import annotations

import itertools

import numpy as np


def snapshot_schedule(steps_per_epoch: int, epochs: int, count: int, every: int = 0) -> np.ndarray:
    """The sorted global steps (0 = the initial weights) whose weights a run keeps.

    Step 0 and each epoch's end are always kept; log-spaced steps fill the schedule up to
    ``count`` snapshots in all (all steps when ``count`` exceeds them); every ``every``-th step
    is added on top when ``every`` > 0.
    """
    total = steps_per_epoch * epochs
    required = {0, total} | {steps_per_epoch * (epoch + 1) for epoch in range(epochs)}
    if count >= total + 1:
        chosen = set(range(total + 1))
    else:
        chosen = _log_spaced_fill(required, total, count)
    if every:
        chosen |= set(range(every, total + 1, every))
    return np.asarray(sorted(chosen), dtype=np.int64)


def _log_spaced_fill(required: set[int], total: int, count: int) -> set[int]:
    """``required`` plus log-spaced steps in [1, total], as close to ``count`` steps in all as the rounding allows.

    Rounding makes early log-spaced points coincide, so more points are drawn until the union
    reaches ``count``; if it overshoots, the drawn step closest (in log) to its predecessor goes.
    """
    chosen = set(required)
    points = max(0, count - len(required))
    while len(chosen) < count:
        chosen = required | set(np.round(np.geomspace(1, total, points)).astype(np.int64).tolist())
        points += 1
    while len(chosen) > max(count, len(required)):
        ordered = sorted(chosen)
        gaps = [
            (np.log(step) - np.log(max(previous, 0.5)), step)
            for previous, step in itertools.pairwise(ordered)
            if step not in required
        ]
        chosen.discard(min(gaps)[1])
    return chosen


def plan_chunks(
    schedule: np.ndarray, steps_per_epoch: int, epochs: int, capacity: int
) -> list[tuple[int, int, int, list[tuple[int, int]]]]:
    """How the fused loop cuts training into chunks: (epoch, first step in the epoch, steps, snapshots).

    A chunk is an epoch, or part of one where the epoch's snapshots outnumber the ``capacity``
    of the on-device snapshot buffer: then a chunk ends right after its ``capacity``-th snapshot.
    Each snapshot is (the step's index within the chunk, the global step after it).
    """
    chunks = []
    for epoch in range(epochs):
        offset = epoch * steps_per_epoch
        inside = [int(step) for step in schedule if offset < step <= offset + steps_per_epoch]
        first, taken = 0, []
        for step in inside:
            taken.append(step)
            if len(taken) == capacity or step == offset + steps_per_epoch:
                length = step - offset - first
                chunks.append((epoch, first, length, [(s - offset - first - 1, s) for s in taken]))
                first, taken = first + length, []
        if first < steps_per_epoch:  # (an epoch's end is always in the schedule; kept for safety)
            chunks.append((epoch, first, steps_per_epoch - first, []))
    return chunks


def measured(steps: np.ndarray, every: int, steps_per_epoch: int, total_steps: int) -> np.ndarray:
    """Which of the 1-based global ``steps`` get their weight norms taken: every ``every``-th, the first,
    each epoch's last and the run's last (so an epoch's and the run's final values are always exact).
    Snapshot steps are measured too (their caller adds them)."""
    steps = np.asarray(steps)
    return (steps % every == 0) | (steps == 1) | (steps % steps_per_epoch == 0) | (steps == total_steps)
