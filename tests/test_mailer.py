"""SMTP delivery against real loopback servers, and the outbox state machine."""

# Cyrillic test strings are meant to be Cyrillic, not look-alike Latin letters.
# ruff: noqa: RUF001

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from smtpservers import (
    HOST,
    RawSmtpServer,
    ScriptedHandler,
    closed_port,
    password_authenticator,
    server_tls_context,
    smtpd,
)

from pipeline.alerts.digest import Digest, DigestItem, render_digest
from pipeline.alerts.outbox import (
    OUTBOX_MAX_RUNS,
    OUTBOX_RETRY_BASE,
    Attempted,
    Claim,
    Interrupted,
    OutboxRecord,
    OutboxState,
    OutboxTransitionError,
    Resend,
    Transmit,
    outbox_transition,
)
from pipeline.alerts.smtp import (
    DeliveryResult,
    Outcome,
    SmtpConfig,
    UnsendableMessage,
    deliver,
    serialise,
)
from pipeline.errors import ConfigError
from pipeline.settings import load_settings

SENDER = "newsradar@alerts.example.org"
ALICE = "alice@example.org"
BOB = "bob@example.org"
# A title that the email package, given it as a header value, decodes into CR LF and a Bcc.
ENCODED_WORD_TITLE = "=?utf-8?q?NATO=0D=0ABcc:_evil@x.example=0D=0A=0D=0APhish?="
DIGEST_HEADERS = [
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]
PASSWORD = "s3cret-Pa55word!"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Sleeps:
    """An injectable sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _config(port: int, **changes: object) -> SmtpConfig:
    config = SmtpConfig(host=HOST, port=port, sender=SENDER, timeout=5.0, local_hostname="test")
    return replace(config, **changes)  # type: ignore[arg-type]


def _digest(title: str = "Finland joins NATO", **item_changes: object) -> Digest:
    item = DigestItem(
        article_id="art-1",
        title=title,
        url="https://news.example.org/1",
        source="Example World News",
        language="en",
        published=START,
        snippet="NATO enlargement reaches the Nordic countries.",
        matched_terms=("NATO",),
        also_reported_by=("Daily Planet",),
    )
    return Digest(
        rule_id="nato-enlargement",
        rule_name="NATO enlargement",
        recipients=(ALICE, BOB),
        items=(replace(item, **item_changes),),  # type: ignore[arg-type]
        window_start=START,
        window_end=START + timedelta(minutes=15),
    )


def _message(digest: Digest | None = None) -> EmailMessage:
    return render_digest(digest or _digest(), sender=SENDER)


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


# --- outcomes against aiosmtpd ----------------------------------------------------------------


def test_plain_delivery_to_both_recipients() -> None:
    handler = ScriptedHandler()
    message = _message()
    with smtpd(handler) as port:
        result = deliver(message, config=_config(port))
    assert result.outcome is Outcome.SENT
    assert (result.attempts, result.refused, result.code) == (1, {}, None)
    assert result.message_id == message["Message-ID"]
    [received] = handler.received
    assert received.mail_from == SENDER
    assert received.rcpt_tos == [ALICE, BOB]
    assert received.message()["Message-ID"] == message["Message-ID"]


def test_451_on_data_then_250_delivers_exactly_once() -> None:
    handler = ScriptedHandler(data_replies=["451 4.3.0 Try again later"])
    sleeps = Sleeps()
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), attempts=3, backoff=2.0, sleep=sleeps)
    assert result.outcome is Outcome.SENT
    assert result.attempts == 2
    assert handler.data_commands == 2
    assert len(handler.received) == 1
    assert sleeps.delays == [2.0]


def test_451_for_one_recipient_retries_only_that_recipient() -> None:
    handler = ScriptedHandler(rcpt_replies={BOB: ["451 4.2.0 Mailbox busy"]})
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), sleep=Sleeps())
    assert result.outcome is Outcome.SENT
    assert (result.attempts, result.refused) == (2, {})
    # Alice got it in the first session and is not sent a second copy.
    assert [r.rcpt_tos for r in handler.received] == [[ALICE], [BOB]]


def test_recipient_still_deferred_after_the_last_attempt_is_recorded() -> None:
    handler = ScriptedHandler(rcpt_replies={BOB: ["451 4.2.0 Mailbox busy"] * 2})
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), attempts=2, sleep=Sleeps())
    # Alice has the message, so it went out; Bob is recorded for the outbox to retry later.
    assert result.outcome is Outcome.SENT
    assert result.attempts == 2
    assert result.refused == {BOB: (451, "4.2.0 Mailbox busy")}
    assert result.deferred == (BOB,)
    assert [r.rcpt_tos for r in handler.received] == [[ALICE]]


def test_550_for_one_of_two_recipients_delivers_to_the_other() -> None:
    handler = ScriptedHandler(rcpt_replies={BOB: ["550 5.1.1 No such user"]})
    sleeps = Sleeps()
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), sleep=sleeps)
    assert result.outcome is Outcome.SENT
    assert result.attempts == 1
    assert result.refused == {BOB: (550, "5.1.1 No such user")}
    assert result.deferred == ()
    assert [r.rcpt_tos for r in handler.received] == [[ALICE]]
    assert sleeps.delays == []


def test_all_recipients_refused_is_permanent_and_sends_no_data() -> None:
    handler = ScriptedHandler(
        rcpt_replies={ALICE: ["550 5.1.1 No such user"], BOB: ["553 5.1.3 Bad address"]}
    )
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), sleep=Sleeps())
    assert result.outcome is Outcome.FAILED_PERMANENT
    assert (result.attempts, result.code) == (1, 550)
    assert result.refused == {ALICE: (550, "5.1.1 No such user"), BOB: (553, "5.1.3 Bad address")}
    assert handler.data_commands == 0


def test_554_on_data_is_permanent_after_one_attempt() -> None:
    handler = ScriptedHandler(data_replies=["554 5.6.0 Message rejected"])
    sleeps = Sleeps()
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), attempts=3, sleep=sleeps)
    assert result.outcome is Outcome.FAILED_PERMANENT
    assert (result.attempts, result.code) == (1, 554)
    assert "554 5.6.0 Message rejected" in result.detail
    assert handler.received == []
    assert sleeps.delays == []


def test_persistent_451_gives_up_as_transient_with_capped_backoff() -> None:
    handler = ScriptedHandler(data_replies=["451 4.3.0 Busy"] * 4)
    sleeps = Sleeps()
    with smtpd(handler) as port:
        result = deliver(
            _message(),
            config=_config(port),
            attempts=4,
            backoff=10.0,
            max_backoff=25.0,
            sleep=sleeps,
        )
    assert result.outcome is Outcome.FAILED_TRANSIENT
    assert (result.attempts, result.code) == (4, 451)
    assert sleeps.delays == [10.0, 20.0, 25.0]
    assert handler.received == []


def test_connection_refused_is_transient_and_retried() -> None:
    sleeps = Sleeps()
    result = deliver(_message(), config=_config(closed_port()), attempts=2, sleep=sleeps)
    assert result.outcome is Outcome.FAILED_TRANSIENT
    assert result.attempts == 2
    assert result.detail.startswith("connect: ConnectionRefusedError")
    assert result.refused == {}  # no server refused anyone: nobody was reached
    assert sleeps.delays == [2.0]


def test_non_ascii_recipient_is_refused_and_the_others_get_the_mail() -> None:
    jurgen = "jürgen@example.org"
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        result = deliver(
            _message(), config=_config(port), recipients=[ALICE, jurgen, BOB], sleep=Sleeps()
        )
    assert result.outcome is Outcome.SENT
    assert result.attempts == 1
    assert result.refused == {jurgen: (553, "address is not ASCII (SMTPUTF8 not supported)")}
    assert result.deferred == ()  # permanent: not retried
    assert [r.rcpt_tos for r in handler.received] == [[ALICE, BOB]]


def test_explicit_envelope_recipients_override_the_headers() -> None:
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), recipients=[BOB])
    assert result.outcome is Outcome.SENT
    assert [r.rcpt_tos for r in handler.received] == [[BOB]]


# --- faults aiosmtpd will not produce: a raw server ------------------------------------------


def test_drop_after_final_dot_is_unknown_and_never_retried() -> None:
    sleeps = Sleeps()
    with RawSmtpServer("drop_after_dot") as server:
        result = deliver(_message(), config=_config(server.port), attempts=3, sleep=sleeps)
    assert result.outcome is Outcome.UNKNOWN
    assert result.attempts == 1
    assert "may have the message" in result.detail
    assert server.connections == 1
    assert len(server.messages) == 1
    assert server.messages[0].endswith(b"\r\n.\r\n")
    assert sleeps.delays == []


class _MuteOnQuitServer(RawSmtpServer):
    """Accepts the message with 250, then never answers QUIT: it waits for the client to go."""

    def _serve(self, rfile: Any, wfile: Any) -> None:
        wfile.write(b"220 raw ESMTP\r\n")
        while line := rfile.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"QUIT":
                rfile.readline()  # silent until the client hangs up
                return
            if verb != b"DATA":
                wfile.write(b"250 OK\r\n")
                continue
            wfile.write(b"354 go ahead\r\n")
            body = b""
            while not body.endswith(b"\r\n.\r\n"):
                chunk = rfile.readline()
                if not chunk:
                    return
                body += chunk
            self.messages.append(body)
            wfile.write(b"250 queued\r\n")


def test_quit_is_not_given_the_data_timeout() -> None:
    with _MuteOnQuitServer() as server:
        config = _config(server.port, timeout=0.5, data_timeout=10.0)
        started = time.monotonic()
        result = deliver(_message(), config=config, attempts=1, sleep=Sleeps())
        elapsed = time.monotonic() - started
    assert result.outcome is Outcome.SENT
    assert len(server.messages) == 1
    assert elapsed < 3.0  # the command timeout bounds QUIT, not the 10 s end-of-DATA allowance


def test_drop_before_any_message_byte_is_transient_and_retried() -> None:
    with RawSmtpServer("drop_on_data") as server:
        result = deliver(_message(), config=_config(server.port), attempts=2, sleep=Sleeps())
    assert result.outcome is Outcome.FAILED_TRANSIENT
    assert result.attempts == 2
    assert server.connections == 2
    assert server.messages == []


@pytest.mark.parametrize(
    ("greeting", "outcome", "attempts"),
    [
        ("421 4.3.2 Too busy", Outcome.FAILED_TRANSIENT, 2),
        ("554 5.7.1 No service for you", Outcome.FAILED_PERMANENT, 1),
    ],
)
def test_greeting_code_decides_retry(greeting: str, outcome: Outcome, attempts: int) -> None:
    with RawSmtpServer(greeting=greeting) as server:
        result = deliver(_message(), config=_config(server.port), attempts=2, sleep=Sleeps())
    assert result.outcome is outcome
    assert result.attempts == attempts
    assert result.code == int(greeting[:3])
    assert server.connections == attempts


def test_silent_server_times_out_as_transient() -> None:
    with RawSmtpServer("silent") as server:
        config = _config(server.port, timeout=0.3)
        result = deliver(_message(), config=config, attempts=1, sleep=Sleeps())
    assert result.outcome is Outcome.FAILED_TRANSIENT
    assert result.detail.startswith("connect:")
    assert "timed out" in result.detail


# --- what arrives -----------------------------------------------------------------------------


def test_hostile_title_arrives_escaped_with_headers_intact() -> None:
    title = "<script>alert(1)</script>\r\nBcc: evil@example.org"
    digest = _digest(title)
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        result = deliver(_message(digest), config=_config(port))
    assert result.outcome is Outcome.SENT
    [received] = handler.received
    assert received.rcpt_tos == [ALICE, BOB]
    message = received.message()
    assert message["Bcc"] is None
    assert "evil@example.org" not in received.rcpt_tos
    subject = str(message["Subject"])
    assert subject == (
        "[newsradar] NATO enlargement: 1 new story — "
        "<script>alert(1)</script> Bcc: evil@example.org"
    )
    html = _body(message, "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Bcc: evil@example.org" in html


def test_an_encoded_word_title_arrives_as_text_with_exactly_the_digest_headers() -> None:
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        result = deliver(_message(_digest(ENCODED_WORD_TITLE)), config=_config(port))
    assert result.outcome is Outcome.SENT
    [received] = handler.received
    assert received.rcpt_tos == [ALICE, BOB]
    message = received.message()
    assert message.keys() == DIGEST_HEADERS
    assert message["Bcc"] is None
    # The reader sees the title as it was (the zero-width space only breaks the "=?").
    subject = str(message["Subject"]).replace("\N{ZERO WIDTH SPACE}", "")
    assert subject == f"[newsradar] NATO enlargement: 1 new story — {ENCODED_WORD_TITLE}"
    assert _body(message, "plain").count(ENCODED_WORD_TITLE) == 1
    assert _body(message, "html").count(ENCODED_WORD_TITLE) == 1
    assert not _body(message, "plain").startswith("Phish")


def test_a_message_whose_headers_would_not_survive_is_never_sent() -> None:
    message = _message()
    # Bypasses render_digest's header text: the last line of defence is the mailer's own.
    message.replace_header("Subject", ENCODED_WORD_TITLE)
    with pytest.raises(UnsendableMessage) as raised:
        serialise(message)
    assert str(raised.value).startswith(f"message {message['Message-ID']}: ")
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        result = deliver(message, config=_config(port), attempts=3, sleep=Sleeps())
    assert (result.outcome, result.attempts) == (Outcome.FAILED_PERMANENT, 0)
    assert result.detail == str(raised.value)
    assert (handler.mail_commands, handler.received) == (0, [])


def test_before_data_runs_once_per_session_after_rcpt_and_before_data() -> None:
    handler = ScriptedHandler(data_replies=["451 4.3.0 try again"])
    seen: list[tuple[int, int]] = []
    with smtpd(handler) as port:
        result = deliver(
            _message(),
            config=_config(port),
            attempts=2,
            sleep=Sleeps(),
            before_data=lambda: seen.append((handler.mail_commands, handler.data_commands)),
        )
    assert result.outcome is Outcome.SENT
    assert seen == [(1, 0), (2, 1)]  # each time MAIL was accepted and DATA not yet given
    assert len(handler.received) == 1


def test_before_data_raising_ends_the_session_without_data_and_propagates() -> None:
    handler = ScriptedHandler()

    def claim_lost() -> None:
        raise RuntimeError("claim lost")

    with smtpd(handler) as port, pytest.raises(RuntimeError, match="claim lost"):
        deliver(_message(), config=_config(port), attempts=3, before_data=claim_lost)
    assert (handler.mail_commands, handler.data_commands, handler.received) == (1, 0, [])


def test_before_data_is_not_called_when_every_recipient_is_refused() -> None:
    refusal = ["550 5.1.1 No such user"]
    handler = ScriptedHandler(rcpt_replies={ALICE: list(refusal), BOB: list(refusal)})
    calls: list[None] = []
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port), before_data=lambda: calls.append(None))
    assert (result.outcome, calls, handler.data_commands) == (Outcome.FAILED_PERMANENT, [], 0)


def test_cyrillic_and_french_survive_the_round_trip() -> None:
    title = "Расширение НАТО : l'élargissement « vers le Nord »"
    digest = _digest(title, snippet="Члены НАТО и l'OTAN — élargissement.", matched_terms=("нато",))
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        deliver(_message(digest), config=_config(port))
    message = handler.received[0].message()
    assert str(message["Subject"]).endswith(f"— {title}")
    assert title in _body(message, "plain")
    assert "Члены *НАТО* и l'OTAN — élargissement." in _body(message, "plain")
    assert "Члены <mark>НАТО</mark> и l&#x27;OTAN — élargissement." in _body(message, "html")


def test_resent_digest_carries_the_same_message_id() -> None:
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        first = deliver(_message(), config=_config(port))
        second = deliver(_message(), config=_config(port))
    ids = [r.message()["Message-ID"] for r in handler.received]
    assert ids[0] == ids[1] == first.message_id == second.message_id
    assert first.message_id.startswith("<newsradar.")


def test_any_message_goes_through_with_leading_dots_intact() -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ALICE
    message["Bcc"] = BOB
    message["Subject"] = "dots"
    message.set_content(".starts with a dot\n.\n..two\nend\n")
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        result = deliver(message, config=_config(port))
    assert (result.outcome, result.message_id) == (Outcome.SENT, "")
    [received] = handler.received
    assert received.rcpt_tos == [ALICE, BOB]  # Bcc is an envelope recipient ...
    parsed = received.message()
    assert parsed["Bcc"] is None  # ... and never a header anyone sees
    body = parsed.get_content().replace("\r\n", "\n")  # parsed from the wire, CRLF kept
    assert body == ".starts with a dot\n.\n..two\nend\n"


# --- TLS and secrets --------------------------------------------------------------------------


def test_starttls_required_but_not_offered_fails_without_sending() -> None:
    handler = ScriptedHandler()
    sleeps = Sleeps()
    with smtpd(handler) as port:
        result = deliver(_message(), config=_config(port, starttls=True), sleep=sleeps)
    assert result.outcome is Outcome.FAILED_PERMANENT
    assert result.attempts == 1
    assert "does not offer STARTTLS" in result.detail
    assert handler.mail_commands == 0
    assert handler.received == []


def test_starttls_with_trusted_ca_file_sends_over_tls(tmp_path: Path) -> None:
    handler = ScriptedHandler()
    context = server_tls_context(tmp_path)
    with smtpd(handler, tls_context=context, require_starttls=True) as port:
        config = _config(port, starttls=True, ca_file=tmp_path / "smtp-cert.pem")
        result = deliver(_message(), config=config)
    assert result.outcome is Outcome.SENT
    assert [r.tls for r in handler.received] == [True]


def test_starttls_with_untrusted_certificate_fails_without_sending(tmp_path: Path) -> None:
    handler = ScriptedHandler()
    context = server_tls_context(tmp_path)
    with smtpd(handler, tls_context=context, require_starttls=True) as port:
        result = deliver(_message(), config=_config(port, starttls=True), sleep=Sleeps())
    assert result.outcome is Outcome.FAILED_PERMANENT
    assert result.detail.startswith("TLS certificate not trusted")
    assert handler.mail_commands == 0


def test_missing_ca_file_is_a_permanent_error(tmp_path: Path) -> None:
    config = _config(closed_port(), starttls=True, ca_file=tmp_path / "nope.pem")
    result = deliver(_message(), config=config)
    assert result.outcome is Outcome.FAILED_PERMANENT
    assert result.attempts == 0
    assert "nope.pem" in result.detail


def _auth_server_kwargs(tmp_path: Path, password: str, *, echo: bool = False) -> dict[str, Any]:
    return {
        "tls_context": server_tls_context(tmp_path),
        "require_starttls": True,
        "authenticator": password_authenticator("newsradar", password, echo=echo),
        "auth_required": True,
    }


def _auth_config(port: int, tmp_path: Path) -> SmtpConfig:
    return _config(
        port,
        starttls=True,
        ca_file=tmp_path / "smtp-cert.pem",
        user="newsradar",
        password=SecretStr(PASSWORD),
    )


def test_login_over_starttls_with_the_right_password_delivers(tmp_path: Path) -> None:
    handler = ScriptedHandler()
    with smtpd(handler, **_auth_server_kwargs(tmp_path, PASSWORD)) as port:
        result = deliver(_message(), config=_auth_config(port, tmp_path))
    assert result.outcome is Outcome.SENT
    assert [r.tls for r in handler.received] == [True]


def test_password_never_shows_in_results_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline")
    handler = ScriptedHandler()
    # This server quotes the rejected password in its reply, as a careless one might.
    with smtpd(handler, **_auth_server_kwargs(tmp_path, "other", echo=True)) as port:
        config = _auth_config(port, tmp_path)
        result = deliver(_message(), config=config, sleep=Sleeps())
    assert result.outcome is Outcome.FAILED_PERMANENT
    assert (result.attempts, result.code) == (1, 535)
    assert result.detail == "AUTH: 535 bad password ***"
    assert handler.mail_commands == 0
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("pipeline"))
    assert "535" in ours  # the outcome was logged ...
    copied = pickle.loads(pickle.dumps(config))
    for text in (repr(result), str(result), repr(config), str(config), repr(copied), ours):
        assert PASSWORD not in text  # ... and the password is nowhere


def test_config_from_settings() -> None:
    settings = load_settings(
        {
            "NEWSRADAR_SMTP_HOST": "smtp.example.org",
            "NEWSRADAR_SMTP_PORT": "587",
            "NEWSRADAR_SMTP_USER": "newsradar",
            "NEWSRADAR_SMTP_PASSWORD": PASSWORD,
            "NEWSRADAR_SMTP_STARTTLS": "true",
            "NEWSRADAR_SMTP_FROM": SENDER,
        }
    )
    config = SmtpConfig.from_settings(settings, ca_file=Path("/etc/ca.pem"), timeout=12.0)
    assert (config.host, config.port, config.sender, config.user) == (
        "smtp.example.org",
        587,
        SENDER,
        "newsradar",
    )
    assert config.password is not None and config.password.get_secret_value() == PASSWORD
    assert (config.starttls, config.ca_file, config.timeout) == (True, Path("/etc/ca.pem"), 12.0)
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("host", "starttls", "expected"),
    [
        ("smtp.example.org", None, True),  # unset: verified TLS to a remote relay
        ("192.0.2.25", None, True),
        ("127.0.0.1", None, False),  # the loopback sink of the demo and tests
        ("localhost", None, False),
        ("smtp.example.org", "false", False),  # an explicit opt-out (doctor reports it)
        ("127.0.0.1", "true", True),
    ],
)
def test_config_from_settings_uses_starttls_unless_loopback(
    host: str, starttls: str | None, expected: bool
) -> None:
    env = {"NEWSRADAR_SMTP_HOST": host}
    if starttls is not None:
        env["NEWSRADAR_SMTP_STARTTLS"] = starttls
    config = SmtpConfig.from_settings(load_settings(env))
    assert config.starttls is expected
    assert config.unencrypted_remote is (host == "smtp.example.org" and not expected)


def test_config_from_settings_login_to_a_remote_host_needs_no_explicit_starttls() -> None:
    env = {
        "NEWSRADAR_SMTP_HOST": "smtp.example.org",
        "NEWSRADAR_SMTP_USER": "newsradar",
        "NEWSRADAR_SMTP_PASSWORD": PASSWORD,
    }
    assert SmtpConfig.from_settings(load_settings(env)).starttls is True
    with pytest.raises(ConfigError, match="needs STARTTLS"):
        SmtpConfig.from_settings(load_settings({**env, "NEWSRADAR_SMTP_STARTTLS": "false"}))


@pytest.mark.parametrize(
    "changes",
    [{"timeout": 0.0}, {"data_timeout": -1.0}, {"user": "someone"}, {"password": SecretStr("x")}],
)
def test_config_rejects_unusable_values(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _config(25, **changes)


# --- the outbox state machine -----------------------------------------------------------------

T0 = datetime(2024, 5, 1, 12, 15, tzinfo=UTC)


def _result(outcome: Outcome, detail: str = "", **kw: object) -> DeliveryResult:
    return DeliveryResult(outcome, 1, detail=detail, message_id="<m@x>", **kw)  # type: ignore[arg-type]


def test_outbox_happy_path() -> None:
    sending = outbox_transition(OutboxRecord(), Claim(T0))
    assert (sending.state, sending.runs) == (OutboxState.SENDING, 1)
    transmitting = outbox_transition(sending, Transmit(T0))
    assert (transmitting.state, transmitting.runs) == (OutboxState.TRANSMITTING, 1)
    refused = {BOB: (550, "No such user")}
    sent = outbox_transition(transmitting, Attempted(_result(Outcome.SENT, refused=refused), T0))
    assert (sent.state, sent.message_id, sent.refused) == (OutboxState.SENT, "<m@x>", refused)


def test_outbox_transient_failure_returns_to_pending_with_backoff() -> None:
    record = outbox_transition(OutboxRecord(), Claim(T0))
    record = outbox_transition(record, Attempted(_result(Outcome.FAILED_TRANSIENT, "451"), T0))
    assert record.state is OutboxState.PENDING
    assert record.next_attempt == T0 + OUTBOX_RETRY_BASE
    assert record.reason == "451"
    with pytest.raises(OutboxTransitionError, match="not due"):
        outbox_transition(record, Claim(T0 + OUTBOX_RETRY_BASE / 2))
    later = T0 + OUTBOX_RETRY_BASE
    record = outbox_transition(
        outbox_transition(record, Claim(later)),
        Attempted(_result(Outcome.FAILED_TRANSIENT, "451"), later),
    )
    assert record.next_attempt == later + 2 * OUTBOX_RETRY_BASE


def test_outbox_retries_a_deferred_recipient_in_a_later_run_with_the_same_message() -> None:
    handler = ScriptedHandler(rcpt_replies={BOB: ["451 4.2.0 Mailbox busy"] * 2})
    message = _message()
    with smtpd(handler) as port:
        record = outbox_transition(OutboxRecord(), Claim(T0))
        first = deliver(message, config=_config(port), attempts=2, sleep=Sleeps())
        record = outbox_transition(record, Attempted(first, T0))
        # Alice has it, Bob does not: the alert is not done until Bob has it too.
        assert (first.outcome, first.deferred) == (Outcome.SENT, (BOB,))
        assert record.state is OutboxState.PENDING
        assert (record.pending_recipients, record.next_attempt) == ((BOB,), T0 + OUTBOX_RETRY_BASE)
        later = T0 + OUTBOX_RETRY_BASE
        record = outbox_transition(record, Claim(later))
        second = deliver(message, config=_config(port), recipients=record.pending_recipients)
        record = outbox_transition(record, Attempted(second, later))
    assert (record.state, record.pending_recipients, record.refused) == (OutboxState.SENT, (), {})
    assert [r.rcpt_tos for r in handler.received] == [[ALICE], [BOB]]
    ids = {r.message()["Message-ID"] for r in handler.received}
    assert ids == {message["Message-ID"]}


def test_outbox_partial_retry_keeps_earlier_refusals() -> None:
    carol = "carol@example.org"
    first = _result(Outcome.SENT, refused={BOB: (451, "busy"), carol: (550, "No such user")})
    record = outbox_transition(outbox_transition(OutboxRecord(), Claim(T0)), Attempted(first, T0))
    assert (record.state, record.pending_recipients) == (OutboxState.PENDING, (BOB,))
    later = T0 + OUTBOX_RETRY_BASE
    record = outbox_transition(
        outbox_transition(record, Claim(later)), Attempted(_result(Outcome.SENT), later)
    )
    assert record.state is OutboxState.SENT
    assert record.refused == {carol: (550, "No such user")}


def test_outbox_gives_up_after_max_runs() -> None:
    record = OutboxRecord()
    at = T0
    for _ in range(OUTBOX_MAX_RUNS):
        record = outbox_transition(record, Claim(at))
        record = outbox_transition(record, Attempted(_result(Outcome.FAILED_TRANSIENT, "x"), at))
        at = record.next_attempt or at
    assert record.state is OutboxState.FAILED
    assert record.reason.startswith(f"still failing after {OUTBOX_MAX_RUNS} runs")


@pytest.mark.parametrize(
    ("outcome", "state"),
    [(Outcome.FAILED_PERMANENT, OutboxState.FAILED), (Outcome.UNKNOWN, OutboxState.UNKNOWN)],
)
def test_outbox_terminal_states_wait_for_an_operator(outcome: Outcome, state: OutboxState) -> None:
    record = outbox_transition(OutboxRecord(), Claim(T0))
    record = outbox_transition(record, Attempted(_result(outcome, "why"), T0))
    assert (record.state, record.reason, record.next_attempt) == (state, "why", None)
    with pytest.raises(OutboxTransitionError):
        outbox_transition(record, Claim(T0 + timedelta(days=1)))
    resent = outbox_transition(record, Resend(T0))
    assert (resent.state, resent.runs, resent.message_id) == (OutboxState.PENDING, 0, "<m@x>")


def test_outbox_interrupted_before_data_is_pending_and_due_again() -> None:
    failed_once = OutboxRecord(runs=1, next_attempt=T0, reason="451")
    record = outbox_transition(failed_once, Claim(T0))
    later = T0 + timedelta(hours=1)
    record = outbox_transition(record, Interrupted(later))
    assert (record.state, record.runs, record.next_attempt) == (OutboxState.PENDING, 2, None)
    assert record.reason == "interrupted before DATA; the message was not handed over"
    assert outbox_transition(record, Claim(later)).state is OutboxState.SENDING


def test_outbox_interrupted_while_transmitting_is_unknown() -> None:
    record = outbox_transition(outbox_transition(OutboxRecord(), Claim(T0)), Transmit(T0))
    record = outbox_transition(record, Interrupted(T0))
    assert record.state is OutboxState.UNKNOWN
    assert "may have been delivered" in record.reason


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (OutboxState.PENDING, Attempted(DeliveryResult(Outcome.SENT, 1), T0)),
        (OutboxState.PENDING, Resend(T0)),
        (OutboxState.SENDING, Claim(T0)),
        (OutboxState.PENDING, Transmit(T0)),
        (OutboxState.TRANSMITTING, Transmit(T0)),
        (OutboxState.TRANSMITTING, Claim(T0)),
        (OutboxState.TRANSMITTING, Resend(T0)),
        (OutboxState.SENT, Claim(T0)),
        (OutboxState.SENT, Resend(T0)),
        (OutboxState.SENT, Interrupted(T0)),
        (OutboxState.UNKNOWN, Attempted(DeliveryResult(Outcome.SENT, 1), T0)),
    ],
)
def test_outbox_invalid_transitions_raise(state: OutboxState, event: object) -> None:
    with pytest.raises(OutboxTransitionError) as err:
        outbox_transition(OutboxRecord(state=state), event)  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(err.value))
    assert (copy.state, copy.event) == (state, type(event).__name__.lower())
    assert str(copy) == str(err.value)


@pytest.mark.parametrize(
    ("host", "starttls", "refused"),
    [
        ("smtp.example.org", False, True),
        ("smtp.example.org", True, False),
        ("127.0.0.1", False, False),
        ("localhost", False, False),
    ],
)
def test_login_in_clear_text_to_a_remote_host_is_refused(
    host: str, starttls: bool, refused: bool
) -> None:
    def build() -> SmtpConfig:
        return SmtpConfig(
            host=host,
            port=587,
            sender="newsradar@example.org",
            user="newsradar",
            password=SecretStr(PASSWORD),
            starttls=starttls,
        )

    if refused:
        with pytest.raises(ConfigError, match="needs STARTTLS"):
            build()
    else:
        assert build().host == host
