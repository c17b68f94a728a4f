"""Digest rendering: escaping, header safety, highlighting, links and a stable Message-ID."""

# Cyrillic test strings are meant to be Cyrillic, not look-alike Latin letters.
# ruff: noqa: RUF001

from __future__ import annotations

import pickle
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from conftest import NoOffset

from pipeline.alerts.digest import (
    MAX_LISTED_REPORTS,
    Digest,
    DigestError,
    DigestItem,
    StoryReport,
    digest_message_id,
    render_digest,
)

SENDER = "newsradar@alerts.example.org"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=15)


def _item(n: int = 1, **changes: object) -> DigestItem:
    item = DigestItem(
        article_id=f"art-{n}",
        title=f"Story number {n}",
        url=f"https://news.example.org/{n}",
        source="Example World News",
        language="en",
        published=START + timedelta(minutes=n),
        snippet="NATO members discussed enlargement on Tuesday.",
        matched_terms=("NATO", "enlargement"),
        also_reported_by=(),
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def _report(n: int, language: str = "ru", **changes: object) -> StoryReport:
    report = StoryReport(
        article_id=f"report-{n}",
        title=f"Report {n}",
        url=f"https://other.example.org/{n}",
        source=f"Other Source {n}",
        language=language,
        published=START + timedelta(hours=n),
    )
    return replace(report, **changes)  # type: ignore[arg-type]


def _digest(*items: DigestItem, recipients: tuple[str, ...] = ("analyst@example.org",)) -> Digest:
    return Digest(
        rule_id="nato-enlargement",
        rule_name="NATO enlargement",
        recipients=recipients,
        items=items or (_item(),),
        window_start=START,
        window_end=END,
    )


def _reparsed(message: EmailMessage) -> EmailMessage:
    """The message as a receiver sees it: serialised with the SMTP policy, parsed back."""
    return message_from_bytes(message.as_bytes(policy=policy.SMTP), policy=policy.default)


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_message_is_text_and_html_alternatives_with_every_item_field() -> None:
    item = _item(
        published=datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
        also_reported_by=("Daily Planet", "Le Monde"),
    )
    message = _reparsed(render_digest(_digest(item), sender=SENDER))
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    for body in (_text(message), _html(message)):
        assert "Story number 1" in body
        assert "Example World News" in body
        assert "2024-05-01 12:30 UTC" in body  # converted to UTC from +02:00
        assert "https://news.example.org/1" in body
        assert "Also reported by 2 sources: Daily Planet, Le Monde" in body
    assert '<li lang="en">' in _html(message)
    assert message["From"] == SENDER
    assert message["To"] == "analyst@example.org"
    assert message["Auto-Submitted"] == "auto-generated"


def test_subject_counts_stories_and_names_the_first() -> None:
    one = render_digest(_digest(_item(1)), sender=SENDER)
    three = render_digest(_digest(_item(1), _item(2), _item(3)), sender=SENDER)
    assert one["Subject"] == "[newsradar] NATO enlargement: 1 new story — Story number 1"
    assert three["Subject"] == "[newsradar] NATO enlargement: 3 new stories — Story number 1"


def test_long_title_is_shortened_in_the_subject_only() -> None:
    title = "Word " * 60
    message = render_digest(_digest(_item(title=title)), sender=SENDER)
    subject = str(message["Subject"])
    assert subject.endswith("…")
    assert len(subject) < 130
    assert title.strip() in _text(message)


def test_article_text_is_escaped_in_html() -> None:
    item = _item(
        title="<script>alert(1)</script>",
        source='Evil "Source" <b>',
        snippet="Click <img src=x onerror=alert(2)> & 'quote'",
        also_reported_by=("<i>Other</i>",),
        matched_terms=(),
    )
    html = _html(render_digest(_digest(item), sender=SENDER))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; &#x27;quote&#x27;" in html
    assert "Evil &quot;Source&quot; &lt;b&gt;" in html
    assert "&lt;i&gt;Other&lt;/i&gt;" in html
    # The text part is plain text: the title is shown as written.
    assert "<script>alert(1)</script>" in _text(render_digest(_digest(item), sender=SENDER))


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\nscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "mailto:someone@example.org",
        "https://",
        "//news.example.org/protocol-relative",
        "/relative/path",
        "http://[broken/a",
        "http://news.example.org:99999/bad-port",
    ],
)
def test_only_plain_http_links_survive(url: str) -> None:
    message = render_digest(_digest(_item(url=url)), sender=SENDER)
    html, text = _html(message), _text(message)
    assert "href" not in html
    assert "alert(1)" not in text.split("Story number 1", 1)[1]
    assert "Story number 1" in html  # the story itself stays, without a link


def test_http_link_is_attribute_escaped() -> None:
    url = 'https://news.example.org/a"onmouseover="alert(1)&b=<c>'
    html = _html(render_digest(_digest(_item(url=url)), sender=SENDER))
    escaped = "https://news.example.org/a&quot;onmouseover=&quot;alert(1)&amp;b=&lt;c&gt;"
    assert f'<a href="{escaped}">' in html
    assert 'onmouseover="' not in html


def test_header_injection_through_title_adds_no_header() -> None:
    item = _item(title="Breaking\r\nBcc: evil@example.org\r\nX-Injected: 1")
    raw = render_digest(_digest(item), sender=SENDER).as_bytes(policy=policy.SMTP)
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Bcc"] is None
    assert message["X-Injected"] is None
    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject
    assert subject.endswith("Breaking Bcc: evil@example.org X-Injected: 1")
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in header_block.split(b"\r\n"))
    assert [r for r in message.get_all("To", [])] == ["analyst@example.org"]


ENCODED_WORD_TITLE = "=?utf-8?q?NATO=0D=0ABcc:_evil@x.example=0D=0A=0D=0APhish?="


@pytest.mark.parametrize("field", ["title", "rule_name"])
def test_an_encoded_word_in_article_or_rule_text_stays_text_in_the_subject(field: str) -> None:
    digest = _digest(_item(title=ENCODED_WORD_TITLE if field == "title" else "Story"))
    if field == "rule_name":
        digest = replace(digest, rule_name=ENCODED_WORD_TITLE)
    message = _reparsed(render_digest(digest, sender=SENDER))
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
    assert ENCODED_WORD_TITLE in str(message["Subject"]).replace("\N{ZERO WIDTH SPACE}", "")
    # Bodies are not decoded, so there the text stays exactly as the article had it.
    assert _text(message).count(ENCODED_WORD_TITLE) == 1


def test_only_the_encoded_word_opener_changes_in_a_subject() -> None:
    message = render_digest(_digest(_item(title="Is 2+2=4? Yes; =? no")), sender=SENDER)
    assert message["Subject"] == (
        "[newsradar] NATO enlargement: 1 new story — Is 2+2=4? Yes; =\N{ZERO WIDTH SPACE}? no"
    )
    plain = render_digest(_digest(_item(title="Is 2+2=4? Yes")), sender=SENDER)
    assert plain["Subject"] == "[newsradar] NATO enlargement: 1 new story — Is 2+2=4? Yes"


def test_lone_surrogates_become_replacement_characters_not_a_failed_digest() -> None:
    # Text decoded with "surrogateescape" upstream cannot be written as UTF-8 as it is.
    item = _item(
        title="Bad\udc80byte",
        snippet="NATO \udcff enlargement",
        source="Source\ud800",
        url="https://news.example.org/\udc80",
    )
    digest = replace(_digest(item), rule_name="NATO\udc80")
    message = _reparsed(render_digest(digest, sender=SENDER))
    assert message["Subject"] == "[newsradar] NATO\ufffd: 1 new story — Bad\ufffdbyte"
    text = _text(message)
    assert "1. Bad\ufffdbyte\r\n" in text
    assert "*NATO* \ufffd *enlargement*" in text
    assert "Source\ufffd" in text
    assert "https://news.example.org/" not in text  # a link that cannot be written is dropped


def test_a_recipient_that_is_an_encoded_word_is_refused() -> None:
    hostile = "=?utf-8?q?x=0D=0ABcc:_evil=40x.example?=@example.org"
    with pytest.raises(DigestError) as err:
        render_digest(_digest(recipients=(hostile,)), sender=SENDER)
    assert str(err.value) == f"digest recipient: {hostile!r} is not a plain e-mail address"


@pytest.mark.parametrize(
    "breaker", ["\r", "\n", "\x00", "\x0b", "\x1b", "\x85", "\u2028", "\u2029"]
)
def test_control_characters_collapse_to_spaces_in_headers_and_body(breaker: str) -> None:
    digest = replace(
        _digest(_item(title=f"One{breaker}Two")), rule_name=f"NATO{breaker}enlargement"
    )
    message = render_digest(digest, sender=SENDER)
    assert message["Subject"] == "[newsradar] NATO enlargement: 1 new story — One Two"
    assert "1. One Two\n" in _text(message)


def test_sender_or_recipient_with_a_line_break_is_refused() -> None:
    with pytest.raises(DigestError) as err:
        render_digest(_digest(), sender="a@example.org\r\nBcc: evil@example.org")
    assert err.value.field == "sender"
    with pytest.raises(DigestError) as err:
        render_digest(_digest(recipients=("x@example.org\n",)), sender=SENDER)
    assert err.value.field == "recipient"


def test_empty_digest_is_refused() -> None:
    digest = replace(_digest(), items=())
    with pytest.raises(DigestError, match="at least one story"):
        render_digest(digest, sender=SENDER)


def test_matched_terms_are_marked_case_insensitively() -> None:
    item = _item(snippet="nato and Nato discuss ENLARGEMENT; natural gas is unrelated.")
    message = render_digest(_digest(item), sender=SENDER)
    html, text = _html(message), _text(message)
    assert (
        "<mark>nato</mark> and <mark>Nato</mark> discuss <mark>ENLARGEMENT</mark>; "
        "natural gas is unrelated." in html
    )
    assert "*nato* and *Nato* discuss *ENLARGEMENT*; natural gas" in text


def test_cyrillic_terms_are_marked_whole_words_from_stems() -> None:
    item = _item(
        title="НАТО обсуждает расширение",
        language="ru",
        snippet="Члены НАТО обсудили вопросы расширения альянса.",
        matched_terms=("нато", "расширен"),
    )
    message = _reparsed(render_digest(_digest(item), sender=SENDER))
    assert "Члены <mark>НАТО</mark> обсудили вопросы <mark>расширения</mark> альянса." in _html(
        message
    )
    assert "Члены *НАТО* обсудили вопросы *расширения* альянса." in _text(message)


def test_french_accents_match_whatever_their_unicode_form() -> None:
    # The snippet arrives decomposed (NFD), the term composed: both are compared as NFC.
    snippet = unicodedata.normalize("NFD", "L'Élargissement de l'OTAN est débattu.")
    item = _item(language="fr", snippet=snippet, matched_terms=("élargissement",))
    html = _html(_reparsed(render_digest(_digest(item), sender=SENDER)))
    assert "L&#x27;<mark>Élargissement</mark> de l&#x27;OTAN est débattu." in html


def test_terms_with_regex_characters_are_literal() -> None:
    item = _item(snippet="C++ and C# compared; Cxx is not.", matched_terms=("c++", "c#", ".*"))
    text = _text(render_digest(_digest(item), sender=SENDER))
    assert "*C++* and *C#* compared; Cxx is not." in text


def test_also_reported_by_is_singular_or_absent() -> None:
    one = _text(render_digest(_digest(_item(also_reported_by=("Le Monde",))), sender=SENDER))
    none = _text(render_digest(_digest(_item(also_reported_by=())), sender=SENDER))
    assert "Also reported by 1 source: Le Monde" in one
    assert "Also reported by" not in none


def test_unicode_titles_survive_serialisation() -> None:
    items = (
        _item(1, title="Расширение НАТО: Финляндия и Швеция", language="ru"),
        _item(2, title="L'élargissement de l'OTAN, « une nécessité »", language="fr"),
    )
    message = _reparsed(render_digest(_digest(*items), sender=SENDER))
    assert str(message["Subject"]).endswith("— Расширение НАТО: Финляндия и Швеция")
    for title in ("Расширение НАТО: Финляндия и Швеция", "L'élargissement de l'OTAN"):
        assert title in _text(message)
    assert "L&#x27;élargissement de l&#x27;OTAN, « une nécessité »" in _html(message)


def test_same_digest_same_message_id_and_date() -> None:
    first = render_digest(_digest(_item(1), _item(2)), sender=SENDER)
    again = render_digest(_digest(_item(2), _item(1)), sender=SENDER)  # other order, same stories
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Date"] == again["Date"] == "Wed, 01 May 2024 12:15:00 +0000"
    assert str(first["Message-ID"]).endswith("@alerts.example.org>")


def test_message_id_changes_with_what_identifies_a_digest() -> None:
    base = digest_message_id("rule", "a@example.org", START, ["1", "2"], "example.org")
    assert base == digest_message_id("rule", "A@example.org", START, ["2", "1"], "example.org")
    others = {
        digest_message_id("other", "a@example.org", START, ["1", "2"], "example.org"),
        digest_message_id("rule", "b@example.org", START, ["1", "2"], "example.org"),
        digest_message_id("rule", "a@example.org", END, ["1", "2"], "example.org"),
        digest_message_id("rule", "a@example.org", START, ["1", "3"], "example.org"),
        digest_message_id("rule", "a@example.org", START, ["1"], "example.org"),
    }
    assert base not in others
    assert len(others) == 5


def test_message_id_same_instant_in_any_timezone() -> None:
    cest = START.astimezone(timezone(timedelta(hours=2)))
    assert digest_message_id("r", "a@x.org", START, ["1"], "x.org") == digest_message_id(
        "r", "a@x.org", cest, ["1"], "x.org"
    )


@pytest.mark.usefixtures("tokyo_local_time")
def test_a_window_without_an_offset_is_utc_not_local_time() -> None:
    # The pipeline's convention (pipeline.normalise.dates.as_utc), also for a tzinfo without offset.
    no_offset = START.replace(tzinfo=NoOffset())
    assert digest_message_id("r", "a@x.org", no_offset, ["1"], "x.org") == digest_message_id(
        "r", "a@x.org", START, ["1"], "x.org"
    )
    message = render_digest(
        replace(_digest(), window_end=END.replace(tzinfo=NoOffset())), sender=SENDER
    )
    assert message["Date"] == "Wed, 01 May 2024 12:15:00 +0000"


def test_per_recipient_rendering_addresses_one_person() -> None:
    digest = _digest(recipients=("a@example.org", "b@example.org"))
    together = render_digest(digest, sender=SENDER)
    for_a = render_digest(digest, sender=SENDER, recipient="a@example.org")
    for_b = render_digest(digest, sender=SENDER, recipient="b@example.org")
    assert together["To"] == "a@example.org, b@example.org"
    assert for_a["To"] == "a@example.org"
    assert len({together["Message-ID"], for_a["Message-ID"], for_b["Message-ID"]}) == 3


@pytest.mark.parametrize("domain", ["", "exa mple.org", "example.org\r\nBcc: x", "-bad.org"])
def test_bad_message_id_domain_is_refused(domain: str) -> None:
    with pytest.raises(DigestError) as err:
        digest_message_id("rule", "a@example.org", START, ["1"], domain)
    assert err.value.field == "domain"


def test_digest_error_pickles_with_its_data() -> None:
    error = DigestError("domain", "bad")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.problem, str(copy)) == ("domain", "bad", "digest domain: bad")


# --- a story's other reports --------------------------------------------------------------------


def _story_item() -> DigestItem:
    """The 1954 story led by its English report, told also in Russian and Ukrainian."""
    return _item(
        also_reported_by=("Moscow Herald", "Kyiv Courier"),
        languages=("uk", "en", "ru"),
        reports=(
            _report(1, title="СССР просился в НАТО", source="Moscow Herald"),
            _report(2, "uk", title="СРСР просився до НАТО", source="Kyiv Courier"),
        ),
    )


def test_the_other_reports_are_listed_under_the_lead_in_text() -> None:
    text = _text(_reparsed(render_digest(_digest(_story_item()), sender=SENDER)))
    assert (
        "1. Story number 1\r\n"
        "   Example World News · en · 2024-05-01 12:01 UTC\r\n"
        "   *NATO* members discussed *enlargement* on Tuesday.\r\n"
        "   https://news.example.org/1\r\n"
        "   Also reported by 2 sources in en, ru, uk\r\n"
        "   Other reports:\r\n"
        "   - СССР просился в НАТО\r\n"
        "     Moscow Herald · ru · 2024-05-01 13:00 UTC\r\n"
        "     https://other.example.org/1\r\n"
        "   - СРСР просився до НАТО\r\n"
        "     Kyiv Courier · uk · 2024-05-01 14:00 UTC\r\n"
        "     https://other.example.org/2\r\n"
        "\r\n-- \r\n"
    ) in text


def test_the_other_reports_are_a_list_in_html() -> None:
    html = _html(render_digest(_digest(_story_item()), sender=SENDER))
    assert (
        "<p>Also reported by 2 sources in en, ru, uk</p>\n"
        "<p>Other reports:</p>\n"
        "<ul>\n"
        '<li lang="ru"><a href="https://other.example.org/1">СССР просился в НАТО</a> '
        "<small>Moscow Herald · ru · 2024-05-01 13:00 UTC</small></li>\n"
        '<li lang="uk"><a href="https://other.example.org/2">СРСР просився до НАТО</a> '
        "<small>Kyiv Courier · uk · 2024-05-01 14:00 UTC</small></li>\n"
        "</ul>\n"
        "</li>"
    ) in html


def test_reports_leave_the_subject_the_count_and_the_message_id_alone() -> None:
    plain = render_digest(_digest(_item(1), _item(2)), sender=SENDER)
    grouped = render_digest(_digest(_story_item(), _item(2)), sender=SENDER)
    assert grouped["Subject"] == plain["Subject"]
    assert grouped["Subject"] == "[newsradar] NATO enlargement: 2 new stories — Story number 1"
    assert grouped["Message-ID"] == plain["Message-ID"]
    assert _text(grouped).startswith("NATO enlargement: 2 new stories\n")


def test_a_copy_is_marked_and_a_report_without_a_date_or_title_still_shows() -> None:
    item = _item(
        also_reported_by=("Mirror",),
        reports=(_report(1, "en", title="", source="Mirror", published=None, copy=True),),
    )
    text = _text(render_digest(_digest(item), sender=SENDER))
    assert "   - (untitled)\n     Mirror · en · copy\n" in text


@pytest.mark.parametrize(
    ("sources", "languages", "line"),
    [
        (("A",), ("en",), "Also reported by 1 source in en"),
        (("A", "B", "C"), ("uk", "ru", "en", "ru"), "Also reported by 3 sources in en, ru, uk"),
        (("A", "B"), (), "Also reported by 2 sources"),
        (("A", "B"), ("", " ", "fr"), "Also reported by 2 sources in fr"),
    ],
)
def test_the_languages_line_counts_sources_and_sorts_languages(
    sources: tuple[str, ...], languages: tuple[str, ...], line: str
) -> None:
    item = _item(also_reported_by=sources, languages=languages, reports=(_report(1),))
    message = render_digest(_digest(item), sender=SENDER)
    assert f"   {line}\n   Other reports:\n" in _text(message)
    assert f"<p>{line}</p>" in _html(message)


def test_source_names_follow_the_languages_line_only_when_no_report_is_listed() -> None:
    item = _item(also_reported_by=("Le Monde", "Die Zeit"), languages=("de", "fr", "en"))
    text = _text(render_digest(_digest(item), sender=SENDER))
    assert "   Also reported by 2 sources in de, en, fr: Le Monde, Die Zeit\n" in text
    assert "Other reports" not in text


def test_reports_of_the_lead_source_alone_give_no_languages_line() -> None:
    item = _item(languages=("en", "ru"), reports=(_report(1, source="Example World News"),))
    text = _text(render_digest(_digest(item), sender=SENDER))
    assert "Also reported by" not in text
    assert "   Other reports:\n   - Report 1\n" in text


def test_the_listed_reports_are_capped_and_the_rest_counted() -> None:
    reports = tuple(_report(n) for n in range(1, 14))
    message = render_digest(_digest(_item(reports=reports)), sender=SENDER)
    text, html = _text(message), _html(message)
    assert MAX_LISTED_REPORTS == 10
    for n in range(1, 11):
        assert f"   - Report {n}\n" in text
        assert f">Report {n}</a>" in html
    for n in range(11, 14):
        assert f"Report {n}" not in text and f"Report {n}" not in html
    assert "     https://other.example.org/10\n   and 3 more reports\n" in text
    assert "</ul>\n<p><small>and 3 more reports</small></p>" in html


@pytest.mark.parametrize(
    ("listed", "unlisted", "line"),
    [
        (2, 1, "and 1 more report"),
        (10, 2, "and 2 more reports"),
        (12, 5, "and 7 more reports"),
        (0, 4, "and 4 more reports"),
    ],
)
def test_reports_the_sender_did_not_read_are_counted_too(
    listed: int, unlisted: int, line: str
) -> None:
    item = _item(reports=tuple(_report(n) for n in range(listed)), unlisted_reports=unlisted)
    text = _text(render_digest(_digest(item), sender=SENDER))
    assert f"   {line}\n" in text
    assert text.count("   - Report ") == min(listed, MAX_LISTED_REPORTS)


def test_hostile_report_text_is_escaped_and_hostile_links_dropped() -> None:
    hostile = _report(
        1,
        title='<script>alert(1)</script>"><img src=x onerror=alert(2)>',
        source="<b>Evil</b> & Co",
        language='ru"><script>alert(3)</script>',
        url="javascript:alert(4)",
    )
    attribute = _report(2, url='https://other.example.org/a"onmouseover="alert(5)&b=<c>')
    item = _item(also_reported_by=("<b>Evil</b> & Co",), reports=(hostile, attribute))
    html = _html(render_digest(_digest(item), sender=SENDER))
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "alert(4)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in (
        html
    )
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in html
    assert '<li lang="ru&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;">' in html
    escaped = "https://other.example.org/a&quot;onmouseover=&quot;alert(5)&amp;b=&lt;c&gt;"
    assert f'<a href="{escaped}">Report 2</a>' in html
    assert 'onmouseover="' not in html
    text = _text(render_digest(_digest(item), sender=SENDER))
    assert "javascript:" not in text


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "/relative", "https://a.example/\nb"]
)
def test_a_report_with_an_unsafe_link_is_listed_without_one(url: str) -> None:
    item = _item(reports=(_report(1, url=url),))
    message = render_digest(_digest(item), sender=SENDER)
    assert '<li lang="ru">Report 1 <small>' in _html(message)
    assert "   - Report 1\n     Other Source 1 · ru · 2024-05-01 13:00 UTC\n\n" in _text(message)


def test_a_report_title_cannot_fake_a_story_line_or_a_header() -> None:
    # A line break would let a report pose as a numbered story of the digest.
    item = _item(
        reports=(
            _report(1, title="Quiet\r\n2. Fake story\u2028Bcc: evil@example.org"),
            _report(2, source="Src\n3. Another", language="ru\x00"),
        )
    )
    message = _reparsed(render_digest(_digest(item), sender=SENDER))
    text = _text(message)
    assert [line for line in text.splitlines() if line[:1].isdigit()] == ["1. Story number 1"]
    assert "   - Quiet 2. Fake story Bcc: evil@example.org\r\n" in text
    assert "     Src 3. Another · ru · 2024-05-01 14:00 UTC\r\n" in text
    assert message["Bcc"] is None


def test_lone_surrogates_in_a_report_do_not_fail_the_digest() -> None:
    item = _item(reports=(_report(1, title="Bad\udc80byte", url="https://x.example/\udc80"),))
    text = _text(_reparsed(render_digest(_digest(item), sender=SENDER)))
    assert "   - Bad\ufffdbyte\r\n" in text
    assert "x.example" not in text
