"""Fetched bytes to text: one charset policy for feeds and pages, so equal bytes decode alike.

The rule, first match wins:

1. A byte order mark names the encoding, whatever any label says (WHATWG "decode"; XML 1.0
   section 4.3.3). Bytes that do not fit it become U+FFFD.
2. Bytes that are valid UTF-8 and not plain ASCII are UTF-8, whatever legacy label they carry:
   legacy text is valid UTF-8 by accident only when it already holds mojibake, while UTF-8 under
   a server's default "ISO-8859-1" is common. Only a UTF-16/32 header that nothing in the
   document contradicts is still honoured (BOM-less UTF-16 Cyrillic is all bytes < 0x80).
3. The labels, each checked by decoding strictly; a label that does not fit the bytes (a
   "utf-8" header on cp1252 bytes) is a lie and is dropped. If one fits, it decides. If the
   in-document declaration (XML declaration, <meta charset>) and the HTTP header name different
   encodings and both fit, the bytes decide between the two: charset-normalizer, limited to
   them, preferring cp1252 on ties; the declaration if it cannot tell or both read the same.
4. Otherwise valid UTF-8 (which includes plain ASCII) is UTF-8.
5. Otherwise charset-normalizer sniffs the first ``sniff_bytes``; cp1252 when it cannot tell
   or when cp1252 reads the bytes as well as its pick. Bytes that do not fit become U+FFFD.

Labels are resolved the WHATWG way (w3lib): "latin-1", "iso-8859-1" and "ascii" mean cp1252,
"gbk" means gb18030, and so on. Unknown labels, UTF-7, codecs that are not text encodings
("hex", "base64", "rot13") and escape codecs ("unicode-escape") count as no label. An
in-document declaration is found by reading the bytes as ASCII, so the document is not
UTF-16/32: a declared UTF-16/32 means UTF-8, as in the HTML prescan, and a UTF-16/32 header is
then ignored.

Why not the specs' order: HTML (WHATWG encoding sniffing) and XML media types (RFC 7303) both
put the HTTP header above the in-document declaration. Servers routinely send a site-wide
default charset that the bytes do not match, while the declaration was written by the software
that wrote the bytes; feedparser follows RFC 3023 and silently garbles such feeds. So the header
loses whenever the bytes disprove it, and a conflict the bytes cannot settle goes to the
declaration.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import charset_normalizer
import w3lib.encoding

__all__ = ["Decoded", "decode", "resolve_label"]

_WIDE_UNICODE = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
# Text codecs that no document is written in: they decode escape sequences or host names,
# so ASCII bytes such as "\u003cscript" would turn into markup (w3lib refuses UTF-7 alike).
_NOT_DOCUMENT = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
_FALLBACK = "cp1252"  # the web's de facto meaning of "latin-1" and of "unlabelled"


@dataclass(frozen=True, slots=True)
class Decoded:
    """The text and the name of the codec that produced it."""

    text: str
    encoding: str


def resolve_label(label: str | None) -> str | None:
    """The Python codec for a charset label, WHATWG-mapped; None if it names no text encoding."""
    if not label:
        return None
    name = w3lib.encoding.resolve_encoding(label.strip())
    if not name:
        return None
    # "hex", "base64", "rot13", "uu" are codecs too, but bytes-to-bytes or str-to-str ones:
    # bytes.decode refuses them. A label naming one names nothing.
    text_codec = codecs.lookup(name)._is_text_encoding and name not in _NOT_DOCUMENT
    return name if text_codec else None


def decode(
    body: bytes,
    *,
    header_charset: str | None,
    declared_charset: str | None,
    sniff_bytes: int = 65536,
) -> Decoded:
    """Decode fetched bytes by the module's rule; ``declared_charset`` is the in-document label."""
    bom_encoding, bom = w3lib.encoding.read_bom(body)
    if bom_encoding is not None and bom is not None:
        return Decoded(body[len(bom) :].decode(bom_encoding, "replace"), bom_encoding)
    declared = resolve_label(declared_charset)
    if declared in _WIDE_UNICODE:
        declared = "utf-8"
    header = resolve_label(header_charset)
    if header in _WIDE_UNICODE and declared is not None:
        header = None
    if header not in _WIDE_UNICODE and not body.isascii() and _fits(body, "utf-8"):
        return Decoded(body.decode("utf-8"), "utf-8")
    fitting: list[str] = []
    for candidate in (declared, header):
        if candidate and candidate not in fitting and _fits(body, candidate):
            fitting.append(candidate)
    if len(fitting) == 1:
        return Decoded(body.decode(fitting[0]), fitting[0])
    if fitting:
        declared_text, header_text = (body.decode(name) for name in fitting)
        chosen = fitting[0]
        if declared_text != header_text:
            chosen = _sniff(body[:sniff_bytes], among=fitting) or chosen
        return Decoded(declared_text if chosen == fitting[0] else header_text, chosen)
    if _fits(body, "utf-8"):
        return Decoded(body.decode("utf-8"), "utf-8")
    chosen = _sniff(body[:sniff_bytes], among=[]) or _FALLBACK
    return Decoded(body.decode(chosen, "replace"), chosen)


def _fits(body: bytes, encoding: str) -> bool:
    try:
        body.decode(encoding)
    except UnicodeError:  # "undefined" and friends raise UnicodeError itself
        return False
    return True


def _sniff(sample: bytes, *, among: list[str]) -> str | None:
    """charset-normalizer's pick (only from ``among`` when given), cp1252 on ties.

    On short Latin text several code pages score alike; cp1252 is the WHATWG default for
    unlabelled documents and by far the most common of them in news.
    """
    results = charset_normalizer.from_bytes(sample, cp_isolation=among or None)
    best = results.best()
    if best is None:
        return None
    cp1252_allowed = not among or _FALLBACK in among
    for match in results:
        # could_be_from_charset: code pages that decode these bytes to the very same text
        if (
            cp1252_allowed
            and match.chaos <= best.chaos
            and _FALLBACK in match.could_be_from_charset
        ):
            return _FALLBACK
    picked = resolve_label(str(best.encoding))
    if among and picked not in among:
        return None
    return picked
