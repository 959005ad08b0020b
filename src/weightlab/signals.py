"""Ctrl-C and SIGTERM land at safe points: a handler records the signal, the loop stops at its next check.

Raising KeyboardInterrupt from the handler itself, Python's default, can land inside whatever
runs at that instant — a JAX garbage-collection callback, a finaliser — where the exception is
printed as "Exception ignored" and lost, and the run goes on. Instead `StopFlag`'s handler only
records the signal; `StopFlag.check` (called by the training loops through the progress hook,
after every chunk of steps, and by a sweep while it waits) raises `Interrupted` there, where
the last epoch's checkpoint is consistent. Before a loop has first checked the flag (loading
data, building, compiling) there is no safe point to wait for, and a signal stops at once, as
it always did; so does a second Ctrl-C while the first waits for its safe point.

Worker processes die with their parent: `die_with_parent` asks Linux to send them SIGTERM
when the process that started them ends, however it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM, raised at a safe point."""


class StopFlag:
    """Whether a stop was asked for, and by which signal; installed for the length of a command."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.looping = False  # set by the first check: from then on a loop checks the flag often

    def request(self, number: int, frame=None) -> None:
        name = signal.Signals(number).name
        if not self.looping:
            raise Interrupted(name)  # no loop is checking yet: stop now, as Python would
        if self.signal_name is not None and number == signal.SIGINT:
            raise Interrupted(f"{name} (twice)")  # the user insists: stop wherever we are
        self.signal_name = name

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived since the command started (and mark a loop as checking)."""
        self.looping = True
        if self.signal_name is not None:
            raise Interrupted(self.signal_name)

    def guard(self, progress=None):
        """A progress hook that checks for a stop first, then calls ``progress`` (if any)."""

        def hook(*args) -> None:
            self.check()
            if progress is not None:
                progress(*args)

        return hook


@contextlib.contextmanager
def stop_on_signals(install: bool = True):
    """Install SIGINT and SIGTERM handlers that set a `StopFlag` (main thread only; restored after).

    With ``install=False`` (a command with no loop that checks the flag) the signals keep their
    usual effect and the flag is never set.
    """
    stop = StopFlag()
    if not install or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, stop.request)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
