"""What keeps a sweep's cells safe from each other: a lock per cell, and a Ray address checked before joining.

Two identical sweeps started together share their cells' directories. Each cell is trained
only under an exclusive lock on ``runs/.lock-<cell>`` (``fcntl.flock``: the kernel releases it
when its holder exits, however it exits), and a cell's stale hidden directory is cleared only
by the holder of that lock: a sweep never removes a cell another sweep is training.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
from pathlib import Path

from weightlab.errors import ConfigError

RAY_CONNECT_SECONDS = 10


@contextlib.contextmanager
def cell_lock(runs_dir: Path, cell_id: str):
    """Yields True while this process holds the cell's lock, False if another process holds it."""
    with open(runs_dir / f".lock-{cell_id}", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_ray_address(address: str | None) -> None:
    """Refuse, within seconds and in one line, a Ray address that is not a host:port or cannot be reached.

    (Ray itself retries an unreachable address for minutes, printing as it goes.) ``None`` and
    ``"auto"``/``"local"`` are Ray's own choices and pass unchecked.
    """
    if address is None or address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, _, port_text = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379 or ray://head:10001); fix it")
    try:
        with socket.create_connection((host, int(port_text)), timeout=RAY_CONNECT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({reason}, {RAY_CONNECT_SECONDS} s); "
            "check --address, or leave it out to start a local cluster"
        ) from error
