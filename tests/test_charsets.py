"""Tests for pipeline.net.charsets: the one decoding rule that feeds and pages share."""

# Typographic quotes and dashes are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import codecs

import pytest

from pipeline.net.charsets import decode, resolve_label

GERMAN = "„Wir müssen handeln“ – Kosten 5 €, Straßenbahn hält. Grüße aus Köln. " * 3
POLISH = "Zażółć gęślą jaźń – nowy most pieszy otwarty przed wakacjami. " * 3
RUSSIAN = "Городской совет в четверг утвердил план реконструкции порта. " * 3
CAFE = "<p>Café crème brûlée à la carte</p>"


@pytest.mark.parametrize(
    ("body", "header", "declared", "encoding", "text"),
    [
        # a BOM beats every label, and is not part of the text
        (codecs.BOM_UTF8 + POLISH.encode(), "iso-8859-2", "windows-1252", "utf-8", POLISH),
        (codecs.BOM_UTF16_LE + GERMAN.encode("utf-16-le"), "utf-8", None, "utf-16-le", GERMAN),
        (codecs.BOM_UTF16_BE + RUSSIAN.encode("utf-16-be"), None, None, "utf-16-be", RUSSIAN),
        # valid UTF-8 that is not ASCII is UTF-8 under a legacy label, from either source
        (CAFE.encode(), "iso-8859-1", None, "utf-8", CAFE),
        (CAFE.encode(), None, "windows-1252", "utf-8", CAFE),
        (CAFE.encode(), "windows-1252", "iso-8859-2", "utf-8", CAFE),
        # cp1252 without any label, or under a label the bytes disprove: sniffed as cp1252
        (GERMAN.encode("cp1252"), None, None, "cp1252", GERMAN),
        (GERMAN.encode("cp1252"), "utf-8", None, "cp1252", GERMAN),
        (GERMAN.encode("cp1252"), "utf-8", "utf-8", "cp1252", GERMAN),
        # "latin-1" means cp1252, so € and curly quotes (0x80-0x9f) survive
        (GERMAN.encode("cp1252"), "iso-8859-1", None, "cp1252", GERMAN),
        # a label that does not fit loses to the one that does, whichever source it came from
        (GERMAN.encode("cp1252"), "utf-8", "windows-1252", "cp1252", GERMAN),
        (RUSSIAN.encode("cp1251"), "windows-1251", "utf-8", "cp1251", RUSSIAN),
        (RUSSIAN.encode("cp1251"), None, "windows-1251", "cp1251", RUSSIAN),
        # both fit and disagree: the bytes decide between the two, not the header by rank
        (GERMAN.encode("cp1252"), "iso-8859-2", "windows-1252", "cp1252", GERMAN),
        (RUSSIAN.encode("cp1251"), "windows-1251", "iso-8859-1", "cp1251", RUSSIAN),
        # both fit and read the same: the declaration
        (b"<p>plain</p>", "iso-8859-2", "windows-1252", "cp1252", "<p>plain</p>"),
        (b"<p>plain</p>", "windows-1252", None, "cp1252", "<p>plain</p>"),
        (b"<p>plain</p>", None, None, "utf-8", "<p>plain</p>"),
        # BOM-less UTF-16 is honoured from the header alone; this one is all bytes < 0x80
        (RUSSIAN.encode("utf-16-le"), "utf-16-le", None, "utf-16-le", RUSSIAN),
        # a declaration read as ASCII proves the document is not UTF-16: it means UTF-8 ...
        (CAFE.encode(), None, "utf-16", "utf-8", CAFE),
        (b"<p>plain</p>", None, "utf-16-le", "utf-8", "<p>plain</p>"),
        # ... and outvotes a UTF-16 header
        (b"<p>plain</p>", "utf-16-le", "windows-1252", "cp1252", "<p>plain</p>"),
    ],
)
def test_decode(
    body: bytes, header: str | None, declared: str | None, encoding: str, text: str
) -> None:
    decoded = decode(body, header_charset=header, declared_charset=declared)
    assert (decoded.text, decoded.encoding) == (text, encoding)


@pytest.mark.parametrize(
    "label",
    [
        # codecs Python knows, but bytes-to-bytes or str-to-str ones that bytes.decode refuses
        "hex",
        "base64",
        "rot13",
        "uu",
        "zlib",
        # text codecs no document is written in; UTF-7 re-spells "<" in ASCII (w3lib refuses it)
        "unicode-escape",
        "raw-unicode-escape",
        "idna",
        "punycode",
        "undefined",
        "utf-7",
        # unknown
        "x-no-such-charset",
        "",
        "  ",
    ],
)
def test_labels_that_name_no_document_encoding_are_ignored(label: str) -> None:
    assert resolve_label(label) is None
    body = b"<p>\\u003cscript\\u003e +ADw-script+AD4- " + "Café".encode() + b"</p>"
    for header, declared in ((label, None), (None, label), (label, label)):
        decoded = decode(body, header_charset=header, declared_charset=declared)
        assert (decoded.text, decoded.encoding) == (body.decode(), "utf-8")
    cp1252 = decode(GERMAN.encode("cp1252"), header_charset=label, declared_charset=label)
    assert (cp1252.text, cp1252.encoding) == (GERMAN, "cp1252")


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("ISO-8859-1", "cp1252"),
        ("latin1", "cp1252"),
        ("US-ASCII", "cp1252"),
        ("Windows-1252", "cp1252"),
        ("iso-8859-2", "iso8859-2"),
        ("GBK", "gb18030"),
        ("Shift_JIS", "cp932"),
        (" utf8 ", "utf-8"),
        ("UTF-16LE", "utf-16-le"),
    ],
)
def test_resolve_label(label: str, codec: str) -> None:
    assert resolve_label(label) == codec


def test_sniffing_reads_only_the_sample() -> None:
    body = b"<p>" + b"a" * 100 + b"</p>" + RUSSIAN.encode("cp1251")
    whole = decode(body, header_charset=None, declared_charset=None)
    assert (whole.text, whole.encoding) == (body.decode("cp1251"), "cp1251")
    # a sample of plain ASCII sniffs as "ascii", which means cp1252
    sample = decode(body, header_charset=None, declared_charset=None, sniff_bytes=50)
    assert (sample.text, sample.encoding) == (body.decode("cp1252"), "cp1252")
