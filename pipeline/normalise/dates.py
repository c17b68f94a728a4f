"""Publication dates: parse what pages and feeds say, keep the raw text, reject the implausible."""

from __future__ import annotations

import email.utils
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

import dateutil.parser

__all__ = ["EARLIEST", "MAX_SKEW", "ParsedDate", "RejectReason", "as_utc", "parse_date"]

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
"""Nothing the pipeline ingests was published before this; older values are template junk."""

MAX_SKEW = timedelta(days=1)
"""How far after ``now`` a date may lie (clock skew, time zones written wrongly)."""

RejectReason = Literal["unparseable", "before_1990", "future"]
Method = Literal["iso8601", "rfc822", "epoch", "numeric", "dateutil", "dateparser"]


@dataclass(frozen=True, slots=True)
class ParsedDate:
    """A raw date string and what became of it: ``value`` (aware, UTC) or ``rejected``."""

    raw: str
    value: datetime | None
    rejected: RejectReason | None = None
    method: Method | None = None
    assumed_utc: bool = False  # the raw text named no offset; UTC was assumed

    @property
    def ok(self) -> bool:
        """True when the date was parsed and is plausible."""
        return self.value is not None


# Offsets for the zone abbreviations news sites actually print. Ambiguous ones (IST, CST in
# China) are left out: an unknown name is treated as UTC and flagged, not guessed.
_TZ_ABBREVIATIONS: dict[str, int] = {
    name: hours * 3600
    for name, hours in {
        "UT": 0,
        "UTC": 0,
        "GMT": 0,
        "Z": 0,
        "WET": 0,
        "BST": 1,
        "WEST": 1,
        "CET": 1,
        "MEZ": 1,
        "CEST": 2,
        "MESZ": 2,
        "EET": 2,
        "EEST": 3,
        "MSK": 3,
        "EST": -5,
        "EDT": -4,
        "CST": -6,
        "CDT": -5,
        "MST": -7,
        "MDT": -6,
        "PST": -8,
        "PDT": -7,
        "JST": 9,
        "KST": 9,
        "AEST": 10,
        "AEDT": 11,
    }.items()
}

_TIME = (
    r"(?:[ T]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)
# 2016/6/29 15:07:41 -- year first is never day/month ambiguous. feedparser reads this one
# as 2016-11-01, which is why it is handled here before any general parser sees it.
_YMD = re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})" + _TIME + r"\s*", re.ASCII)
# 29/06/2016 or 06/29/2016 or 29.06.16: order decided by value, hint, or plausibility.
_XXY = re.compile(
    r"(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4}|\d{2})" + _TIME + r"\s*", re.ASCII
)
# RFC 822/2822 as feeds write it; email.utils alone is lenient enough to misread other shapes
# ("June 29, 2016 3:07 PM EDT" comes back as 03:07 with the zone dropped).
_RFC822 = re.compile(
    r"(?:[A-Za-z]{3,9},\s*)?\d{1,2}\s+[A-Za-z]{3,9}\.?\s+\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s*(?:[+-]\d{4}|[A-Za-z]{1,5}))?",
    re.ASCII,
)
_EPOCH = re.compile(r"\d{10}(?:\d{3})?", re.ASCII)
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")
_DIGIT = re.compile(r"\d")
_MAX_RAW = 120  # longer strings are prose, not dates; dateparser gets slow on them


def parse_date(
    raw: str | None,
    *,
    now: datetime,
    max_skew: timedelta = MAX_SKEW,
    dayfirst: bool | None = None,
    languages: Sequence[str] | None = None,
) -> ParsedDate | None:
    """Parse a date string into aware UTC, rejecting pre-1990 and future values.

    Returns None only when ``raw`` is None or blank. ``now`` is the reference for "future"
    and relative dates ("3 hours ago"); naive values of ``now`` are taken as UTC. ``dayfirst``
    settles 03/04/2016 when the source's convention is known; ``languages`` (ISO 639-1)
    narrows the multilingual fallback.
    """
    if raw is None:
        return None
    text = " ".join(raw.split())
    if not text:
        return None
    now = as_utc(now)
    try:
        parsed = _parse(text, now, max_skew, dayfirst, languages)
    except OverflowError:
        # A valid local time whose offset moves it past year 1 or 9999 in UTC
        # ("0001-01-01T00:00:00+05:00"): no real date, and astimezone cannot represent it.
        parsed = None
    if parsed is None:
        return ParsedDate(raw=raw, value=None, rejected="unparseable")
    value, method, assumed = parsed
    reason = _implausible(value, now, max_skew)
    if reason is not None:
        return ParsedDate(raw=raw, value=None, rejected=reason, method=method, assumed_utc=assumed)
    return ParsedDate(raw=raw, value=value, method=method, assumed_utc=assumed)


def as_utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime; a naive value is taken to be UTC already.

    Raises OverflowError when the offset carries the instant past year 1 or 9999.
    """
    # utcoffset(), not tzinfo: a tzinfo that answers None is naive too, and astimezone
    # would read such a value as the machine's local time.
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _as_utc(value: datetime) -> tuple[datetime, bool]:
    """``as_utc``, and whether UTC had to be assumed because the value named no offset."""
    return as_utc(value), value.utcoffset() is None


def _implausible(value: datetime, now: datetime, max_skew: timedelta) -> RejectReason | None:
    if value < EARLIEST:
        return "before_1990"
    if value > now + max_skew:
        return "future"
    return None


_Parsed = tuple[datetime, Method, bool]


def _parse(
    text: str,
    now: datetime,
    max_skew: timedelta,
    dayfirst: bool | None,
    languages: Sequence[str] | None,
) -> _Parsed | None:
    # Cheapest and strictest first; the general parsers only see what the strict ones refused.
    if _EPOCH.fullmatch(text):
        seconds = int(text) / (1000 if len(text) == 13 else 1)
        return datetime.fromtimestamp(seconds, tz=UTC), "epoch", False
    iso = _parse_iso(text)
    if iso is not None:
        return iso
    numeric = _parse_numeric(text, now, max_skew, dayfirst)
    if numeric is not None:
        return numeric
    rfc = _parse_rfc822(text)
    if rfc is not None:
        return rfc
    if len(text) > _MAX_RAW or not _DIGIT.search(text):
        # dateparser takes seconds to give up on digit-free prose; no date lacks a digit
        # except "yesterday"-style words, which pages do not put in date fields.
        return None
    if text.isascii() and _YEAR.search(text):
        general = _parse_dateutil(text, now)
        if general is not None:
            return general
    return _parse_dateparser(text, now, languages)


def _parse_iso(text: str) -> _Parsed | None:
    if not (len(text) >= 8 and text[:4].isdigit()):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    utc, assumed = _as_utc(value)
    return utc, "iso8601", assumed


def _parse_rfc822(text: str) -> _Parsed | None:
    if not _RFC822.fullmatch(text):
        return None
    try:
        value = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    utc, assumed = _as_utc(value)
    return utc, "rfc822", assumed


def _build(year: int, month: int, day: int, match: re.Match[str], method: Method) -> _Parsed | None:
    """Assemble a datetime from numeric fields and the shared time/zone groups."""
    hour = int(match["h"] or 0)
    minute = int(match["mi"] or 0)
    second = int(match["s"] or 0)
    micro = int((match["frac"] or "0")[:6].ljust(6, "0"))
    ampm = (match["ampm"] or "").lower().replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    tz_text = match["tz"]
    tz: timezone | None = None
    if tz_text in ("Z", "UTC", "GMT"):
        tz = UTC
    elif tz_text:
        digits = tz_text[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = timezone(offset if tz_text[0] == "+" else -offset)
    try:
        value = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:  # day 31 in June, hour 25: the text is not a date
        return None
    utc, assumed = _as_utc(value)
    return utc, method, assumed


def _parse_numeric(
    text: str, now: datetime, max_skew: timedelta, dayfirst: bool | None
) -> _Parsed | None:
    ymd = _YMD.fullmatch(text)
    if ymd is not None:
        return _build(int(ymd["y"]), int(ymd["m"]), int(ymd["d"]), ymd, "numeric")
    xxy = _XXY.fullmatch(text)
    if xxy is None:
        return None
    a, b, year = int(xxy["a"]), int(xxy["b"]), int(xxy["y"])
    if len(xxy["y"]) == 2:
        # two-digit years: the latest century that does not put the year in the future
        year += 2000 if 2000 + year <= now.year else 1900
    day_first = _build(year, b, a, xxy, "numeric")
    month_first = _build(year, a, b, xxy, "numeric")
    if day_first is None or month_first is None or a == b:
        return day_first or month_first
    if dayfirst is not None:
        return day_first if dayfirst else month_first
    # Both readings are valid dates and the source's convention is unknown. News is read
    # soon after it is published, so the reading nearest to (and not after) ``now`` wins.
    limit = now + max_skew
    candidates = [c for c in (day_first, month_first) if EARLIEST <= c[0] <= limit]
    if not candidates:
        return day_first
    return max(candidates, key=lambda c: c[0])


def _parse_dateutil(text: str, now: datetime) -> _Parsed | None:
    try:
        with warnings.catch_warnings():
            # an unknown zone name comes back naive with a warning; we flag it instead
            warnings.simplefilter("ignore")
            value = dateutil.parser.parse(
                text, tzinfos=_TZ_ABBREVIATIONS, default=datetime(now.year, 1, 1)
            )
    except (ValueError, OverflowError, TypeError):
        return None
    if not isinstance(value, datetime):
        return None
    utc, assumed = _as_utc(value)
    return utc, "dateutil", assumed


def _parse_dateparser(text: str, now: datetime, languages: Sequence[str] | None) -> _Parsed | None:
    settings = {
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "TIMEZONE": "UTC",
        "TO_TIMEZONE": "UTC",
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "past",
    }
    # Imported here: dateparser costs ~0.25 s to import and is only the last resort, while
    # every stage (feeds, sitemaps, extract, digest) imports this module.
    import dateparser

    try:
        value = dateparser.parse(
            text, languages=list(languages) if languages else None, settings=settings
        )
    except (ValueError, OverflowError, TypeError, KeyError):
        return None
    if not isinstance(value, datetime):
        return None
    # dateparser makes every result aware; whether the text named a zone is not reported
    utc, _ = _as_utc(value)
    return utc, "dateparser", False
