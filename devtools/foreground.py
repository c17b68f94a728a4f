"""The foreground wait of the devtools' servers: until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Final

# How often the main thread wakes to run the Python handlers of signals that arrived.
_TICK: Final = 0.2


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt in the main thread, to stop cleanly.

    Set explicitly: a process started in the background by a non-interactive shell inherits
    SIGINT ignored, and Python then leaves it so.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def wait_for_interrupt() -> None:
    """Block the main thread until KeyboardInterrupt (Ctrl-C, or a SIGTERM mapped to it).

    The wait wakes every fraction of a second: the kernel may hand a signal to one of the
    server's threads, and its Python handler then runs only when the main thread next runs
    bytecode, which an untimed wait would never let it do.
    """
    idle = threading.Event()
    with contextlib.suppress(KeyboardInterrupt):
        while not idle.wait(_TICK):
            pass
