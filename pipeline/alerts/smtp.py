"""Deliver a rendered digest over SMTP and classify the outcome as a DeliveryResult.

Resend policy -- a digest goes out at most once unless an operator says otherwise:

* Nothing accepted yet (connection refused or timed out, the connection lost before the final
  "." of DATA, or a 4xx reply to the greeting, EHLO, MAIL, RCPT, DATA or the end of DATA):
  ``deliver`` retries with capped exponential backoff, and only for the recipients still
  outstanding, so a recipient who already has the mail never gets it twice. Still failing after
  the last attempt: ``failed_transient``, and the outbox record returns to ``pending`` with a
  ``next_attempt`` time.
* Some recipients have the mail, others are still deferred (4xx, no reply) after the last
  attempt: the outcome is ``sent``, but the outbox record returns to ``pending`` with those
  addresses in ``pending_recipients`` and a ``next_attempt`` time; later runs send the same
  message (same Message-ID) to them only, until they have it or the runs run out.
* A 5xx reply: ``failed_permanent`` at once, recorded with the code; the record goes to
  ``failed``. Recipients refused one by one (5xx, or a non-ASCII address, which we cannot send
  without SMTPUTF8) are recorded in ``refused`` and the rest still get the mail.
* The connection drops, or no reply arrives in time, AFTER the final "." of DATA: the server may
  already have queued the message, so a retry could deliver it twice. The outcome is
  ``unknown``, ``deliver`` does not retry, and the record stays ``unknown`` until an operator
  resends it. A resend carries the same Message-ID, so mail systems and readers can recognise
  the duplicate.
* A worker that dies mid-send leaves its record in ``sending`` or ``transmitting``. ``sending``
  means the DATA command was never given, so no server can have the message: it returns to
  ``pending`` and is sent again. ``transmitting`` is recorded (durably, before ``deliver``'s
  ``before_data`` returns) right before DATA, so from then on the server may have it: it becomes
  ``unknown``, never re-sent on its own. The record and its states are pipeline.alerts.outbox's.
* A message that cannot be written out with exactly its own headers (``serialise``) is never
  sent: ``failed_permanent`` with the reason, before any connection.

TLS is verified (``ssl.create_default_context``, optionally with a CA file) and on by default
for any host but loopback; a server that does not offer STARTTLS when it is on is a permanent
failure, never a plaintext send. The password is only handed to ``smtplib.login``: it is kept
out of reprs, logs and details.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import ipaddress
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.errors import MessageError
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from pipeline.errors import ConfigError, PermanentError
from pipeline.settings import Settings

__all__ = [
    "DeliveryResult",
    "Outcome",
    "SmtpConfig",
    "UnsendableMessage",
    "deliver",
    "serialise",
]

log = logging.getLogger(__name__)

# smtplib's own convention for "no reply code"; used for recipients a session failure left out.
NO_CODE = -1
# Python 3.11.10+ and 3.12.5+ refuse, while writing, a header that would fold into a line of its
# own; older ones write it. serialise() reads the headers back as well, so both are caught.
_WIRE_POLICY = (
    policy.SMTP.clone(verify_generated_headers=True)
    if hasattr(policy.SMTP, "verify_generated_headers")
    else policy.SMTP
)


class Outcome(StrEnum):
    """What happened to one digest message."""

    SENT = "sent"
    FAILED_TRANSIENT = "failed_transient"
    FAILED_PERMANENT = "failed_permanent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send: built from Settings at the entry point, never from the env."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    starttls: bool = False
    ca_file: Path | None = None
    timeout: float = 30.0
    # RFC 5321 4.5.3.2.6 gives the server 10 minutes to answer the final "."; giving up early
    # turns a good delivery into "unknown".
    data_timeout: float = 600.0
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0 or not self.data_timeout > 0:
            raise ConfigError("smtp", "timeout", "SMTP timeouts must be positive")
        if (self.user is None) != (self.password is None):
            raise ConfigError("smtp", "user/password", "set both SMTP user and password, or none")
        if self.user is not None and self.unencrypted_remote:
            # smtplib would send AUTH in clear text over the network; refuse rather than leak.
            raise ConfigError(
                "smtp", "NEWSRADAR_SMTP_STARTTLS", "SMTP login to a remote host needs STARTTLS"
            )

    @property
    def unencrypted_remote(self) -> bool:
        """True when mail goes to a host off this machine without STARTTLS."""
        return not self.starttls and not _is_loopback(self.host)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, ca_file: Path | None = None, timeout: float = 30.0
    ) -> SmtpConfig:
        """The SMTP part of the process settings; unset STARTTLS means "unless loopback"."""
        starttls = settings.smtp_starttls
        if starttls is None:
            # Verified TLS by default; only the loopback sink (demo, tests) is spoken to plainly.
            starttls = not _is_loopback(settings.smtp_host)
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=starttls,
            ca_file=ca_file,
            timeout=timeout,
        )


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: not known to be local
        return False


@dataclass(frozen=True)
class DeliveryResult:
    """The typed outcome of ``deliver``.

    ``refused`` maps each recipient who did not get the message to (SMTP code, reply); the code
    is ``NO_CODE`` (-1) when a session failed without a reply (connection lost, timeout).
    """

    outcome: Outcome
    attempts: int
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    detail: str = ""
    message_id: str = ""
    code: int | None = None

    @property
    def deferred(self) -> tuple[str, ...]:
        """Recipients missed for a temporary reason (4xx, no reply): worth a later message."""
        return tuple(addr for addr, (code, _) in self.refused.items() if not 500 <= code < 600)


def deliver(
    message: EmailMessage,
    *,
    config: SmtpConfig,
    recipients: Sequence[str] | None = None,
    attempts: int = 3,
    backoff: float = 2.0,
    max_backoff: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    before_data: Callable[[], None] | None = None,
) -> DeliveryResult:
    """Send ``message`` to ``recipients`` (default: its To/Cc/Bcc) and say what happened.

    ``before_data`` is called in every session once the server has accepted the sender and a
    recipient, right before the DATA command: the last moment at which the server cannot have
    the message. Whatever it raises ends the session there (QUIT, no DATA) and propagates.
    """
    message_id = _one_line(str(message.get("Message-ID", "")))
    wanted = list(dict.fromkeys(recipients if recipients is not None else _recipients(message)))
    if not wanted:
        return DeliveryResult(
            Outcome.FAILED_PERMANENT, 0, detail="no recipients", message_id=message_id
        )
    try:
        payload = _payload(message)
    except UnsendableMessage as exc:
        return DeliveryResult(Outcome.FAILED_PERMANENT, 0, detail=str(exc), message_id=message_id)
    try:
        context = _tls_context(config) if config.starttls else None
    except (OSError, ssl.SSLError) as exc:
        detail = f"cannot load the CA file {config.ca_file}: {exc}"
        return DeliveryResult(Outcome.FAILED_PERMANENT, 0, detail=detail, message_id=message_id)
    secrets = _secret_forms(config)

    delivered: list[str] = []
    refused: dict[str, tuple[int, str]] = {}  # the latest RCPT refusal per address
    latest: dict[str, tuple[int, str]] = {}  # the latest reason of any kind per address
    pending = wanted
    failure: _Failure | None = None
    used = 0
    for attempt in range(1, max(1, attempts) + 1):
        used = attempt
        session = _session(payload, pending, config, context, secrets, before_data)
        log.debug("digest %s attempt %d: %s", message_id, attempt, session.describe())
        if session.aborted is not None:
            raise session.aborted
        delivered += session.delivered
        refused.update(session.refused)
        failure = session.failure
        latest.update(_reasons(pending, session))
        if failure is not None and failure.outcome is not Outcome.FAILED_TRANSIENT:
            break
        # Only recipients nobody has refused for good are worth another try.
        pending = [
            address
            for address in pending
            if address not in session.delivered and not _permanent(session.refused.get(address))
        ]
        if not pending:
            break
        if failure is None:
            failure = _Failure(
                Outcome.FAILED_TRANSIENT, None, f"{len(pending)} recipient(s) deferred"
            )
        if attempt < attempts:
            sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))

    result = _result(wanted, delivered, refused, latest, failure, used, message_id)
    log.info(
        "digest %s: %s after %d attempt(s)%s",
        message_id,
        result.outcome,
        result.attempts,
        f" ({result.detail})" if result.detail else "",
    )
    return result


def _reasons(pending: Sequence[str], session: _Session) -> dict[str, tuple[int, str]]:
    """Why each recipient tried in ``session`` did not get the message (if it said why)."""
    reasons: dict[str, tuple[int, str]] = {}
    failure = session.failure
    for address in pending:
        if address in session.refused:
            reasons[address] = session.refused[address]
        elif failure is not None:
            reasons[address] = (NO_CODE if failure.code is None else failure.code, failure.detail)
    return reasons


# --- one SMTP session -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    outcome: Outcome
    code: int | None
    detail: str


@dataclass
class _Session:
    delivered: list[str] = field(default_factory=list)
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    failure: _Failure | None = None
    # What before_data raised: the session ended before DATA and deliver re-raises it.
    aborted: Exception | None = None

    def describe(self) -> str:
        if self.aborted is not None:
            return f"stopped before DATA: {self.aborted!r}"
        if self.failure is None:
            return f"delivered to {len(self.delivered)}, refused {len(self.refused)}"
        return f"{self.failure.outcome}: {self.failure.detail}"


def _session(
    payload: bytes,
    recipients: Sequence[str],
    config: SmtpConfig,
    context: ssl.SSLContext | None,
    secrets: Sequence[str],
    before_data: Callable[[], None] | None = None,
) -> _Session:
    """One connection, one transaction; every error is translated into a _Failure here."""
    session = _Session()
    stage = "connect"
    dot_sent = False
    smtp: smtplib.SMTP | None = None
    try:
        smtp = smtplib.SMTP(
            config.host, config.port, local_hostname=config.local_hostname, timeout=config.timeout
        )
        stage = "EHLO"
        smtp.ehlo_or_helo_if_needed()
        if context is not None:
            stage = "STARTTLS"
            smtp.starttls(context=context)
            stage = "EHLO"
            smtp.ehlo_or_helo_if_needed()  # RFC 3207: forget what was said before TLS
        if config.user is not None and config.password is not None:
            stage = "AUTH"
            smtp.login(config.user, config.password.get_secret_value())
        stage = "MAIL FROM"
        code, reply = smtp.mail(config.sender)
        if code != 250:
            session.failure = _reply_failure(stage, code, reply, secrets)
            return session
        stage = "RCPT TO"
        accepted = _rcpt(smtp, recipients, session, secrets)
        if session.failure is not None:
            return session
        if not accepted:
            session.failure = _all_refused(session.refused)
            return session
        stage = "DATA"
        if before_data is not None:
            try:
                before_data()
            except Exception as exc:  # the caller's own error, not an SMTP one: handed back
                session.aborted = exc
                return session
        code, reply = smtp.docmd("DATA")
        if code != 354:
            session.failure = _reply_failure(stage, code, reply, secrets)
            return session
        stage = "message"
        smtp.send(payload)  # raises before returning if the final "." was not handed over
        dot_sent = True
        stage = "end of DATA"
        code, reply = _end_of_data(smtp, config)
        if code != 250:
            session.failure = _reply_failure(stage, code, reply, secrets)
            return session
        session.delivered = accepted
        return session
    except (smtplib.SMTPException, OSError, UnicodeError) as exc:
        if dot_sent:
            detail = (
                f"connection lost after the end of DATA, before the server replied "
                f"({_text(str(exc), secrets)}); the server may have the message"
            )
            session.failure = _Failure(Outcome.UNKNOWN, None, detail)
        else:
            session.failure = _exception_failure(stage, exc, secrets)
        return session
    finally:
        if smtp is not None:
            # Say goodbye only while the server is still talking (its last word was a reply);
            # after a timeout, a QUIT would just wait out another timeout.
            if session.failure is None or session.failure.code is not None:
                _quit(smtp)
            smtp.close()


def _rcpt(
    smtp: smtplib.SMTP, recipients: Sequence[str], session: _Session, secrets: Sequence[str]
) -> list[str]:
    """RCPT TO each recipient: those accepted; refusals go to ``session``, a 421 is its failure."""
    accepted: list[str] = []
    for address in recipients:
        try:
            code, reply = smtp.rcpt(address)
        except UnicodeEncodeError:
            # smtplib sends commands as ASCII (no SMTPUTF8): this address cannot be sent
            # to, but nothing reached the wire, so the session goes on for the others.
            session.refused[address] = (553, "address is not ASCII (SMTPUTF8 not supported)")
            continue
        if code in (250, 251):
            accepted.append(address)
            continue
        if code == 421:  # the server is closing the channel: a session failure
            session.failure = _reply_failure("RCPT TO", code, reply, secrets)
            return accepted
        session.refused[address] = (code, _text(reply, secrets))
    return accepted


def _end_of_data(smtp: smtplib.SMTP, config: SmtpConfig) -> tuple[int, bytes]:
    """The reply to the final ".", waited for up to ``data_timeout``."""
    if smtp.sock is not None:
        smtp.sock.settimeout(config.data_timeout)
    code, reply = smtp.getreply()
    if smtp.sock is not None:
        # Back to the command timeout, or a server that never answers QUIT holds us for
        # the whole DATA allowance.
        smtp.sock.settimeout(config.timeout)
    return code, reply


def _exception_failure(stage: str, exc: BaseException, secrets: Sequence[str]) -> _Failure:
    """Translate an smtplib/ssl/socket error raised before the final "." into a _Failure."""
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if stage == "STARTTLS":
            detail = "the server does not offer STARTTLS; refusing to send in plaintext"
        else:
            detail = f"{stage}: {_text(str(exc), secrets)}"
        return _Failure(Outcome.FAILED_PERMANENT, None, detail)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return _Failure(Outcome.FAILED_PERMANENT, None, f"TLS certificate not trusted: {reason}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_failure(stage, exc.smtp_code, exc.smtp_error, secrets)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        reason = _text(str(exc), secrets)
        return _Failure(Outcome.FAILED_TRANSIENT, None, f"{stage}: connection lost ({reason})")
    if isinstance(exc, UnicodeError):
        # smtplib encodes commands as ASCII; an internationalised address needs SMTPUTF8.
        return _Failure(Outcome.FAILED_PERMANENT, None, f"{stage}: address is not ASCII")
    if isinstance(exc, smtplib.SMTPException):
        # e.g. "No suitable authentication method found": configuration, not luck.
        return _Failure(Outcome.FAILED_PERMANENT, None, f"{stage}: {_text(str(exc), secrets)}")
    # OSError: refused, reset, timed out, DNS, TLS handshake cut short.
    what = type(exc).__name__
    return _Failure(Outcome.FAILED_TRANSIENT, None, f"{stage}: {what}: {_text(str(exc), secrets)}")


def _reply_failure(stage: str, code: int, reply: bytes | str, secrets: Sequence[str]) -> _Failure:
    outcome = Outcome.FAILED_PERMANENT if 500 <= code < 600 else Outcome.FAILED_TRANSIENT
    return _Failure(outcome, code, f"{stage}: {code} {_text(reply, secrets)}")


def _all_refused(refused: dict[str, tuple[int, str]]) -> _Failure:
    codes = [code for code, _ in refused.values()]
    permanent = all(500 <= code < 600 for code in codes)
    outcome = Outcome.FAILED_PERMANENT if permanent else Outcome.FAILED_TRANSIENT
    code = codes[0] if codes else None
    return _Failure(outcome, code, f"RCPT TO: all {len(codes)} recipient(s) refused")


def _permanent(reply: tuple[int, str] | None) -> bool:
    return reply is not None and 500 <= reply[0] < 600


def _quit(smtp: smtplib.SMTP) -> None:
    # Whatever happened is decided already; a failing QUIT changes nothing.
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()


def _result(
    wanted: Sequence[str],
    delivered: Sequence[str],
    refused: dict[str, tuple[int, str]],
    latest: dict[str, tuple[int, str]],
    failure: _Failure | None,
    attempts: int,
    message_id: str,
) -> DeliveryResult:
    missing = [address for address in wanted if address not in delivered]
    if delivered:
        # Some recipients have it, so the message went out; each missing one says why not.
        missed = {address: latest.get(address, (NO_CODE, "not delivered")) for address in missing}
    else:
        missed = {address: refused[address] for address in missing if address in refused}
    if failure is not None and failure.outcome is Outcome.UNKNOWN:
        return DeliveryResult(
            Outcome.UNKNOWN, attempts, missed, failure.detail, message_id, failure.code
        )
    if not missing:
        return DeliveryResult(Outcome.SENT, attempts, {}, "", message_id)
    if delivered:
        detail = f"{len(missing)} of {len(wanted)} recipient(s) not delivered"
        return DeliveryResult(Outcome.SENT, attempts, missed, detail, message_id)
    if failure is None:  # nothing accepted and nothing said why: only when no one was tried
        return DeliveryResult(Outcome.FAILED_PERMANENT, attempts, missed, "", message_id)
    return DeliveryResult(
        failure.outcome, attempts, missed, failure.detail, message_id, failure.code
    )


# --- message and secrets ----------------------------------------------------------------------


def _recipients(message: EmailMessage) -> list[str]:
    headers = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    return [address for _, address in getaddresses(headers) if address]


class UnsendableMessage(PermanentError):
    """A message that cannot be written out as it is (a header would change or appear)."""

    def __init__(self, message_id: str, problem: str) -> None:
        super().__init__(message_id, problem)
        self.message_id = message_id
        self.problem = problem

    def __str__(self) -> str:
        return f"message {self.message_id or '(no Message-ID)'}: {self.problem}"


def serialise(message: EmailMessage) -> bytes:
    """The message as it goes on the wire (no Bcc), checked to read back with its own headers.

    Raises UnsendableMessage when writing fails or when the written headers would be read as
    other headers (a header value folded into a header of its own, or into the body).
    """
    message_id = _one_line(str(message.get("Message-ID", "")))
    if "Bcc" in message:  # the envelope carries Bcc recipients; the header must not
        message = copy.deepcopy(message)
        del message["Bcc"]
    try:
        raw = message.as_bytes(policy=_WIRE_POLICY)
    except (MessageError, ValueError, LookupError) as exc:
        raise UnsendableMessage(message_id, f"cannot be written: {_one_line(str(exc))}") from exc
    # Iterating a message gives its header names, in order.
    wanted = [name.lower() for name in message]
    found = [name.lower() for name in BytesHeaderParser(policy=policy.SMTP).parsebytes(raw)]
    if found != wanted:
        problem = f"its headers would be read as {', '.join(found)} instead of {', '.join(wanted)}"
        raise UnsendableMessage(message_id, problem)
    return raw


def _payload(message: EmailMessage) -> bytes:
    """The DATA payload: CRLF everywhere, leading dots doubled, ending with CRLF "." CRLF."""
    raw = serialise(message)
    # No bare CR or LF may reach the wire: it is how "SMTP smuggling" ends DATA early.
    raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    raw = re.sub(rb"(?m)^\.", b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    # Verifying by default: CERT_REQUIRED and hostname checking, system CAs or the given file.
    cafile = str(config.ca_file) if config.ca_file is not None else None
    return ssl.create_default_context(cafile=cafile)


def _secret_forms(config: SmtpConfig) -> list[str]:
    """The password as it could appear in a server reply: plain and in AUTH encodings."""
    if config.password is None or not config.password.get_secret_value():
        return []
    password = config.password.get_secret_value()
    forms = [password, _b64(password)]
    if config.user is not None:
        forms.append(_b64(f"\0{config.user}\0{password}"))
    return forms


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _text(reply: bytes | str, secrets: Sequence[str]) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    for secret in secrets:
        text = text.replace(secret, "***")
    return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())
