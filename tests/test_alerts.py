"""Alerts end to end: the real node, the shipped rule, digests mailed to loopback SMTP servers."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from elasticsearch import Elasticsearch
from smtpservers import HOST, RawSmtpServer, ScriptedHandler, closed_port, smtpd

from devtools.demosite import load_catalog, load_sources
from pipeline.alerts.match import match_new
from pipeline.alerts.outbox import (
    SENDING_LEASE,
    Claim,
    ClaimLost,
    InFlight,
    Interrupted,
    OutboxState,
    Transmit,
    alert_id,
    digest_id,
    outbox_counts,
    outbox_transition,
    read_record,
    record_fields,
)
from pipeline.alerts.reads import Hit
from pipeline.alerts.rules import store_rules
from pipeline.alerts.send import send_digests
from pipeline.alerts.smtp import SmtpConfig
from pipeline.cli import main
from pipeline.normalise.extract import extract_article
from pipeline.settings import AlertRule, Config, Settings, Source, load_config, load_settings
from pipeline.store.client import IndexNames, install

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo" / "site"
SENDER = "newsradar@alerts.example.org"
ALICE = "alice@example.org"
BOB = "bob@example.org"
T0 = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
ORIGINAL = "/northwind-times/world/when-moscow-asked-to-join-nato.html"
REWORDED = "/baltic-observer/news/2024/seventy-years-ago-the-kremlin-applied-to-nato.html"
STORY = "ussr-1954-nato-request"


@dataclass
class World:
    """One test's install: its index names, its configuration and its client."""

    es: Elasticsearch
    names: IndexNames
    config: Config

    def rule(self, rule_id: str = "nato-enlargement") -> AlertRule:
        return next(r for r in self.config.alerts if r.id == rule_id)


def _shipped_rule(**changes: Any) -> AlertRule:
    shipped = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / "config")}))
    rule = next(r for r in shipped.alerts if r.id == "nato-enlargement")
    return rule.model_copy(update={"recipients": (ALICE,), **changes})


def _world(es: Elasticsearch, settings: Settings, *rules: AlertRule) -> World:
    names = IndexNames(settings.index_prefix)
    install(es, settings.index_prefix)
    sources = tuple(
        Source(id=s.id, name=s.name, homepage=f"http://demo.test{s.home}") for s in load_sources()
    )
    config = Config(settings=settings, sources=sources, alerts=rules or (_shipped_rule(),))
    store_rules(es, names, config.alerts, now=T0)
    return World(es, names, config)


def _demo_article(path: str, *, story: str, indexed: datetime, **changes: Any) -> dict[str, Any]:
    """A demo page as the articles mapping stores it, text taken with pipeline.normalise.extract."""
    entry = next(e for e in load_catalog() if e.path == path)
    article = extract_article(
        (DEMO / path.lstrip("/")).read_bytes(), f"http://demo.test{path}", fetched_at=indexed
    )
    lang = entry.language
    document = {
        "url": article.url,
        "canonical_url": article.canonical_url,
        "source": entry.source,
        "title": article.title,
        "text": article.text,
        f"title_{lang}": article.title,
        f"text_{lang}": article.text,
        "language": lang,
        "published": entry.published.isoformat(),
        "fetched": indexed.isoformat(),
        "indexed": indexed.isoformat(),
        "story_id": story,
    }
    document.update(changes)
    if "title" in changes:
        document[f"title_{lang}"] = changes["title"]
    return document


def _index(world: World, docs: dict[str, dict[str, Any]]) -> list[str]:
    for doc_id, document in docs.items():
        world.es.index(index=world.names.articles, id=doc_id, document=document)
    return list(docs)


def _smtp(port: int) -> SmtpConfig:
    return SmtpConfig(host=HOST, port=port, sender=SENDER, timeout=5.0, local_hostname="test")


def _original(world: World, *, indexed: datetime = T0) -> list[str]:
    return _index(world, {"original": _demo_article(ORIGINAL, story=STORY, indexed=indexed)})


def _reworded(world: World, *, indexed: datetime) -> list[str]:
    return _index(world, {"reworded": _demo_article(REWORDED, story=STORY, indexed=indexed)})


@pytest.fixture
def world(es_client: Elasticsearch, es_settings: Settings) -> World:
    return _world(es_client, es_settings)


# --- once per story ----------------------------------------------------------------------------


def test_1954_article_gives_one_digest_and_its_reworded_report_is_listed_under_it(
    world: World,
) -> None:
    first = match_new(world.es, world.names, _original(world), now=T0)
    assert first.matched == {"nato-enlargement": ["original"]}
    assert first.created == 1
    later = T0 + timedelta(minutes=3)
    second = match_new(world.es, world.names, _reworded(world, indexed=later), now=later)
    assert second.matched == {"nato-enlargement": ["reworded"]}
    assert (second.created, second.already_alerted, second.updated) == (0, 1, 1)

    handler = ScriptedHandler()
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert (report.sent, report.failed, report.unknown) == (1, 0, 0)
        # The whole cycle again, now and a day later: nothing new goes out.
        again = match_new(world.es, world.names, ["original", "reworded"], now=later)
        assert again.created == 0
        for when in (later, later + timedelta(days=1)):
            rerun = send_digests(world.es, world.names, world.config, _smtp(port), now=when)
            assert rerun.sent == 0 and rerun.digests == []
    assert len(handler.received) == 1
    received = handler.received[0]
    assert received.rcpt_tos == [ALICE]
    message = received.message()
    assert message["To"] == ALICE
    assert "NATO enlargement: 1 new story" in message["Subject"]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "When Moscow asked to join NATO: the forgotten note of 1954" in text
    assert "The Northwind Times · en · 2024-" in text
    assert f"http://demo.test{ORIGINAL}" in text
    # The reworded article copies nothing (no duplicate_of): a report of its own, listed.
    assert (
        "   Also reported by 1 source in en\r\n"
        "   Other reports:\r\n"
        "   - Seventy years ago, the Kremlin asked to be let into NATO. The West said no\r\n"
        "     The Baltic Observer · en · 2024-04-03 07:15 UTC\r\n"
        f"     http://demo.test{REWORDED}\r\n"
    ) in text
    assert "*joining NATO*" in text  # the matched terms, marked in the snippet
    assert "<mark>joining NATO</mark>" in html
    assert "<p>Also reported by 1 source in en</p>" in html
    assert f'<li lang="en"><a href="http://demo.test{REWORDED}">' in html
    alert = world.es.get(index=world.names.alert_outbox, id=alert_id("nato-enlargement", STORY))
    assert sorted(alert["_source"]["articles"]) == ["original", "reworded"]
    assert alert["_source"]["sources"] == ["baltic-observer", "northwind-times"]
    assert alert["_source"]["pending_for"] == []
    counts = outbox_counts(world.es, world.names)
    assert (counts["alerts"], counts["alerts_sent"], counts["alerts_pending"]) == (1, 1, 0)


def test_a_copy_after_the_digest_went_out_mails_nothing(world: World) -> None:
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        match_new(world.es, world.names, _original(world), now=T0)
        send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
        later = T0 + timedelta(hours=2)
        report = match_new(world.es, world.names, _reworded(world, indexed=later), now=later)
        assert (report.created, report.already_alerted) == (0, 1)
        rerun = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert rerun.sent == 0
    assert len(handler.received) == 1


def test_min_sources_holds_a_story_until_a_second_source_carries_it(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _shipped_rule(min_sources=2))
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        first = match_new(world.es, world.names, _original(world), now=T0)
        assert (first.created, first.waiting) == (1, 1)
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=T0).sent == 0
        # The copy need not match the rule itself: it is the same story from a second source.
        later = T0 + timedelta(minutes=5)
        copy = _demo_article(REWORDED, story=STORY, indexed=later, title="Moscow's 1954 note")
        copy["text_en"] = copy["text"] = "A note from Moscow, seventy years on."
        second = match_new(world.es, world.names, _index(world, {"copy": copy}), now=later)
        assert second.matched == {}
        assert second.activated == 1
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert report.sent == 1
    assert len(handler.received) == 1


def test_at_most_one_digest_per_interval_per_recipient(world: World) -> None:
    handler = ScriptedHandler()
    sweden = "/northwind-times/world/sweden-becomes-natos-32nd-member.html"
    with smtpd(handler) as port:
        match_new(world.es, world.names, _original(world), now=T0)
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=T0).sent == 1
        soon = T0 + timedelta(minutes=1)
        news = _index(world, {"sweden": _demo_article(sweden, story="sweden", indexed=soon)})
        assert match_new(world.es, world.names, news, now=soon).created == 1
        held = send_digests(world.es, world.names, world.config, _smtp(port), now=soon)
        assert (held.sent, held.held) == (0, 1)
        due = T0 + timedelta(minutes=15)
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=due).sent == 1
    assert len(handler.received) == 2
    second = handler.received[1].message()
    assert "Sweden becomes NATO" in second["Subject"]
    assert "forgotten note of 1954" not in second.get_body(("plain",)).get_content()  # type: ignore[union-attr]


# --- SMTP faults -------------------------------------------------------------------------------


def test_451_then_250_delivers_one_mail_on_a_later_run(world: World) -> None:
    handler = ScriptedHandler(data_replies=["451 4.3.0 try again later"])
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        first = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
        assert (first.sent, first.retrying) == (0, 1)
        (digest,) = first.digests
        assert digest.state == "pending" and "451" in digest.reason
        early = send_digests(
            world.es, world.names, world.config, _smtp(port), now=T0 + timedelta(minutes=1)
        )
        assert early.digests == []  # backing off: not due yet
        later = T0 + timedelta(minutes=6)
        second = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert second.sent == 1
        assert second.digests[0].message_id == digest.message_id
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=later).sent == 0
    assert handler.data_commands == 2
    assert len(handler.received) == 1


def test_drop_after_data_is_unknown_and_never_sent_again_on_its_own(world: World) -> None:
    match_new(world.es, world.names, _original(world), now=T0)
    with RawSmtpServer("drop_after_dot") as server:
        smtp = _smtp(server.port)
        first = send_digests(world.es, world.names, world.config, smtp, now=T0)
        assert (first.sent, first.unknown) == (0, 1)
        assert "may have the message" in first.digests[0].reason
        for hours in (1, 24):
            later = T0 + timedelta(hours=hours)
            rerun = send_digests(world.es, world.names, world.config, smtp, now=later)
            assert rerun.digests == []
    assert server.connections == 1
    assert len(server.messages) == 1


def test_550_for_one_of_two_recipients_the_other_gets_it_and_the_refusal_is_recorded(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _shipped_rule(recipients=(ALICE, BOB)))
    handler = ScriptedHandler(rcpt_replies={BOB: ["550 5.1.1 no such user"]})
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
        assert (report.sent, report.failed) == (1, 1)
        refused = next(d for d in report.digests if d.recipient == BOB)
        assert refused.state == "failed"
        assert refused.refused[BOB][0] == 550
        later = T0 + timedelta(hours=1)
        assert (
            send_digests(world.es, world.names, world.config, _smtp(port), now=later).digests == []
        )
    assert [r.rcpt_tos for r in handler.received] == [[ALICE]]
    stored = world.es.get(index=world.names.alert_outbox, id=refused.digest_id)["_source"]
    assert stored["state"] == "failed"
    assert stored["refused"][0]["address"] == BOB
    assert stored["refused"][0]["code"] == 550


def test_a_hostile_title_arrives_escaped_with_headers_intact(world: World) -> None:
    hostile = "NATO enlargement <script>alert(1)</script>\r\nBcc: mallory@example.org"
    document = _demo_article(ORIGINAL, story="hostile", indexed=T0, title=hostile)
    match_new(world.es, world.names, _index(world, {"hostile": document}), now=T0)
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=T0).sent == 1
    (received,) = handler.received
    assert received.rcpt_tos == [ALICE]
    headers = received.content.split(b"\r\n\r\n", 1)[0].decode()
    assert not any(line.lower().startswith("bcc:") for line in headers.splitlines())
    message = received.message()
    assert message["Bcc"] is None
    assert "\r" not in message["Subject"] and "\n" not in message["Subject"]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


ENCODED_WORD_TITLE = "=?utf-8?q?NATO=0D=0ABcc:_evil@x.example=0D=0A=0D=0APhish?="


def test_an_encoded_word_title_arrives_as_one_subject_with_exactly_the_digest_headers(
    world: World,
) -> None:
    document = _demo_article(ORIGINAL, story="hostile", indexed=T0, title=ENCODED_WORD_TITLE)
    match_new(world.es, world.names, _index(world, {"hostile": document}), now=T0)
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
    assert (report.sent, report.failed, report.unknown) == (1, 0, 0)
    (received,) = handler.received
    assert received.rcpt_tos == [ALICE]
    message = received.message()
    assert message.keys() == [
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "MIME-Version",
        "Content-Type",
    ]
    assert (message["From"], message["To"], message["Bcc"]) == (SENDER, ALICE, None)
    subject = str(message["Subject"]).replace("\N{ZERO WIDTH SPACE}", "")
    assert subject == f"[newsradar] NATO enlargement: 1 new story — {ENCODED_WORD_TITLE}"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("NATO enlargement: 1 new story\r\n")  # CRLF: as on the wire
    assert text.count(ENCODED_WORD_TITLE) == 1
    assert html.count(ENCODED_WORD_TITLE) == 1


def test_a_digest_that_cannot_be_built_fails_with_the_reason_and_the_others_go_out(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    # Passes the configuration's loose address check; as a header it decodes to CR LF + Bcc.
    hostile = "=?utf-8?q?x=0D=0ABcc:_evil=40x.example?=@example.org"
    world = _world(es_client, es_settings, _shipped_rule(recipients=(hostile, ALICE)))
    match_new(world.es, world.names, _original(world), now=T0)
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
        later = T0 + SENDING_LEASE + timedelta(hours=1)
        rerun = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
    assert (report.sent, report.failed, report.unknown) == (1, 1, 0)
    failed = next(d for d in report.digests if d.recipient == hostile)
    assert failed.reason == f"digest recipient: {hostile!r} is not a plain e-mail address"
    stored = world.es.get(index=world.names.alert_outbox, id=failed.digest_id)["_source"]
    assert (stored["state"], stored["reason"]) == ("failed", failed.reason)
    assert rerun.digests == []  # failed waits for an operator; nothing was left in flight
    assert [r.rcpt_tos for r in handler.received] == [[ALICE]]


def _put_in_flight(world: World, did: str, state: str) -> None:
    """As if a worker claimed the digest at T0, reached ``state`` and was killed there."""
    world.es.update(
        index=world.names.alert_outbox,
        id=did,
        doc={"state": state, "updated": T0.isoformat()},
        refresh=True,
    )


def test_a_digest_left_sending_by_a_dead_worker_is_sent_once_after_the_lease(
    world: World,
) -> None:
    handler = ScriptedHandler(data_replies=["451 later"])
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        (digest,) = send_digests(world.es, world.names, world.config, _smtp(port), now=T0).digests
        _put_in_flight(world, digest.digest_id, "sending")
        soon = T0 + timedelta(minutes=10)
        busy = send_digests(world.es, world.names, world.config, _smtp(port), now=soon)
        assert (busy.busy, busy.sent, busy.interrupted) == (1, 0, 0)  # its worker may be alive
        later = T0 + SENDING_LEASE + timedelta(minutes=1)
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert (report.interrupted, report.sent, report.unknown) == (1, 1, 0)
        assert [d.state for d in report.digests] == ["sent"]
        again = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert again.digests == []
    assert handler.data_commands == 2  # the 451, then the one delivery
    (received,) = handler.received
    assert received.message()["Message-ID"] == digest.message_id


def test_a_digest_left_transmitting_by_a_dead_worker_becomes_unknown_and_is_not_resent(
    world: World,
) -> None:
    handler = ScriptedHandler(data_replies=["451 later"])
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        (digest,) = send_digests(world.es, world.names, world.config, _smtp(port), now=T0).digests
        _put_in_flight(world, digest.digest_id, "transmitting")
        later = T0 + SENDING_LEASE + timedelta(minutes=1)
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=later)
        assert (report.interrupted, report.sent, report.unknown) == (1, 0, 1)
        (unknown,) = report.digests
        assert unknown.state == "unknown"
        assert "may have been delivered" in unknown.reason
        for hours in (1, 24):
            rerun = send_digests(
                world.es, world.names, world.config, _smtp(port), now=later + timedelta(hours=hours)
            )
            assert rerun.digests == []
    assert (handler.data_commands, handler.received) == (1, [])
    stored = world.es.get(index=world.names.alert_outbox, id=digest.digest_id)["_source"]
    assert stored["state"] == "unknown"


@dataclass
class _OutboxSpy(ScriptedHandler):
    """A server that runs ``on_rcpt`` at each RCPT and records the stored state at DATA."""

    on_rcpt: Callable[[], None] = lambda: None
    state: Callable[[], str] = lambda: ""
    states: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.states.append(("RCPT", self.state()))
        self.on_rcpt()
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.states.append(("DATA", self.state()))
        return await super().handle_DATA(server, session, envelope)


def _stored_state(world: World, did: str) -> str:
    return str(world.es.get(index=world.names.alert_outbox, id=did)["_source"]["state"])


def test_transmitting_is_stored_before_data_and_sending_before_it(world: World) -> None:
    did = digest_id("nato-enlargement", ALICE, None)
    handler = _OutboxSpy(state=lambda: _stored_state(world, did))
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
    assert [d.state for d in report.digests] == ["sent"]
    assert handler.states == [("RCPT", "sending"), ("DATA", "transmitting")]
    assert _stored_state(world, did) == "sent"


def test_a_worker_whose_claim_was_taken_over_gives_no_data(world: World) -> None:
    did = digest_id("nato-enlargement", ALICE, None)

    def recovered_elsewhere() -> None:
        # Another worker's recovery moved the record on while this one was mid-SMTP.
        world.es.update(index=world.names.alert_outbox, id=did, doc={"state": "pending"})

    handler = _OutboxSpy(on_rcpt=recovered_elsewhere)
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
    assert (report.busy, report.sent, report.digests) == (1, 0, [])
    assert (handler.data_commands, handler.received) == (0, [])
    assert _stored_state(world, did) == "pending"


def _claimed_in_flight(world: World, did: str, at: datetime) -> InFlight:
    """Claim the stored digest ``did`` as send_digests does, up to the point before DATA."""
    stored = world.es.get(index=world.names.alert_outbox, id=did)
    claimed = outbox_transition(read_record(stored["_source"]), Claim(at=at))
    written = world.es.update(
        index=world.names.alert_outbox,
        id=did,
        doc=record_fields(claimed),
        if_seq_no=stored["_seq_no"],
        if_primary_term=stored["_primary_term"],
    )
    hit = Hit(did, stored["_source"], written["_seq_no"], written["_primary_term"])
    return InFlight(world.es, world.names, hit, claimed, at)


@pytest.mark.parametrize("landed", ["ours", "another worker's claim"])
def test_a_transmitting_write_whose_reply_was_lost_is_told_from_a_lost_claim(
    world: World, landed: str
) -> None:
    handler = ScriptedHandler(data_replies=["451 later"])
    match_new(world.es, world.names, _original(world), now=T0)
    with smtpd(handler) as port:
        (digest,) = send_digests(world.es, world.names, world.config, _smtp(port), now=T0).digests
    # Microseconds: Elasticsearch keeps milliseconds, and the comparison must not care.
    at = T0 + timedelta(minutes=6, microseconds=123_456)
    flight = _claimed_in_flight(world, digest.digest_id, at)
    # What a retried bulk write finds: its first try was applied, but the reply never came.
    if landed == "ours":
        first_try = outbox_transition(flight.record, Transmit(at=at))
    else:
        recovered = outbox_transition(flight.record, Interrupted(at=at))
        first_try = outbox_transition(outbox_transition(recovered, Claim(at=at)), Transmit(at=at))
    world.es.update(
        index=world.names.alert_outbox,
        id=digest.digest_id,
        doc=record_fields(first_try),
        if_seq_no=flight.hit.seq_no,
        if_primary_term=flight.hit.primary_term,
    )
    if landed == "ours":
        flight.transmit()  # recognised as its own write: DATA may go ahead
        assert flight.record.state is OutboxState.TRANSMITTING
        stored = world.es.get(index=world.names.alert_outbox, id=digest.digest_id)
        assert (flight.hit.seq_no, flight.hit.primary_term) == (
            stored["_seq_no"],
            stored["_primary_term"],
        )
    else:
        with pytest.raises(ClaimLost):
            flight.transmit()


# --- the digest in a browser -------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


def screenshot(html: Path, png: Path, profile: Path) -> None:
    """Render ``html`` in headless Chromium into ``png`` (900x1200)."""
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=900,1200",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, one bytes object per pixel) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunk_type = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if chunk_type == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            channels = 3 if colour == 2 else 4
        elif chunk_type == b"IDAT":
            idat += body
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[bytes] = []
    for row in range(height):
        start = row * (stride + 1)
        row_filter, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if row_filter == 1:
                line[i] = (line[i] + left) & 0xFF
            elif row_filter == 2:
                line[i] = (line[i] + up) & 0xFF
            elif row_filter == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif row_filter == 4:
                corner = previous[i - channels] if i >= channels else 0
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        pixels.extend(bytes(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


@pytest.fixture
def digest_html(world: World, tmp_path: Path) -> Iterator[Path]:
    """The HTML part of the 1954 digest as it reached the SMTP server."""
    match_new(world.es, world.names, _original(world), now=T0)
    later = T0 + timedelta(minutes=3)
    match_new(world.es, world.names, _reworded(world, indexed=later), now=later)
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        send_digests(world.es, world.names, world.config, _smtp(port), now=later)
    html = handler.received[0].message().get_body(("html",))
    assert html is not None
    path = tmp_path / "digest.html"
    path.write_text(html.get_content(), encoding="utf-8")
    yield path


def test_html_digest_renders_in_headless_chromium(digest_html: Path, tmp_path: Path) -> None:
    # Installed by `make browser`; missing, this fails rather than skips.
    assert shutil.which("chromium") or Path(CHROMIUM).exists(), "chromium is missing: make browser"
    png = tmp_path / "digest.png"
    screenshot(digest_html, png, tmp_path / "profile")
    width, height, pixels = png_pixels(png.read_bytes())
    assert (width, height) == (900, 1200)
    colours = set(pixels)
    white = pixels.count(b"\xff\xff\xff")
    assert len(colours) >= 16, f"only {len(colours)} colours: a blank page?"
    assert len(pixels) - white >= len(pixels) // 100, "almost every pixel is white"
    # The <mark>ed terms: some pixels are the default highlight yellow.
    assert any(r > 200 and g > 200 and b < 80 for r, g, b in colours)


def test_the_shipped_demo_rules_mail_the_demo_sink() -> None:
    demo = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / "config" / "demo")}))
    for rule in demo.alerts:
        assert all(r.endswith("@newsradar.test") for r in rule.recipients)


# --- the command line ----------------------------------------------------------------------------


def test_alerts_test_command_reports_language_and_matched_terms(
    es_node: str, index_prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(REPO / "config"))
    exercise = DEMO / "baltic-observer/news/2025/allied-warships-begin-annual-baltic-drills.html"
    original = DEMO / ORIGINAL.lstrip("/")
    assert main(["alerts", "test", str(original), str(exercise), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert [f["language"] for f in files] == ["en", "en"]
    (hit,) = files[0]["hits"]
    assert hit["rule_id"] == "nato-enlargement"
    assert "joining NATO" in hit["terms"]
    assert files[1]["hits"] == []


def test_alerts_commands_say_so_in_one_line_when_elasticsearch_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("NEWSRADAR_ES_URL", f"http://{HOST}:{closed_port()}")
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(REPO / "config"))
    assert main(["alerts", "test", str(DEMO / ORIGINAL.lstrip("/"))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("newsradar alerts: Elasticsearch at ")
    assert "unavailable" in err and err.count("\n") == 1
