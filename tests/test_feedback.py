"""Readers' feedback: "not relevant" links read back from a mailbox, precision, muted stories."""

from __future__ import annotations

import json
import mailbox
import re
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from elasticsearch import Elasticsearch
from smtpservers import ScriptedHandler, smtpd
from test_alerts import ORIGINAL, STORY, T0, World, _demo_article, _index, _smtp, _world
from test_digest import SENDER, _digest, _html, _item, _text

from pipeline.alerts.digest import (
    Digest,
    DigestError,
    feedback_codes,
    not_relevant_link,
    render_digest,
)
from pipeline.alerts.match import match_new
from pipeline.alerts.outbox import alert_id
from pipeline.alerts.send import send_digests
from pipeline.cli import main
from pipeline.settings import Settings

SWEDEN = "/northwind-times/world/sweden-becomes-natos-32nd-member.html"
ALERT = "0123456789abcdef0123456789abcdef01234567"


def test_a_not_relevant_link_carries_the_alert_code_in_its_subject() -> None:
    link = not_relevant_link("desk+nr@example.org", "NATO «enlargement»", ALERT)
    parts = urlsplit(link)
    assert (parts.scheme, unquote(parts.path)) == ("mailto", "desk+nr@example.org")
    (subject,) = parse_qs(parts.query)["subject"]
    assert subject == f"Not relevant: NATO «enlargement» [newsradar nr:{ALERT}]"
    assert feedback_codes(f"Re: {subject}") == [ALERT]
    assert feedback_codes("[newsradar] NATO enlargement: 1 new story") == []
    with pytest.raises(DigestError):
        not_relevant_link("x@example.org\r\nBcc: y@example.org", "r", ALERT)
    with pytest.raises(DigestError):
        not_relevant_link("x@example.org", "r", "not-an-id")


# --- in the digest: why it matched, and the "not relevant" link ------------------------------


def _judged(why: str = "in the title; NATO (3) in 120 words; relevance 0.95") -> Digest:
    item = _item(alert_id="ab" * 20, story_id="story-1", why=why)
    return replace(_digest(item), feedback_address="desk@example.org")


def test_an_item_says_why_it_matched_and_links_a_coded_not_relevant_reply() -> None:
    message = render_digest(_judged(), sender=SENDER)
    text, html = _text(message), _html(message)
    link = (
        "mailto:desk@example.org?subject=Not%20relevant%3A%20NATO%20enlargement%20"
        f"%5Bnewsradar%20nr%3A{'ab' * 20}%5D"
    )
    assert (
        "   https://news.example.org/1\n"
        "   Why this matched: in the title; NATO (3) in 120 words; relevance 0.95\n"
        f"   Not relevant? {link} (story story-1)\n"
    ) in text
    assert "<p><small>Why this matched: in the title; NATO (3) in 120 words" in html
    assert f'<p><small><a href="{link}">Not relevant</a> · story story-1</small></p>' in html


def test_without_a_feedback_address_or_an_alert_there_is_no_link() -> None:
    no_address = render_digest(replace(_judged(), feedback_address=None), sender=SENDER)
    no_alert = render_digest(replace(_judged(), items=(_item(why="in the lead"),)), sender=SENDER)
    for message in (no_address, no_alert):
        assert "Not relevant" not in _text(message) and "mailto:" not in _html(message)
    assert "   Why this matched: in the lead\n" in _text(no_alert)


def test_why_and_story_text_are_escaped_and_one_line() -> None:
    digest = _judged(why="in the title\r\nBcc: x@example.org <script>")
    digest = replace(digest, items=(replace(digest.items[0], story_id="<b>s</b>"),))
    message = render_digest(digest, sender=SENDER)
    html, text = _html(message), _text(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "story &lt;b&gt;s&lt;/b&gt;" in html
    assert "   Why this matched: in the title Bcc: x@example.org <script>\n" in text
    # The link and the Message-ID do not depend on why an item matched.
    plain = render_digest(_digest(_item()), sender=SENDER)
    assert message["Message-ID"] == plain["Message-ID"]


@pytest.fixture
def world(es_client: Elasticsearch, es_settings: Settings) -> World:
    return _world(es_client, es_settings)


def _two_stories_mailed(world: World) -> tuple[str, str]:
    """The 1954 story and the Swedish accession, matched and mailed in one digest."""
    docs = {
        "original": _demo_article(ORIGINAL, story=STORY, indexed=T0),
        "sweden": _demo_article(SWEDEN, story="sweden", indexed=T0),
    }
    assert match_new(world.es, world.names, _index(world, docs), now=T0).created == 2
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        report = send_digests(world.es, world.names, world.config, _smtp(port), now=T0)
    assert report.sent == 1
    (received,) = handler.received
    html = received.message().get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = received.message().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    links = re.findall(r'<a href="(mailto:[^"]+)">Not relevant</a>', html)
    assert len(links) == 2
    assert text.count("   Not relevant? mailto:") == 2
    assert f"(story {STORY})" in text
    assert "   Why this matched: in the title;" in text
    subjects = [
        parse_qs(urlsplit(link.replace("&amp;", "&")).query)["subject"][0] for link in links
    ]
    return subjects[0], subjects[1]


def _mbox(path: Path, *replies: tuple[str, str]) -> Path:
    """An mbox of replies, (sender, subject) each, as a mail client would write them."""
    box = mailbox.mbox(path)
    for n, (sender, subject) in enumerate(replies):
        message = EmailMessage()
        message["From"] = f"Reader <{sender}>"
        message["To"] = "newsradar@alerts.example.org"
        message["Subject"] = subject
        message["Date"] = format_datetime(T0 + timedelta(hours=1, minutes=n))
        message["Message-ID"] = f"<reply-{n}@example.org>"
        message.set_content("Sent from the digest.")
        box.add(message)
    box.flush()
    box.close()
    return path


def _cli(world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any, *argv: str) -> Any:
    monkeypatch.setenv("NEWSRADAR_ES_URL", str(world.config.settings.es_url))
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", world.config.settings.index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(Path(__file__).parent.parent / "config"))
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _report(world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> dict[str, Any]:
    """``newsradar alerts report --json``, by rule id."""
    rows = _cli(world, monkeypatch, capsys, "alerts", "report")["rules"]
    return {row["rule_id"]: row for row in rows}


def test_replies_to_not_relevant_links_are_recorded_once_and_give_each_rule_its_precision(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    first, second = _two_stories_mailed(world)
    stranger = f"Not relevant: something [newsradar nr:{'f' * 40}]"
    path = _mbox(
        tmp_path / "feedback.mbox",
        ("alice@example.org", first),
        ("alice@example.org", f"Re: {first}"),  # the same reader twice: once
        ("bob@example.org", first),  # another reader's verdict on the same alert
        ("carol@example.org", stranger),  # no such alert here
        ("dave@example.org", "Lunch on Friday?"),
    )
    report = _cli(world, monkeypatch, capsys, "alerts", "feedback", str(path))
    assert {k: report[k] for k in ("messages", "codes", "recorded", "repeated", "unknown")} == {
        "messages": 5,
        "codes": 4,
        "recorded": 2,
        "repeated": 0,
        "unknown": 1,
    }
    again = _cli(world, monkeypatch, capsys, "alerts", "feedback", str(path))
    assert (again["recorded"], again["repeated"]) == (0, 2)

    (judged,) = set(feedback_codes(first))
    stored = world.es.get(index=world.names.alert_outbox, id=judged)["_source"]
    assert stored["story_id"] in (STORY, "sweden")
    rules = {
        row["rule_id"]: row for row in _cli(world, monkeypatch, capsys, "alerts", "report")["rules"]
    }
    nato = rules["nato-enlargement"]
    assert (nato["mailed"], nato["not_relevant"], nato["precision"]) == (2, 1, 0.5)
    assert nato["highest_not_relevant"] == stored["relevance"]["score"]
    assert (
        rules["energy-sanctions"]["mailed"] == 0 and rules["energy-sanctions"]["precision"] is None
    )
    assert feedback_codes(second) != feedback_codes(first)


def test_a_muted_story_is_owed_to_nobody_and_raises_no_alert_again(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    docs = {"original": _demo_article(ORIGINAL, story=STORY, indexed=T0)}
    match_new(world.es, world.names, _index(world, docs), now=T0)
    muted = _cli(world, monkeypatch, capsys, "alerts", "mute", STORY)
    assert (muted["new"], muted["alerts"]) == (True, [alert_id("nato-enlargement", STORY)])
    assert _cli(world, monkeypatch, capsys, "alerts", "mute", STORY)["new"] is False
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=T0).sent == 0
        # A story muted before any alert: its matches raise none; other stories still do.
        _cli(world, monkeypatch, capsys, "alerts", "mute", "sweden")
        later = T0 + timedelta(minutes=30)
        news = {"sweden": _demo_article(SWEDEN, story="sweden", indexed=later)}
        report = match_new(world.es, world.names, _index(world, news), now=later)
        assert (report.matches, report.created, report.muted) == (1, 0, 1)
        assert send_digests(world.es, world.names, world.config, _smtp(port), now=later).sent == 0
    assert handler.received == []
    rules = {
        row["rule_id"]: row for row in _cli(world, monkeypatch, capsys, "alerts", "report")["rules"]
    }
    assert rules["nato-enlargement"]["muted"] == 1


def test_feedback_from_a_missing_mailbox_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEWSRADAR_ES_URL", "http://127.0.0.1:9")
    assert main(["alerts", "feedback", str(tmp_path / "none.mbox")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such mbox file" in err
