"""A fetch's total deadline: a timer that shuts its sockets down, and pools that register them."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:  # urllib3 defines these protocols for type checkers only
    from urllib3._base_connection import BaseHTTPConnection, BaseHTTPSConnection

__all__ = ["Watchdog", "WatchedHTTPPool", "WatchedHTTPSPool"]


class Watchdog:
    """Shuts a fetch's sockets down when its deadline passes.

    A socket read timeout bounds each recv, not the fetch: a server that trickles one byte
    per second never trips it. Shutting the socket down wakes the blocked read at once.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down at the deadline (at once if it has passed)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def cancel(self) -> None:
        """Stop the timer: the fetch finished in time."""
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The base method on purpose: SSLSocket.shutdown would first try to unwrap TLS.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The socket is registered at connect time, not later: http.client drops the connection's
# reference to it (conn.sock = None) as soon as a response will close the connection.
class _WatchedHTTPConnection(HTTPConnection):
    watchdog: Watchdog | None = None

    def connect(self) -> None:
        super().connect()
        if self.watchdog is not None:
            self.watchdog.watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    watchdog: Watchdog | None = None

    def connect(self) -> None:
        super().connect()
        if self.watchdog is not None:
            self.watchdog.watch(self.sock)


class WatchedHTTPPool(HTTPConnectionPool):
    """An HTTP pool whose connections register their sockets with the pool's watchdog."""

    ConnectionCls = _WatchedHTTPConnection
    watchdog: Watchdog | None = None

    def _new_conn(self) -> BaseHTTPConnection:
        conn = super()._new_conn()
        if isinstance(conn, _WatchedHTTPConnection):
            conn.watchdog = self.watchdog
        return conn


class WatchedHTTPSPool(HTTPSConnectionPool):
    """An HTTPS pool whose connections register their sockets with the pool's watchdog."""

    ConnectionCls = _WatchedHTTPSConnection
    watchdog: Watchdog | None = None

    def _new_conn(self) -> BaseHTTPSConnection:
        conn = super()._new_conn()
        if isinstance(conn, _WatchedHTTPSConnection):
            conn.watchdog = self.watchdog
        return conn
