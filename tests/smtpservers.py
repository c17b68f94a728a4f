"""Loopback SMTP servers for the mailer tests: scripted aiosmtpd handlers, a raw faulty server."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"

# A self-signed certificate for 127.0.0.1/localhost, valid 2000-2100, made for these tests only
# (openssl ca -selfsign, P-256). Shipping it keeps the TLS tests free of any cert tooling.
TEST_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBwzCCAWmgAwIBAgIBATAKBggqhkjOPQQDAjAeMRwwGgYDVQQDDBNuZXdzcmFk
YXIgdGVzdCBTTVRQMCAXDTAwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAwMDAwWjAe
MRwwGgYDVQQDDBNuZXdzcmFkYXIgdGVzdCBTTVRQMFkwEwYHKoZIzj0CAQYIKoZI
zj0DAQcDQgAEoWTzHuDW8K/+dFPIY5sHGDg/oWL6dHNrC/tFOg7vcrdU5GoPNBZn
GkzmDRQ8un2ejtjINwOOJCKrroNFF+0qd6OBlTCBkjAaBgNVHREEEzARhwR/AAAB
gglsb2NhbGhvc3QwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAoQwHQYD
VR0OBBYEFF6iGP1PKkPFeCWdhqUz+D772Sj2MB8GA1UdIwQYMBaAFF6iGP1PKkPF
eCWdhqUz+D772Sj2MBMGA1UdJQQMMAoGCCsGAQUFBwMBMAoGCCqGSM49BAMCA0gA
MEUCIQDPV0eckwN+oDCzx6OLrvbVGCXIqezDNqu0zemM4V1QAAIgePG5Z6STDFGQ
8+KcbYbOio+uLZq3Z7Rn3Q4G3W9U8iY=
-----END CERTIFICATE-----
"""
TEST_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFHBt451uM9HLFEqR
s5sVFtn19r/u9/cNbdT0qjW9G6+hRANCAAShZPMe4Nbwr/50U8hjmwcYOD+hYvp0
c2sL+0U6Du9yt1Tkag80FmcaTOYNFDy6fZ6O2Mg3A44kIquug0UX7Sp3
-----END PRIVATE KEY-----
"""


def write_test_cert(directory: Path) -> tuple[Path, Path]:
    """Write the test certificate and key into ``directory``; returns (cert, key)."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert.write_text(TEST_CERT, encoding="ascii")
    key.write_text(TEST_KEY, encoding="ascii")
    return cert, key


def server_tls_context(directory: Path) -> ssl.SSLContext:
    """A server-side TLS context presenting the test certificate."""
    cert, key = write_test_cert(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Received:
    """One message a server accepted: the envelope and the bytes as they arrived."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool = False

    def message(self) -> EmailMessage:
        """The message parsed back with the email package."""
        return message_from_bytes(self.content, policy=policy.default)


@dataclass
class ScriptedHandler:
    """An aiosmtpd handler whose RCPT and DATA replies are scripted, one reply per command.

    ``rcpt_replies[address]`` and ``data_replies`` are queues; when a queue is empty the
    server accepts. Only messages answered with 2xx are kept in ``received``.
    """

    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    mail_commands: int = 0
    data_commands: int = 0
    received: list[Received] = field(default_factory=list)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        queue = self.rcpt_replies.get(address, [])
        reply = queue.pop(0) if queue else "250 OK"
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        reply = self.data_replies.pop(0) if self.data_replies else "250 Message accepted"
        if reply.startswith("2"):
            content = envelope.original_content or b""
            self.received.append(
                Received(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=content,
                    tls=session.ssl is not None,
                )
            )
        return reply


class _LoopbackController(Controller):
    """A Controller on a port the OS picked: bound before start, so no port race."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen()
        port = self._listener.getsockname()[1]
        super().__init__(handler, hostname=HOST, port=port, server_hostname="localhost", **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._listener)


@contextmanager
def smtpd(handler: Any, **smtp_kwargs: Any) -> Iterator[int]:
    """Run an aiosmtpd server for ``handler`` on loopback; yields its port."""
    controller = _LoopbackController(handler, **smtp_kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def password_authenticator(user: str, password: str, *, echo: bool = False) -> Any:
    """An aiosmtpd authenticator accepting one user; ``echo`` makes failures quote the password.

    Echoing stands in for a badly behaved server, to show the mailer scrubs what it reports.
    """

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            given_user = auth_data.login.decode()
            given_password = auth_data.password.decode()
            if (given_user, given_password) == (user, password):
                return AuthResult(success=True)
            if echo:
                return AuthResult(
                    success=False, handled=False, message=f"535 bad password {given_password}"
                )
        return AuthResult(success=False, handled=False)

    return authenticate


class RawSmtpServer:
    """A hand-written SMTP server that misbehaves on cue (aiosmtpd cannot, by design).

    ``mode``: "drop_after_dot" reads the whole message through the final "." and closes without
    a reply; "drop_on_data" closes when DATA is sent, before any message byte; "silent" accepts
    and never says a word. ``greeting`` replaces the 220 banner (e.g. "421 busy").
    """

    def __init__(self, mode: str = "drop_after_dot", greeting: str = "220 raw ESMTP") -> None:
        self.mode = mode
        self.greeting = greeting
        self.connections = 0
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._serve(self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RawSmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _serve(self, rfile: Any, wfile: Any) -> None:
        with self._lock:
            self.connections += 1
        if self.mode == "silent":
            self._done.wait(timeout=30)
            return
        wfile.write(self.greeting.encode() + b"\r\n")
        if not self.greeting.startswith("2"):
            return
        while True:
            line = rfile.readline()
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                wfile.write(b"250 raw\r\n")
            elif verb == b"DATA":
                if self.mode == "drop_on_data":
                    return
                wfile.write(b"354 go ahead\r\n")
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    chunk = rfile.readline()
                    if not chunk:
                        return
                    body += chunk
                with self._lock:
                    self.messages.append(body)
                return  # the fault: no reply to the final dot, just a closed connection
            elif verb == b"QUIT":
                wfile.write(b"221 bye\r\n")
                return
            else:
                wfile.write(b"250 OK\r\n")


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
