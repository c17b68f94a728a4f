"""Tests for pipeline.normalise.dates: a table of date strings as pages and feeds write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import NoOffset

from pipeline.normalise.dates import EARLIEST, ParsedDate, as_utc, parse_date

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


ACCEPTED = [
    # year first with slashes: feedparser reads this one as 2016-11-01
    ("2016/6/29 15:07:41", utc(2016, 6, 29, 15, 7, 41), "numeric", True),
    ("2016/06/29", utc(2016, 6, 29), "numeric", True),
    ("2016.6.29 3:07 PM", utc(2016, 6, 29, 15, 7), "numeric", True),
    ("2016/6/29 15:07:41 +0200", utc(2016, 6, 29, 13, 7, 41), "numeric", False),
    # RFC 822 as feeds write it
    ("Wed, 29 Jun 2016 15:07:41 GMT", utc(2016, 6, 29, 15, 7, 41), "rfc822", False),
    ("Wed, 29 Jun 2016 15:07:41 +0300", utc(2016, 6, 29, 12, 7, 41), "rfc822", False),
    ("29 Jun 2016 15:07 EST", utc(2016, 6, 29, 20, 7), "rfc822", False),
    ("Wed, 29 Jun 16 15:07:41 PDT", utc(2016, 6, 29, 22, 7, 41), "rfc822", False),
    ("Wed, 29 Jun 2016 15:07:41 -0000", utc(2016, 6, 29, 15, 7, 41), "rfc822", True),
    # ISO 8601 with and without offsets
    ("2016-06-29T15:07:41Z", utc(2016, 6, 29, 15, 7, 41), "iso8601", False),
    ("2016-06-29T15:07:41+02:00", utc(2016, 6, 29, 13, 7, 41), "iso8601", False),
    ("2016-06-29T15:07:41.250-04:00", utc(2016, 6, 29, 19, 7, 41, 250000), "iso8601", False),
    ("2016-06-29 15:07:41 +0530", utc(2016, 6, 29, 9, 37, 41), "iso8601", False),
    ("2016-06-29T15:07", utc(2016, 6, 29, 15, 7), "iso8601", True),
    ("2016-06-29", utc(2016, 6, 29), "iso8601", True),
    ("  2016-06-29T15:07:41Z\n", utc(2016, 6, 29, 15, 7, 41), "iso8601", False),
    # an offset can pull a local 1989 time into 1990 UTC
    ("1989-12-31T23:30:00-01:00", utc(1990, 1, 1, 0, 30), "iso8601", False),
    # day/month decided by the values
    ("29/06/2016", utc(2016, 6, 29), "numeric", True),
    ("06/29/2016", utc(2016, 6, 29), "numeric", True),
    ("29.06.16 08:15", utc(2016, 6, 29, 8, 15), "numeric", True),
    # English prose dates, with zone names
    ("June 29, 2016 3:07 PM EDT", utc(2016, 6, 29, 19, 7), "dateutil", False),
    ("29 June 2016", utc(2016, 6, 29), "dateutil", True),
    # epoch seconds and milliseconds
    ("1467212861", utc(2016, 6, 29, 15, 7, 41), "epoch", False),
    ("1467212861000", utc(2016, 6, 29, 15, 7, 41), "epoch", False),
    # other languages
    ("29 июня 2016 г., 15:07", utc(2016, 6, 29, 15, 7), "dateparser", False),  # noqa: RUF001
    ("Mittwoch, 29. Juni 2016", utc(2016, 6, 29), "dateparser", False),
    ("le 29 juin 2016 à 15h07", utc(2016, 6, 29, 15, 7), "dateparser", False),
    ("29 червня 2016", utc(2016, 6, 29), "dateparser", False),
    # relative dates are relative to ``now``, not to the clock
    ("vor 3 Stunden", utc(2024, 5, 1, 9), "dateparser", False),
    ("hace 2 días", utc(2024, 4, 29, 12), "dateparser", False),
]


@pytest.mark.parametrize(("raw", "expected", "method", "assumed"), ACCEPTED)
def test_accepted_dates(raw: str, expected: datetime, method: str, assumed: bool) -> None:
    parsed = parse_date(raw, now=NOW)
    assert parsed is not None
    assert parsed.ok
    assert parsed.value == expected
    assert parsed.value is not None and parsed.value.tzinfo is UTC
    assert parsed.raw == raw
    assert parsed.rejected is None
    assert parsed.method == method
    assert parsed.assumed_utc is assumed


REJECTED = [
    ("1989-12-31T23:59:59Z", "before_1990"),
    ("1970-01-01T00:00:00Z", "before_1990"),
    ("0", "unparseable"),
    ("Wed, 31 Dec 1969 23:59:59 GMT", "before_1990"),
    ("2099-01-01", "future"),
    ("2024-05-02T12:00:01Z", "future"),  # one second past the one-day skew
    ("05/06/2024", "future"),  # both readings (5 June, 6 May) are after now + 1 day
    ("2016-13-45", "unparseable"),
    ("31/02/2016", "unparseable"),
    ("2016/6/31 10:00", "unparseable"),
    ("garbage", "unparseable"),
    ("Issue 42", "unparseable"),
    ("TBD", "unparseable"),
    ("x" * 500 + " 2016", "unparseable"),
    # valid local times that the offset moves outside datetime's range in UTC
    ("0001-01-01T00:00:00+05:00", "unparseable"),
    ("9999-12-31T23:59:59-05:00", "unparseable"),
    ("0001/01/01 00:00 +05:00", "unparseable"),
    ("9999/12/31 23:59 -05:00", "unparseable"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_rejected_dates_keep_raw_and_reason(raw: str, reason: str) -> None:
    parsed = parse_date(raw, now=NOW)
    assert parsed is not None
    assert not parsed.ok
    assert parsed.value is None
    assert parsed.rejected == reason
    assert parsed.raw == raw


@pytest.mark.parametrize("raw", [None, "", "   \n\t"])
def test_nothing_to_parse_is_none(raw: str | None) -> None:
    assert parse_date(raw, now=NOW) is None


def test_skew_boundary() -> None:
    inside = parse_date("2024-05-02T12:00:00Z", now=NOW)
    assert inside is not None and inside.value == utc(2024, 5, 2, 12)
    tight = parse_date("2024-05-01T12:30:00Z", now=NOW, max_skew=timedelta(minutes=10))
    assert tight is not None and tight.rejected == "future"


def test_earliest_is_1990_utc() -> None:
    assert utc(1990, 1, 1) == EARLIEST
    first = parse_date("1990-01-01T00:00:00Z", now=NOW)
    assert first is not None and first.value == EARLIEST


def test_now_comes_from_the_caller_not_the_clock() -> None:
    then = utc(2010, 1, 1)
    parsed = parse_date("2016/6/29 15:07:41", now=then)
    assert parsed is not None and parsed.rejected == "future"
    relative = parse_date("vor 2 Tagen", now=then)
    assert relative is not None and relative.value == utc(2009, 12, 30)


def test_naive_now_is_taken_as_utc() -> None:
    parsed = parse_date("2024-05-02T11:00:00Z", now=datetime(2024, 5, 1, 12, 0))
    assert parsed is not None and parsed.ok


def test_aware_now_in_another_zone() -> None:
    tokyo_now = NOW.astimezone(timezone(timedelta(hours=9)))
    parsed = parse_date("2024-05-02T13:00:00Z", now=tokyo_now)
    assert parsed is not None and parsed.rejected == "future"


@pytest.mark.parametrize(
    ("raw", "dayfirst", "expected"),
    [
        ("03/04/2024", True, utc(2024, 4, 3)),
        ("03/04/2024", False, utc(2024, 3, 4)),
        # without a hint the reading nearest to (and not after) now wins
        ("03/04/2024", None, utc(2024, 4, 3)),
        ("04/03/2024", None, utc(2024, 4, 3)),
        ("05/04/2024", None, utc(2024, 4, 5)),  # 4 May is after now + 1 day
        ("04/04/2024", None, utc(2024, 4, 4)),
        ("13/04/2024", False, utc(2024, 4, 13)),  # only one reading exists
    ],
)
def test_day_month_ambiguity(raw: str, dayfirst: bool | None, expected: datetime) -> None:
    parsed = parse_date(raw, now=NOW, dayfirst=dayfirst)
    assert parsed is not None and parsed.value == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("29.06.16", utc(2016, 6, 29)), ("29.06.99", utc(1999, 6, 29)), ("01.05.24", utc(2024, 5, 1))],
)
def test_two_digit_years(raw: str, expected: datetime) -> None:
    parsed = parse_date(raw, now=NOW)
    assert parsed is not None and parsed.value == expected


def test_languages_hint_narrows_the_fallback() -> None:
    parsed = parse_date("29 juin 2016", now=NOW, languages=["fr"])
    assert parsed is not None and parsed.value == utc(2016, 6, 29)


def test_parsed_date_is_frozen() -> None:
    parsed = ParsedDate(raw="x", value=None, rejected="unparseable")
    with pytest.raises(AttributeError):
        parsed.raw = "y"  # type: ignore[misc]


@pytest.mark.usefixtures("tokyo_local_time")
@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 1, 12, 0),
        datetime(2024, 5, 1, 12, 0, tzinfo=NoOffset()),
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_as_utc_takes_a_value_without_offset_as_utc_not_local_time(value: datetime) -> None:
    converted = as_utc(value)
    assert converted == utc(2024, 5, 1, 12)
    assert converted.tzinfo is UTC


def test_as_utc_past_the_calendar_raises_overflow() -> None:
    with pytest.raises(OverflowError):
        as_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))
