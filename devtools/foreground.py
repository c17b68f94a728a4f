"""The foreground wait of the devtools' servers: until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import threading
from typing import Final

# How often the main thread wakes to run the Python handlers of signals that arrived.
_TICK: Final = 0.2


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
