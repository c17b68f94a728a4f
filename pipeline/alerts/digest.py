"""Render an alert digest as a text + HTML e-mail built only from escaped article text."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final
from urllib.parse import quote

from pipeline.errors import PermanentError
from pipeline.net.urls import absolute_http
from pipeline.normalise.dates import as_utc

__all__ = [
    "MAX_LISTED_REPORTS",
    "Digest",
    "DigestError",
    "DigestItem",
    "StoryReport",
    "digest_message_id",
    "feedback_codes",
    "not_relevant_link",
    "render_digest",
]

# Other reports listed under one story; the rest are counted ("and 3 more reports").
MAX_LISTED_REPORTS: Final = 10

# Characters that must never reach a header or break a line: C0/C1 controls (CR, LF, NUL, NEL,
# ...) plus the Unicode line and paragraph separators.
_LINE_BREAKERS = {"Cc", "Zl", "Zp"}
# Deliberately loose, like pipeline.settings: it rejects what could break a header, nothing more.
_ADDRESS = re.compile(r"[^@\s<>,;\"()\[\]\\]+@[^@\s<>,;\"()\[\]\\]+")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SUBJECT_TITLE_MAX = 80
# What opens an RFC 2047 encoded word. The email package decodes encoded words in a header value
# it is given, so "=?utf-8?q?=0D=0ABcc:...?=" in a title would become a line break and a header.
_ENCODED_WORD = "=?"
# Put between "=" and "?": invisible when the subject is read, and no longer an encoded word.
_ENCODED_WORD_BREAK = "=\N{ZERO WIDTH SPACE}?"
# The code a "not relevant" reply carries in its subject, read back by `alerts feedback`: the
# alert's outbox id. Mail clients keep a subject as it is, and an id cannot be guessed.
_FEEDBACK_CODE = re.compile(r"\[newsradar nr:([0-9a-f]{40})\]")


class DigestError(PermanentError):
    """A digest cannot be rendered as given; ``field`` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        return f"digest {self.field}: {self.problem}"


@dataclass(frozen=True)
class StoryReport:
    """Another article of a digest item's story; every text field is untrusted article text.

    ``copy``: it copies an earlier article (``duplicate_of``) rather than telling the event in
    its own words.
    """

    article_id: str
    title: str
    url: str
    source: str
    language: str
    published: datetime | None = None
    copy: bool = False


@dataclass(frozen=True)
class DigestItem:
    """One story in a digest, led by the article the rule matched first.

    Every text field is untrusted article text. ``also_reported_by``: the names of the story's
    other sources; ``languages``: every language the story was reported in. ``reports``: the
    story's other articles, the independent reports first and then the copies, each group
    earliest first; at most MAX_LISTED_REPORTS are shown and ``unlisted_reports`` counts the
    ones the sender did not even read, so the mail can say how many more there are.
    """

    article_id: str
    title: str
    url: str
    source: str
    language: str
    published: datetime
    snippet: str = ""
    matched_terms: tuple[str, ...] = ()
    also_reported_by: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    reports: tuple[StoryReport, ...] = ()
    unlisted_reports: int = 0
    alert_id: str = ""
    story_id: str = ""
    why: str = ""


@dataclass(frozen=True)
class Digest:
    """The stories one rule matched in one window, for its recipients.

    With ``feedback_address`` each item whose alert is known carries a "not relevant" link: a
    ``mailto:`` that address with the alert's code in the subject (``not_relevant_link``).
    """

    rule_id: str
    rule_name: str
    recipients: tuple[str, ...]
    items: tuple[DigestItem, ...]
    window_start: datetime
    window_end: datetime
    feedback_address: str | None = None


def digest_message_id(
    rule_id: str,
    recipient: str,
    window_start: datetime,
    item_ids: Iterable[str],
    domain: str,
) -> str:
    """A Message-ID that depends only on the digest's identity, so a re-send repeats it."""
    if not _DOMAIN.fullmatch(domain):
        raise DigestError("domain", f"{domain!r} is not a usable Message-ID domain")
    # Item order is not part of the identity: the same stories fetched in another order are the
    # same digest. NUL cannot occur in ids or addresses, so the join is unambiguous.
    key = "\0".join(
        [rule_id, recipient.lower(), as_utc(window_start).isoformat(), *sorted(set(item_ids))]
    )
    # 128 bits is ample, and a short id keeps the header on one line for usual domains.
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<newsradar.{digest}@{domain.lower()}>"


def not_relevant_link(address: str, rule_name: str, alert_id: str) -> str:
    """A ``mailto:`` link whose subject tells ``alerts feedback`` the alert was not relevant."""
    _check_address("feedback address", address)
    if not re.fullmatch(r"[0-9a-f]{40}", alert_id):
        raise DigestError("alert id", f"{alert_id!r} is not an outbox alert id")
    subject = f"Not relevant: {_one_line(rule_name)} [newsradar nr:{alert_id}]"
    return f"mailto:{quote(address, safe='@')}?subject={quote(subject, safe='')}"


def feedback_codes(subject: str) -> list[str]:
    """The alert ids that a reply's subject marks as not relevant."""
    return _FEEDBACK_CODE.findall(subject)


def render_digest(
    digest: Digest,
    *,
    sender: str,
    recipient: str | None = None,
    domain: str | None = None,
) -> EmailMessage:
    """The digest as a multipart/alternative message to ``recipient``, or to all recipients."""
    if not digest.items:
        raise DigestError("items", "a digest needs at least one story")
    _check_address("sender", sender)
    recipients = (recipient,) if recipient is not None else digest.recipients
    if not recipients:
        raise DigestError("recipients", "a digest needs at least one recipient")
    for address in recipients:
        _check_address("recipient", address)
    # One message to all recipients is identified by the whole (sorted) list.
    id_recipient = recipient if recipient is not None else ",".join(sorted(recipients))
    message_id = digest_message_id(
        digest.rule_id,
        id_recipient,
        digest.window_start,
        (item.article_id for item in digest.items),
        domain if domain is not None else sender.rpartition("@")[2],
    )

    # The SMTP policy refuses CR/LF in any header value: a second line of defence behind
    # _header_text, so no article text can ever add a header.
    message = EmailMessage(policy=policy.SMTP)
    headers = {
        "Subject": _header_text(_subject(digest)),
        "From": sender,
        "To": ", ".join(recipients),
        # The window end, not the clock: a re-rendered digest is byte-for-byte the same message.
        "Date": format_datetime(as_utc(digest.window_end)),
        "Message-ID": message_id,
        # RFC 3834: tells vacation responders and ticket systems not to answer.
        "Auto-Submitted": "auto-generated",
    }
    for name, value in headers.items():
        try:
            message[name] = value
        except (ValueError, MessageError) as exc:  # the email package's word on a bad value
            raise DigestError(name.lower(), f"cannot be a header: {exc}") from exc
    try:
        message.set_content(_text_body(digest))
        message.add_alternative(_html_body(digest), subtype="html")
    except (ValueError, MessageError) as exc:  # UnicodeEncodeError among them
        raise DigestError("body", f"cannot be encoded: {exc}") from exc
    return message


def _subject(digest: Digest) -> str:
    count = len(digest.items)
    noun = "story" if count == 1 else "stories"
    title = _one_line(digest.items[0].title)
    if len(title) > _SUBJECT_TITLE_MAX:
        title = title[: _SUBJECT_TITLE_MAX - 1].rstrip() + "…"
    subject = f"[newsradar] {_one_line(digest.rule_name)}: {count} new {noun}"
    return f"{subject} — {title}" if title else subject


def _header_text(text: str) -> str:
    """``text`` as it may go into a header: one line, and no RFC 2047 encoded word in it.

    Every header built from article, rule or source text goes through here; the body keeps the
    text as it is (only headers decode encoded words).
    """
    return _one_line(text).replace(_ENCODED_WORD, _ENCODED_WORD_BREAK)


def _text_body(digest: Digest) -> str:
    lines = [
        f"{_one_line(digest.rule_name)}: {_count(len(digest.items), 'new story', 'new stories')}",
        f"Window: {_when(digest.window_start)} to {_when(digest.window_end)}",
        "",
    ]
    for number, item in enumerate(digest.items, start=1):
        lines.append(f"{number}. {_one_line(item.title) or '(untitled)'}")
        lines.append(f"   {_meta(item)}")
        pattern = _term_pattern(item.matched_terms)
        snippet = "".join(
            f"*{text}*" if marked else text for text, marked in _split(item.snippet, pattern)
        )
        if snippet:
            lines.append(f"   {snippet}")
        link = _safe_url(item.url)
        if link:
            lines.append(f"   {link}")
        if item.why:
            lines.append(f"   Why this matched: {_one_line(item.why)}")
        feedback = _feedback(digest, item)
        if feedback:
            lines.append(f"   Not relevant? {feedback} (story {_one_line(item.story_id)})")
        also = _also_reported(item)
        if also:
            lines.append(f"   {also}")
        lines.extend(_text_reports(item))
        lines.append("")
    lines.append("-- ")
    lines.append("newsradar alert digest")
    return "\n".join(lines) + "\n"


def _html_body(digest: Digest) -> str:
    esc = _escape
    rule = esc(_one_line(digest.rule_name))
    count = esc(_count(len(digest.items), "new story", "new stories"))
    window = f"{esc(_when(digest.window_start))} to {esc(_when(digest.window_end))}"
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{rule}</title></head><body>",
        f"<h1>{rule}: {count}</h1>",
        f"<p>Window: {window}</p>",
        "<ol>",
    ]
    for item in digest.items:
        title = esc(_one_line(item.title) or "(untitled)")
        link = _safe_url(item.url)
        heading = f'<a href="{esc(link)}">{title}</a>' if link else title
        lang = esc(_one_line(item.language))
        parts.append(f'<li lang="{lang}">' if lang else "<li>")
        parts.append(f"<h2>{heading}</h2>")
        parts.append(f"<p><small>{esc(_meta(item))}</small></p>")
        pattern = _term_pattern(item.matched_terms)
        snippet = "".join(
            f"<mark>{esc(text)}</mark>" if marked else esc(text)
            for text, marked in _split(item.snippet, pattern)
        )
        if snippet:
            parts.append(f"<p>{snippet}</p>")
        if link:
            parts.append(f'<p><a href="{esc(link)}">{esc(link)}</a></p>')
        if item.why:
            parts.append(f"<p><small>Why this matched: {esc(_one_line(item.why))}</small></p>")
        feedback = _feedback(digest, item)
        if feedback:
            story = esc(_one_line(item.story_id))
            parts.append(
                f'<p><small><a href="{esc(feedback)}">Not relevant</a> · story {story}</small></p>'
            )
        also = _also_reported(item)
        if also:
            parts.append(f"<p>{esc(also)}</p>")
        parts.extend(_html_reports(item))
        parts.append("</li>")
    parts.append("</ol>")
    parts.append("<p><small>newsradar alert digest</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _feedback(digest: Digest, item: DigestItem) -> str:
    """The item's "not relevant" link, or "" without a feedback address or an alert."""
    if not digest.feedback_address or not item.alert_id:
        return ""
    return not_relevant_link(digest.feedback_address, digest.rule_name, item.alert_id)


def _meta(item: DigestItem) -> str:
    fields = [_one_line(item.source), _one_line(item.language), _when(item.published)]
    return " · ".join(field for field in fields if field)


def _also_reported(item: DigestItem) -> str:
    """The line "Also reported by 2 sources in en, ru, uk"; "" when no other source has it.

    The source names follow only when no reports are listed: a listed report names its source.
    """
    names = [name for name in (_one_line(n) for n in item.also_reported_by) if name]
    if not names:
        return ""
    line = f"Also reported by {_count(len(names), 'source', 'sources')}"
    languages = sorted({code for code in (_one_line(c) for c in item.languages) if code})
    if languages:
        line += f" in {', '.join(languages)}"
    return line if item.reports else f"{line}: {', '.join(names)}"


def _listed(item: DigestItem) -> tuple[tuple[StoryReport, ...], str]:
    """The reports shown under an item, and the line counting those left out ("" if none)."""
    shown = item.reports[:MAX_LISTED_REPORTS]
    more = len(item.reports) - len(shown) + max(0, item.unlisted_reports)
    if not more:
        return shown, ""
    return shown, f"and {_count(more, 'more report', 'more reports')}"


def _report_meta(report: StoryReport) -> str:
    fields = [_one_line(report.source), _one_line(report.language)]
    if report.published is not None:
        fields.append(_when(report.published))
    if report.copy:
        fields.append("copy")
    return " · ".join(field for field in fields if field)


def _text_reports(item: DigestItem) -> list[str]:
    """The item's other reports as indented plain-text lines (none start with a number)."""
    shown, more = _listed(item)
    if not shown and not more:
        return []
    lines = ["   Other reports:"]
    for report in shown:
        lines.append(f"   - {_one_line(report.title) or '(untitled)'}")
        meta = _report_meta(report)
        if meta:
            lines.append(f"     {meta}")
        link = _safe_url(report.url)
        if link:
            lines.append(f"     {link}")
    if more:
        lines.append(f"   {more}")
    return lines


def _html_reports(item: DigestItem) -> list[str]:
    """The item's other reports as an HTML list, every piece of article text escaped."""
    esc = _escape
    shown, more = _listed(item)
    if not shown and not more:
        return []
    parts = ["<p>Other reports:</p>"]
    if shown:
        parts.append("<ul>")
        for report in shown:
            title = esc(_one_line(report.title) or "(untitled)")
            link = _safe_url(report.url)
            heading = f'<a href="{esc(link)}">{title}</a>' if link else title
            lang = esc(_one_line(report.language))
            opening = f'<li lang="{lang}">' if lang else "<li>"
            meta = _report_meta(report)
            detail = f" <small>{esc(meta)}</small>" if meta else ""
            parts.append(f"{opening}{heading}{detail}</li>")
        parts.append("</ul>")
    if more:
        parts.append(f"<p><small>{esc(more)}</small></p>")
    return parts


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _one_line(text: str) -> str:
    """NFC text with every control or line-breaking character collapsed into single spaces.

    A lone surrogate (text decoded with "surrogateescape" somewhere upstream) cannot be written
    as UTF-8 and would fail the whole message: it becomes U+FFFD, as a bad byte would.
    """
    if _has_surrogate(text):
        text = "".join("\N{REPLACEMENT CHARACTER}" if _has_surrogate(ch) else ch for ch in text)
    text = unicodedata.normalize("NFC", text)
    cleaned = "".join(" " if unicodedata.category(ch) in _LINE_BREAKERS else ch for ch in text)
    return " ".join(cleaned.split())


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _when(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _safe_url(url: str) -> str:
    """The URL if it is a plain http(s) link, else "" (javascript:, data:, file: are dropped)."""
    url = url.strip()
    if _has_surrogate(url) or any(
        unicodedata.category(ch) in _LINE_BREAKERS or ch.isspace() for ch in url
    ):
        return ""
    # No base: a relative link cannot be resolved here, so it is dropped too.
    return absolute_http(url, "") or ""


def _term_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern for the terms, longest first so phrases win over words."""
    cleaned = {_one_line(term) for term in terms}
    words = sorted((t for t in cleaned if t), key=lambda t: (-len(t), t))
    if not words:
        return None
    # A term matches at the start of a word and the mark extends to the word's end: matched
    # terms from the search analyser are often stems ("расширен" in "расширения").
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})\w*", re.IGNORECASE)


def _split(snippet: str, pattern: re.Pattern[str] | None) -> list[tuple[str, bool]]:
    """The one-line snippet cut into (text, is_match) pieces."""
    text = _one_line(snippet)
    if pattern is None:
        return [(text, False)] if text else []
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.append((text[position : match.start()], False))
        pieces.append((match.group(), True))
        position = match.end()
    if position < len(text):
        pieces.append((text[position:], False))
    return pieces


def _check_address(field: str, address: str) -> None:
    # "=?" would start an RFC 2047 encoded word, which the address parser decodes: an address
    # could then carry a line break, or turn into another address, once it is in a header.
    if (
        not _ADDRESS.fullmatch(address)
        or _ENCODED_WORD in address
        or any(unicodedata.category(ch) == "Cc" for ch in address)
    ):
        raise DigestError(field, f"{address!r} is not a plain e-mail address")
