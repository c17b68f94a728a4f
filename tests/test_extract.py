"""Tests for pipeline.normalise.extract on the hand-written pages in tests/fixtures/pages."""

# Typographic quotes, dashes and mojibake are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import ExtractionError, PermanentError
from pipeline.normalise.extract import (
    ExtractedArticle,
    decode_html,
    extract_article,
    normalise_language,
    repair_mojibake,
)

PAGES = Path(__file__).parent / "fixtures" / "pages"
FETCHED = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
FEED_DATE = "Tue, 05 Mar 2024 06:00:00 GMT"


def page(name: str) -> bytes:
    """Raw bytes of a fixture page, exactly as a server would send them."""
    return (PAGES / name).read_bytes()


def extract(
    name: str, url: str = "https://www.example.com/city/harbour-plan", **kw: object
) -> ExtractedArticle:
    return extract_article(page(name), url, fetched_at=FETCHED, **kw)  # type: ignore[arg-type]


# --- canonical URLs -------------------------------------------------------------------------


def test_full_page_with_rel_canonical() -> None:
    article = extract(
        "canonical.html",
        "https://www.example.com/city/harbour-plan?utm_source=newsletter&fbclid=abc#comments",
        content_type="text/html; charset=utf-8",
    )
    assert (
        article.url
        == "https://www.example.com/city/harbour-plan?utm_source=newsletter&fbclid=abc#comments"
    )
    assert article.canonical_url == "https://www.example.com/city/harbour-plan"
    assert article.title == "Harbour plan approved after six-year dispute"
    assert "eastern harbour into a mixed district" in article.text
    assert "swimming basin" in article.text
    for boilerplate in ("Bus lanes extended", "Privacy", "More stories", "Front page"):
        assert boilerplate not in article.text
    assert article.published == datetime(2024, 3, 1, 7, 30, tzinfo=UTC)
    assert article.published_raw == "2024-03-01T08:30:00+01:00"
    assert article.published_source == "page"
    assert article.authors == ("Mara Lindqvist",)
    assert article.site_name == "Example Gazette"
    assert article.lead_image == "https://www.example.com/images/harbour.jpg"
    assert (
        article.description
        == "Council backs flats, workshops and a swimming basin on the eastern quay."
    )
    assert article.language_hint == "en"
    assert article.encoding == "utf-8"
    assert article.mojibake_repaired is False
    assert article.rejected_dates == ()


def test_without_declared_canonical_the_cleaned_page_url_is_used() -> None:
    article = extract(
        "no_canonical.html", "https://www.example.com/city/harbour-plan?utm_source=x&id=7&gclid=1"
    )
    assert article.canonical_url == "https://www.example.com/city/harbour-plan?id=7"


def test_canonical_on_another_site_is_ignored() -> None:
    article = extract("canonical_offsite.html")
    assert article.canonical_url == "https://www.example.com/city/harbour-plan"
    assert article.site_name is None  # not the aggregator's host


def test_canonical_pointing_at_the_home_page_is_ignored() -> None:
    article = extract("canonical_homepage.html")
    assert article.canonical_url == "https://www.example.com/city/harbour-plan"


def test_og_url_only() -> None:
    article = extract(
        "og_url_only.html", "https://example.com/culture/library-reopens?ref_src=twsrc"
    )
    assert article.canonical_url == "https://www.example.com/culture/library-reopens"
    assert article.language_hint == "en"  # from og:locale en_US; the page has no <html lang>


def test_amp_page_declares_its_canonical() -> None:
    article = extract(
        "amp.html", "https://www.example.fr/politique/reforme-retraites/amp/?utm_source=x"
    )
    assert article.canonical_url == "https://www.example.fr/politique/reforme-retraites"
    assert article.language_hint == "fr"
    assert "réforme des retraites" in article.text


def test_amp_url_without_declaration_is_mapped() -> None:
    article = extract("no_canonical.html", "https://www.example.com/city/amp/harbour-plan?amp=1")
    assert article.canonical_url == "https://www.example.com/city/harbour-plan"


def test_relative_canonical_resolves_against_base_href() -> None:
    html = page("no_canonical.html").replace(
        b"<head>",
        b'<head><base href="/archive/"><link rel="canonical" href="harbour">',
    )
    article = extract_article(html, "https://www.example.com/x/y", fetched_at=FETCHED)
    assert article.canonical_url == "https://www.example.com/archive/harbour"


def test_malformed_declared_urls_are_skipped() -> None:
    html = page("no_canonical.html").replace(
        b"<head>",
        b'<head><link rel="canonical" href="http://[broken"><meta property="og:image" content="http://[x">'
        b'<meta property="og:url" content="https://www.example.com/og">',
    )
    article = extract_article(html, "https://www.example.com/x", fetched_at=FETCHED)
    assert article.canonical_url == "https://www.example.com/og"
    assert article.lead_image is None


# --- dates ----------------------------------------------------------------------------------


def test_page_date_wins_over_json_ld_and_feed() -> None:
    article = extract(
        "conflicting_dates.html", feed_title="Drivers strike", feed_published=FEED_DATE
    )
    assert article.published == datetime(2024, 2, 10, 7, 0, tzinfo=UTC)
    assert article.published_source == "page"
    assert article.updated == datetime(2024, 2, 12, 10, 0, tzinfo=UTC)
    assert article.authors == ("Tom Okafor",)
    assert article.title == "Drivers strike"


def test_json_ld_date_in_slash_form_is_read_correctly() -> None:
    article = extract("jsonld_date.html")
    assert article.published == datetime(2024, 2, 9, 18, 45, tzinfo=UTC)
    assert article.published_raw == "2024/2/9 18:45:00"
    assert article.published_source == "page"
    assert article.site_name == "Example Gazette"
    assert article.authors == ("Tom Okafor",)


def test_implausible_page_dates_fall_back_to_the_feed() -> None:
    article = extract(
        "implausible_dates.html", feed_title="Drivers strike", feed_published=FEED_DATE
    )
    assert article.published == datetime(2024, 3, 5, 6, 0, tzinfo=UTC)
    assert article.published_raw == FEED_DATE
    assert article.published_source == "feed"
    assert [(d.raw, d.rejected) for d in article.rejected_dates] == [
        ("2099-01-01T00:00:00Z", "future"),
        ("1970-01-01T00:00:00Z", "before_1990"),
    ]


def test_implausible_everywhere_falls_back_to_fetch_time() -> None:
    article = extract("implausible_dates.html", feed_published="2030-01-01T00:00:00Z")
    assert article.published == FETCHED
    assert article.published_raw is None
    assert article.published_source == "fetched"
    assert {d.raw: d.rejected for d in article.rejected_dates}["2030-01-01T00:00:00Z"] == "future"


def test_missing_page_date_uses_feed_then_fetch_time() -> None:
    with_feed = extract("no_canonical.html", feed_title="Harbour", feed_published=FEED_DATE)
    assert (with_feed.published, with_feed.published_source) == (
        datetime(2024, 3, 5, 6, tzinfo=UTC),
        "feed",
    )
    without = extract("no_canonical.html")
    assert (without.published, without.published_source, without.published_raw) == (
        FETCHED,
        "fetched",
        None,
    )


def test_naive_fetch_time_is_taken_as_utc() -> None:
    article = extract_article(
        page("no_canonical.html"), "https://www.example.com/a", fetched_at=datetime(2024, 3, 5, 12)
    )
    assert article.published == FETCHED


def test_metadata_pass_runs_only_when_the_feed_lacks_title_or_date() -> None:
    # The only date on this page is in its URL, which only trafilatura's metadata pass reads.
    url = "https://www.example.com/2024/02/20/harbour-plan"
    full = extract("no_canonical.html", url)
    assert (full.published, full.published_source) == (datetime(2024, 2, 20, tzinfo=UTC), "page")
    assert full.title == "Harbour plan approved after six-year dispute"
    title_only = extract("no_canonical.html", url, feed_title="Feed title")
    assert title_only.published_source == "page"
    fast = extract("no_canonical.html", url, feed_title="Feed title", feed_published=FEED_DATE)
    assert (fast.published_source, fast.title) == ("feed", "Feed title")
    # an implausible feed date does not count as "the feed gave a date"
    bad_feed = extract(
        "no_canonical.html", url, feed_title="Feed title", feed_published="1985-01-01"
    )
    assert bad_feed.published_source == "page"


# --- decoding -------------------------------------------------------------------------------

GERMAN = (
    "Straßenbahn",
    "3,20 €",
    "„Wir sind froh, dass es endlich vorbei ist“",
    "« très pratique, voilà tout »",
)


def test_cp1252_page_without_any_charset() -> None:
    article = extract("cp1252_no_charset.html", "https://www.example.de/a")
    assert article.encoding == "cp1252"
    assert article.title == "Straßenbahn fährt wieder – Fahrpreise steigen"
    for phrase in GERMAN:
        assert phrase in article.text
    assert "\ufffd" not in article.text
    assert article.language_hint == "de"


def test_utf8_header_on_cp1252_bytes() -> None:
    article = extract(
        "utf8_declared_cp1252_bytes.html",
        "https://www.example.de/a",
        content_type="text/html; charset=UTF-8",
    )
    assert article.encoding == "cp1252"
    for phrase in GERMAN:
        assert phrase in article.text
    assert "\ufffd" not in article.text


def test_bom_beats_header_and_meta() -> None:
    article = extract(
        "bom_utf8.html", "https://www.example.pl/a", content_type="text/html; charset=iso-8859-2"
    )
    assert article.encoding == "utf-8"
    assert "Zażółć gęślą jaźń" in article.text
    assert article.title == "Nowy most pieszy otwarty przed wakacjami"
    assert not article.text.startswith("\ufeff")


def test_meta_declared_cp1251() -> None:
    article = extract("cp1251_meta.html", "https://www.example.ru/a")
    assert article.encoding == "cp1251"
    assert article.title == "Совет утвердил план реконструкции порта"
    assert "Городской совет в четверг утвердил план" in article.text
    assert article.language_hint == "ru"


def test_xhtml_with_xml_declaration() -> None:
    body = (
        b'<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html>\n'
        b'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="fr-CA">'
        b"<head><title>Carte</title></head><body><p>"
        + "Café crème brûlée à la carte, servi tous les midis. ".encode("latin-1") * 6
        + b"</p></body></html>"
    )
    article = extract_article(body, "https://www.example.ca/menu", fetched_at=FETCHED)
    assert article.encoding == "cp1252"
    assert article.language_hint == "fr"
    assert article.text.startswith("Café crème brûlée à la carte")


def test_utf8_bytes_under_a_latin1_label_are_read_as_utf8() -> None:
    article = extract(
        "amp.html", "https://www.example.fr/a", content_type="text/html; charset=ISO-8859-1"
    )
    assert article.encoding == "utf-8"
    assert article.mojibake_repaired is False
    assert "présenté mercredi" in article.text


def test_mojibake_page_is_repaired() -> None:
    raw = page("mojibake.html")
    assert "prÃ©sentÃ©".encode() in raw  # the fixture really is double-encoded
    article = extract(
        "mojibake.html", "https://www.example.fr/a", content_type="text/html; charset=utf-8"
    )
    assert article.mojibake_repaired is True
    assert article.encoding == "utf-8"
    assert article.title == "Retraites : le gouvernement présente sa nouvelle réforme"
    assert "relèvement progressif de l’âge de départ" in article.text
    assert "Ã" not in article.text and "â€" not in article.text


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("CafÃ© crÃ¨me", "Café crème"),
        ("lâ€™Ã¢ge", "l’âge"),
        ("â€œquotedâ€\x9d", "“quoted”"),  # 0x9D has no cp1252 character: read as latin-1
        ("ÐŸÑ€Ð¸Ð²ÐµÑ‚", "Привет"),
        ("Ã¢â‚¬â„¢", "’"),  # two layers
        ("ZaÅ¼Ã³Å‚Ä‡", "Zażółć"),
    ],
)
def test_repair_mojibake(broken: str, fixed: str) -> None:
    assert repair_mojibake(broken) == (fixed, True)


@pytest.mark.parametrize(
    "clean",
    [
        "„Zu Fuß“ ging es weiter.",  # ß + “ is valid UTF-8 for an NKo letter: must stay
        "naïve café, Ærøskøbing, Ôtez-vous",
        "Привет, мир",
        "plain ascii",
        "ÀÉÎÕÜ ×÷",
        "l’été’ et à–dire",  # letter + quote, letter + dash: no UTF-8
        'id="ï\x81\x97-2"',  # a mangled icon-font code point in markup: not worth ftfy's time
    ],
)
def test_repair_mojibake_leaves_clean_text_alone(clean: str) -> None:
    assert repair_mojibake(clean) == (clean, False)


def test_decode_html_reports_codec_and_repair() -> None:
    decoded = decode_html("<p>CafÃ©</p>".encode(), "text/html; charset=utf-8")
    assert (decoded.text, decoded.encoding, decoded.mojibake_repaired) == (
        "<p>Café</p>",
        "utf-8",
        True,
    )
    sniffed = decode_html("<p>Größe</p>".encode("utf-16-le"), "text/html; charset=utf-16-le")
    assert (sniffed.text, sniffed.encoding) == ("<p>Größe</p>", "utf-16-le")


@pytest.mark.parametrize("label", ["hex", "base64", "rot13", "uu"])
def test_a_charset_that_is_not_a_text_encoding_is_ignored(label: str) -> None:
    # Python knows these names, but as bytes-to-bytes codecs that bytes.decode refuses.
    html = page("no_canonical.html").replace(b'charset="utf-8"', f'charset="{label}"'.encode())
    assert decode_html(html).encoding == "utf-8"
    assert decode_html(html, f"text/html; charset={label}").encoding == "utf-8"
    article = extract_article(
        html,
        "https://www.example.com/a",
        content_type=f"text/html; charset={label}",
        fetched_at=FETCHED,
    )
    assert article.encoding == "utf-8"


# --- hostile markup -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "json_ld",
    [
        "[" * 3000 + "]" * 3000,  # json.loads itself runs out of stack
        # parses, but an author list this deep is more than the stack holds to walk it
        '{"@type": "NewsArticle", "author": ' + "[" * 600 + '"A"' + "]" * 600 + "}",
    ],
)
def test_deeply_nested_json_ld_is_ignored(json_ld: str) -> None:
    html = page("no_canonical.html").replace(
        b"<head>", f'<head><script type="application/ld+json">{json_ld}</script>'.encode()
    )
    article = extract_article(html, "https://www.example.com/a", fetched_at=FETCHED)
    assert article.title == "Harbour plan approved after six-year dispute"
    assert article.authors == ()


def test_an_amp_viewer_url_without_a_target_is_kept() -> None:
    article = extract_article(
        page("no_canonical.html"), "https://www.google.com/amp/", fetched_at=FETCHED
    )
    assert article.canonical_url == "https://www.google.com/"


# --- refusals -------------------------------------------------------------------------------


def test_too_short_page() -> None:
    with pytest.raises(ExtractionError) as caught:
        extract("too_short.html", "https://www.example.com/short")
    assert caught.value.reason == "no_text"
    assert caught.value.url == "https://www.example.com/short"
    assert isinstance(caught.value, PermanentError)


def test_min_chars_is_honoured() -> None:
    assert len(extract("canonical.html", min_chars=50).text) >= 50
    with pytest.raises(ExtractionError) as caught:
        extract("canonical.html", min_chars=5000)
    assert caught.value.reason == "no_text"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("not_html.pdf", None),
        ("not_html.pdf", "application/pdf"),
        ("not_html.pdf", "text/html"),  # the header lies, the bytes do not
        ("not_html.json", "text/html; charset=utf-8"),
        ("not_html.json", "application/json"),
        ("feed.xml", "application/rss+xml"),
        ("feed.xml", None),
        ("canonical.html", "image/png"),
    ],
)
def test_not_html(name: str, content_type: str | None) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract(name, content_type=content_type)
    assert caught.value.reason == "not_html"


@pytest.mark.parametrize(
    "body",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        b"\x1f\x8b\x08\x00" + b"\x00" * 64,
        "<html><body><p>x</p></body></html>".encode("utf-16-le"),  # no BOM, no label: binary
    ],
)
def test_binary_bodies_are_not_html(body: bytes) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_article(
            body, "https://www.example.com/x", content_type="text/html", fetched_at=FETCHED
        )
    assert caught.value.reason == "not_html"


@pytest.mark.parametrize("body", [b"", b"  \n\t "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_article(body, "https://www.example.com/x", fetched_at=FETCHED)
    assert caught.value.reason == "no_text"


# --- small parts ----------------------------------------------------------------------------


def test_content_language_header_is_the_last_resort() -> None:
    html = page("no_canonical.html").replace(b'<html lang="en">', b"<html>")
    article = extract_article(
        html, "https://www.example.com/a", content_language="de-AT, en", fetched_at=FETCHED
    )
    assert article.language_hint == "de"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("en-GB", "en"),
        ("de_DE", "de"),
        ("FR", "fr"),
        (" pt-BR , en ", "pt"),
        ("zh-Hant-TW", "zh"),
        ("x-default", None),
        ("eng", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_language(value: str | None, expected: str | None) -> None:
    assert normalise_language(value) == expected


def test_article_is_frozen() -> None:
    article = extract("canonical.html")
    with pytest.raises(dataclasses.FrozenInstanceError):
        article.title = "changed"  # type: ignore[misc]


# --- pathological markup ----------------------------------------------------------------


def _paragraphs(count: int) -> bytes:
    return b"<html><body>" + b"<p>lorem ipsum dolor sit</p>\n" * count + b"</body></html>"


def test_a_page_of_too_many_elements_is_oversize_before_the_heavy_work() -> None:
    # The page that once took minutes: 300k tiny paragraphs, 8.7 MB. lxml counts them in
    # milliseconds; trafilatura never sees them.
    with pytest.raises(ExtractionError) as refused:
        extract_article(_paragraphs(300_000), "https://www.example.com/p", fetched_at=FETCHED)
    assert (refused.value.reason, refused.value.detail) == (
        "oversize",
        "300002 HTML elements > 50000",
    )


def test_max_elements_counts_every_element() -> None:
    body = _paragraphs(300)  # html, body and 300 p
    with pytest.raises(ExtractionError, match="302 HTML elements > 301"):
        extract_article(body, "https://www.example.com/p", fetched_at=FETCHED, max_elements=301)
    article = extract_article(
        body, "https://www.example.com/p", fetched_at=FETCHED, max_elements=302
    )
    assert article.text.startswith("lorem ipsum dolor sit")
