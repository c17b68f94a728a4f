"""A loopback SMTP server that keeps every message in an mbox file.

The demo's and ``make up``'s mail sink, so digests can be read without a real mail server.

    python -m devtools.mailsink [--port 8025] [--mbox .local/mail/newsradar.mbox]
"""

from __future__ import annotations

import argparse
import mailbox
import socket
import sys
import threading
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devtools.foreground import stop_on_signals, wait_for_interrupt
from pipeline.errors import TransientError

__all__ = ["DEFAULT_MBOX", "MailSink", "main", "read_mbox"]

DEFAULT_MBOX: Final = Path(".local/mail/newsradar.mbox")
DEFAULT_PORT: Final = 8025  # NEWSRADAR_SMTP_PORT's default
_HOST: Final = "127.0.0.1"


class _MboxHandler:
    """Appends each accepted message to the mbox, with its envelope in ``X-`` headers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # The envelope is what was delivered; the headers only say what the sender wrote.
        head = (
            f"X-MailFrom: {envelope.mail_from}\r\nX-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode("ascii", "replace")
        with self._lock:
            box = mailbox.mbox(self.path)
            box.lock()
            try:
                box.add(head + content)
                box.flush()
            finally:
                box.unlock()
                box.close()
            self.received += 1
        return "250 OK: kept in the mail sink"


class _BoundController(Controller):
    """A Controller on a socket bound before start: a port in use is reported at once."""

    def __init__(self, handler: Any, listener: socket.socket) -> None:
        self._listener = listener
        host, port = listener.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, server_hostname="localhost")

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._listener)


class MailSink:
    """An SMTP server on 127.0.0.1 writing to an mbox; use it as a context manager.

    ``port=0`` picks a free port (tests); ``port`` then tells which.
    """

    def __init__(self, mbox: Path | str = DEFAULT_MBOX, *, port: int = DEFAULT_PORT) -> None:
        self.mbox = Path(mbox).resolve()
        self._port = port
        self._handler = _MboxHandler(self.mbox)
        self._controller: _BoundController | None = None

    @property
    def port(self) -> int:
        """The port the sink listens on."""
        if self._controller is None:
            raise TransientError("the mail sink is not running")
        return int(self._controller.port)

    @property
    def received(self) -> int:
        """Messages accepted since the sink started."""
        return self._handler.received

    def start(self) -> MailSink:
        """Bind and serve in a background thread; returns self."""
        if self._controller is not None:
            return self
        self.mbox.parent.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((_HOST, self._port))
            listener.listen()
        except OSError as exc:
            listener.close()
            raise TransientError(
                f"the mail sink cannot listen on {_HOST}:{self._port}: {exc.strerror}"
            ) from exc
        controller = _BoundController(self._handler, listener)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        """Every message in the mbox, oldest first."""
        return read_mbox(self.mbox)

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def read_mbox(path: Path | str) -> list[EmailMessage]:
    """The messages of an mbox file (none if it does not exist), parsed with the modern API."""
    path = Path(path)
    if not path.exists():
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [
            message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.iterkeys()
        ]
    finally:
        box.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m devtools.mailsink", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1")
    parser.add_argument(
        "--mbox", type=Path, default=DEFAULT_MBOX, help="the mbox file to append to"
    )
    args = parser.parse_args(argv)
    stop_on_signals()
    try:
        with MailSink(args.mbox, port=args.port) as sink:
            print(f"mail sink: SMTP on {_HOST}:{sink.port}, messages go to {sink.mbox}", flush=True)
            wait_for_interrupt()
    except TransientError as exc:
        print(f"mailsink: {exc}", file=sys.stderr)
        return 1
    print("mail sink stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
