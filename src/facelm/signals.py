"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

``timeout``, SLURM, ``docker stop``, Snakemake and CI cancellation stop a job with SIGTERM (a
closed terminal sends SIGHUP). Python's default for both is to die on the spot, so no ``finally``
runs and the temporary files and folders of :mod:`facelm.atomic` would stay behind. Inside
:func:`signals_end_like_ctrl_c` either signal raises :class:`Terminated` (a ``KeyboardInterrupt``,
so every clean-up that runs on Ctrl-C runs), and the CLI exits with ``128 + signal`` (143 for
SIGTERM) and one line. Inside :func:`deferred` the signal waits for the block's end. A second signal of the same kind kills at once (the default is back), and
a process forked from this one (a DataLoader or pool worker) dies of the signal as by default.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

#: The signals that end a command like Ctrl-C.
HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives one of :data:`HANDLED`."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


#: Signals received inside :func:`deferred` blocks, raised when the outermost one ends.
_held: list[int] = []
_deferring = 0


@contextlib.contextmanager
def signals_end_like_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM / SIGHUP raise :class:`Terminated` in this process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame) -> None:
        signal.signal(signum, signal.SIG_DFL)
        if os.getpid() != owner:  # a forked child inherited the handler: end as the signal means
            os.kill(os.getpid(), signum)
        elif _deferring:
            _held.append(signum)
        else:
            raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def ignore_signals_until_exit() -> None:
    """For the process's own entry point once its command has returned: a SIGTERM / SIGHUP during the
    interpreter's exit must not turn a finished command's status into 'killed' (-15)."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a handled signal until the block ends: steps that must not be torn apart (the two renames
    of a folder swap) finish first, then :class:`Terminated` is raised."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and _held:
        signum = _held.pop()
        _held.clear()
        raise Terminated(signum)
