"""Loopback HTTP servers that misbehave on cue, for the fetch and feed tests."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

Route = Callable[["FaultHandler"], None]


@dataclass(frozen=True)
class SeenRequest:
    """What the server received: path and lower-cased headers."""

    path: str
    headers: dict[str, str]


class FaultHandler(BaseHTTPRequestHandler):
    """Dispatches GETs to the server's routes; unknown paths get a 404."""

    protocol_version = "HTTP/1.1"
    server: FaultServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.seen.append(
            SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()})
        )
        route = self.server.routes.get(path)
        if route is None:
            self.reply(404, b"not found")
        else:
            route(self)

    def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "text/plain",
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 302) -> None:
        """Send a redirect to ``location``."""
        self.reply(status, b"", {"Location": location})

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class FaultServer(ThreadingHTTPServer):
    """A threaded HTTP(S) server on a loopback address, with routes set by the test."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, 0), FaultHandler)
        self.routes: dict[str, Route] = {}
        self.seen: list[SeenRequest] = []
        self.stopping = threading.Event()
        self.host = host
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str | None = None) -> str:
        """The absolute URL of ``path`` on this server (optionally under another host name)."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def silent_listener(host: str = "127.0.0.1") -> Iterator[int]:
    """A port whose socket completes the TCP handshake (kernel backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def gzip_bomb(decoded_size: int) -> bytes:
    """A gzip body that inflates to ``decoded_size`` zero bytes, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    block = bytes(1024 * 1024)
    parts: list[bytes] = []
    remaining = decoded_size
    while remaining > 0:
        step = min(remaining, len(block))
        parts.append(packer.compress(block[:step]))
        remaining -= step
    parts.append(packer.flush())
    return b"".join(parts)


def trickle(interval: float) -> Route:
    """A route that sends headers and then one byte every ``interval`` seconds, forever."""

    def route(handler: FaultHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            while not handler.server.stopping.is_set():
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass  # the client gave up, which is the point
        handler.close_connection = True

    return route


def stall(handler: FaultHandler) -> None:
    """A route that reads the request and never answers."""
    handler.server.stopping.wait(60)
    handler.close_connection = True
