"""The fused loop's pieces around a chunk: padding it, cutting it into segments, moving runs' arrays between host and
device, sizing the snapshot buffer, streaming its snapshots, replaying a divergence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The on-device snapshot buffer's budget: an epoch whose snapshots need more is cut into chunks.
SNAPSHOT_BUFFER_BYTES = 64 << 20


def padded(rows: np.ndarray, first: int, length: int, chunk_length: int) -> np.ndarray:
    """rows[first:first + length], padded with copies of its first row to chunk_length rows."""
    part = rows[first : first + length]
    return np.concatenate([part, np.repeat(part[:1], chunk_length - length, axis=0)]) if length < chunk_length else part


def buffer_capacity(schedule: np.ndarray, steps_per_epoch: int, shapes: list[tuple[int, ...]]) -> int:
    """Snapshot slots in the on-device buffer: an epoch's snapshots, or as many as `SNAPSHOT_BUFFER_BYTES` hold."""
    per_epoch = np.bincount((schedule[1:] - 1) // steps_per_epoch).max() if len(schedule) > 1 else 1
    per_snapshot = 4 * sum(int(np.prod(shape)) for shape in shapes)  # every run's variables, float32
    return int(max(1, min(per_epoch, SNAPSHOT_BUFFER_BYTES // max(per_snapshot, 1))))


def stream_snapshots(sinks, buffers, taken, stopped: dict, newly_stopped: set, branches: int, width: int) -> None:
    """Hand each view's snapshots of this chunk to its store: those up to where a diverged view stopped, then its kept state."""
    # Host arrays (`on_host`): slicing them costs nothing, where slicing the device buffers compiled
    # a slice for every new count of snapshots (25-80 ms an epoch, measured).
    held = [buffer[:, : len(taken)] for buffer in buffers] if taken else []
    for v, sink in enumerate(sinks):
        if v in stopped and v not in newly_stopped:
            continue
        r, k = divmod(v, branches)
        limit = stopped[v]["kept_steps"] if v in stopped else None
        steps = [step for _, step in taken if limit is None or step <= limit]  # slots in step order
        sink.extend(steps, [stack[r, : len(steps)] for stack in held[k * width : (k + 1) * width]])
        if limit is not None and sink.steps[-1] != limit:  # training stopped between snapshots: keep where
            sink.append(
                limit, [np.asarray(w, dtype=np.float32) for w in stopped[v]["state"][0][k * width : (k + 1) * width]]
            )
        sink.flush()


def last_finite_state(
    program, before, buffers, run: int, bad: int, indices, masks, measured, slots, x_fit, y_fit, initial, branch: slice
):
    """Replay run ``run``'s chunk from its start for ``bad`` steps (the steps before the first non-finite loss).

    Returns (steps kept in the chunk, the run's state as numpy). The weights after those steps
    produced the non-finite loss; if ``branch``'s are themselves not finite, one step fewer is kept.
    """
    start = run_at(before, run)
    for kept in (bad, bad - 1):
        if kept <= 0:
            return 0, start
        fresh = to_device(start)  # donated by the call: never start's own memory
        scratch = [jnp.zeros(buffer.shape[1:], buffer.dtype) for buffer in buffers]
        replayed, _, _ = program.run_one(
            fresh,
            scratch,
            indices[run],
            masks,
            loop_segments(measured, slots, kept),
            slots,
            x_fit,
            y_fit[run],
            run_at(initial, run),
        )
        replayed = jax.tree_util.tree_map(lambda leaf: np.array(leaf, copy=True), replayed)
        if all(np.isfinite(w).all() for w in replayed[0][branch]):
            return kept, replayed
    return 0, start


def loop_segments(measured: np.ndarray, slots: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
    """How the program's loop cuts a chunk's first ``length`` steps: (ends, norm rows, count), padded to the chunk's rows.

    Segment j is the steps after ``ends[j-1]`` up to ``ends[j]``: each measured step, each
    snapshot step (whose norms are then taken too: exact wherever the weights are kept) and the
    last step end one. The last step's norms go to the scratch row past the chunk's rows unless it is measured.
    """
    rows = len(measured)
    marked = (np.asarray(measured, bool) | (np.asarray(slots) >= 0))[:length]
    ends = np.flatnonzero(marked)
    if not len(ends) or ends[-1] != length - 1:
        ends = np.append(ends, length - 1)
    norm_rows = np.where(marked[ends], ends, rows)
    padded_ends, padded_rows = np.zeros(rows, np.int32), np.zeros(rows, np.int32)
    padded_ends[: len(ends)], padded_rows[: len(ends)] = ends, norm_rows
    return padded_ends, padded_rows, np.int32(len(ends))


def first_run(tree):
    """Run 0's arrays of a tree whose leaves have a leading run axis."""
    return run_at(tree, 0)


def run_at(tree, run: int):
    """Run ``run``'s arrays of a tree whose leaves have a leading run axis."""
    return jax.tree_util.tree_map(lambda leaf: leaf[run], tree)


def to_device(tree):
    """Fresh device copies of host arrays: a program may donate (overwrite) them, never the host's own.

    `jax.device_put`, not ``jnp.array``: that stages each array through a program compiled (or loaded)
    per shape, ≈5 ms each, twenty-odd shapes a run (measured)."""
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, may_alias=False), tree)


def on_host(tree, run_axis: bool = False):
    """A program's results as numpy (views of its buffers on the CPU: no copy), with a leading run axis added where asked."""
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[None] if run_axis else np.asarray(leaf), tree)
