"""Article extraction: fetched bytes to text, title, dates, canonical URL and language hint."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import ftfy
import trafilatura
import w3lib.encoding
from lxml import etree
from trafilatura.settings import Document

from pipeline.errors import ExtractionError
from pipeline.net import charsets
from pipeline.net.urls import absolute_http, choose_canonical
from pipeline.normalise.dates import EARLIEST, MAX_SKEW, ParsedDate, as_utc, parse_date

__all__ = [
    "MAX_ELEMENTS",
    "DecodedPage",
    "ExtractedArticle",
    "PublishedSource",
    "decode_html",
    "extract_article",
    "normalise_language",
    "repair_mojibake",
]

PublishedSource = Literal["page", "feed", "fetched"]

# Extraction time grows faster than a page's element count (120k tiny <p> took 18 s, 300k did
# not finish in 180 s), and no article needs this many: a real page has a few thousand.
MAX_ELEMENTS = 50_000


@dataclass(frozen=True, slots=True)
class ExtractedArticle:
    """One article as the rest of the pipeline sees it; ``text`` is never empty."""

    url: str
    canonical_url: str
    title: str
    text: str
    description: str | None
    authors: tuple[str, ...]
    published: datetime  # aware UTC; falls back to the fetch time, see published_source
    published_raw: str | None  # the string it was parsed from; None when it is the fetch time
    published_source: PublishedSource
    updated: datetime | None
    site_name: str | None
    lead_image: str | None
    language_hint: str | None  # ISO 639-1 from <html lang>, og:locale or Content-Language
    encoding: str
    mojibake_repaired: bool
    rejected_dates: tuple[ParsedDate, ...] = ()  # dates seen and refused, with their reason


@dataclass(frozen=True, slots=True)
class DecodedPage:
    """Bytes turned into text: which codec did it and whether mojibake was repaired."""

    text: str
    encoding: str
    mojibake_repaired: bool


# --- decoding ---------------------------------------------------------------------------


# What UTF-8 read as latin-1 or cp1252 always leaves: a lead byte (U+00C2-U+00F4) before a
# continuation byte (U+0080-U+00BF, or what cp1252 makes of 0x80-0x9F). Text without one has
# nothing for ftfy to undo, and ftfy's own test costs 80 ms on a 300 KB page.
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030"
    "\u2039\u203a\u20ac\u2122]"
)


def _as_bytes(chars: str) -> bytes | None:
    """The bytes a cp1252 (else latin-1) reading turned into ``chars``; None if none could."""
    out = bytearray()
    for char in chars:
        try:
            out += char.encode("cp1252")
        except UnicodeEncodeError:
            if ord(char) > 0xFF:
                return None
            out.append(ord(char))  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: cp1252 leaves them as latin-1
    return bytes(out)


def _has_mojibake(text: str) -> bool:
    """Whether a hint starts a sequence that, read back as bytes, is valid UTF-8.

    A French "é" before a closing quote or an "ä" before a dash matches the hint too; ftfy
    would take 80 ms on such a page to find nothing. Mojibake always turns back into a whole
    UTF-8 character, and one that is not for private use.
    """
    for match in _MOJIBAKE_HINT.finditer(text):
        lead = ord(text[match.start()])
        length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        raw = _as_bytes(text[match.start() : match.start() + length])
        if raw is None or len(raw) < length:
            continue
        try:
            char = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        # An icon font's private-use code point mangled in an SVG id is no article text.
        if unicodedata.category(char) != "Co":
            return True
    return False


def repair_mojibake(text: str) -> tuple[str, bool]:
    """Undo UTF-8 that was read as cp1252/latin-1 (ftfy); report whether anything changed."""
    if not _has_mojibake(text):
        return text, False
    # fix_encoding only reverses encoding mix-ups; fix_text would also rewrite quotes,
    # HTML entities and line breaks, which are the article's own.
    fixed = ftfy.fix_encoding(text)
    return fixed, fixed != text


def decode_html(body: bytes, content_type: str | None = None) -> DecodedPage:
    """Decode page bytes by pipeline.net.charsets' rule (<meta> declares); repair mojibake."""
    decoded = charsets.decode(
        body,
        header_charset=w3lib.encoding.http_content_type_encoding(content_type),
        declared_charset=w3lib.encoding.html_body_declared_encoding(body),
    )
    text, repaired = repair_mojibake(decoded.text)
    return DecodedPage(text=text, encoding=decoded.encoding, mojibake_repaired=repaired)


# --- is it HTML at all? -------------------------------------------------------------------

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFFED_TYPES = frozenset(
    {"", "text/plain", "application/octet-stream", "binary/octet-stream", "application/unknown"}
)
_BINARY_MAGIC = (
    (b"%PDF-", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"\x89PNG", "png"),
    (b"GIF8", "gif"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"RIFF", "riff"),
    (b"\x1f\x8b", "gzip-compressed body (the fetcher must undo Content-Encoding)"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"wOF", "web font"),
)
_HTML_MARKER = re.compile(
    r"<(?:!doctype\s+html|html|head|body|meta|title|article|main|div|p)[\s>/]", re.IGNORECASE
)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _reject_non_html_bytes(body: bytes, url: str, content_type: str | None) -> None:
    media = _media_type(content_type)
    if media not in _HTML_TYPES and media not in _SNIFFED_TYPES:
        raise ExtractionError(url, "not_html", f"content type {media}")
    for magic, kind in _BINARY_MAGIC:
        if body.startswith(magic):
            raise ExtractionError(url, "not_html", kind)


def _reject_non_html_text(text: str, url: str) -> None:
    head = text[:4096]
    if "\x00" in head:
        raise ExtractionError(url, "not_html", "binary data")
    if _HTML_MARKER.search(head) is None:
        raise ExtractionError(url, "not_html", "no HTML markup")


# --- cheap head reading -------------------------------------------------------------------


@dataclass(slots=True)
class _Head:
    """What one lxml pass over meta/link/title/JSON-LD finds, before any heavy extraction."""

    meta: dict[str, str]
    canonical: str | None
    base: str | None
    title: str | None
    html_lang: str | None
    ld_published: list[str]
    ld_modified: list[str]
    ld_authors: list[str]
    ld_site_names: list[str]  # the article's publisher first, then any WebSite name


_ARTICLE_TYPES = frozenset(
    {
        "article",
        "newsarticle",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "blogposting",
        "liveblogposting",
        "socialmediaposting",
        "report",
    }
)


# JSON-LD nests a few levels (a @graph in a list, an author in a list); deeper values are
# junk, and walking them recursively would exhaust the stack (RecursionError).
_LD_MAX_DEPTH = 8


def _ld_objects(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > _LD_MAX_DEPTH:
        return
    if isinstance(data, list):
        for item in data:
            yield from _ld_objects(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _ld_objects(data["@graph"], depth + 1)


def _ld_is_article(obj: dict[str, Any]) -> bool:
    kinds = obj.get("@type")
    names = kinds if isinstance(kinds, list) else [kinds]
    return any(isinstance(k, str) and k.lower() in _ARTICLE_TYPES for k in names)


def _ld_names(value: Any, depth: int = 0) -> list[str]:
    if depth > _LD_MAX_DEPTH:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _ld_names(value.get("name"), depth + 1)
    if isinstance(value, list):
        return [name for item in value for name in _ld_names(item, depth + 1)]
    return []


def _read_json_ld(script_text: str, head: _Head) -> None:
    try:
        data = json.loads(script_text)
    # Broken JSON-LD is common and harmless: the meta tags remain. json.loads raises
    # RecursionError, not ValueError, on nesting deeper than the interpreter's stack.
    except (ValueError, RecursionError):
        return
    for obj in _ld_objects(data):
        if obj.get("@type") == "WebSite" and isinstance(obj.get("name"), str):
            head.ld_site_names.append(obj["name"])
        if not _ld_is_article(obj):
            continue
        head.ld_site_names[:0] = _ld_names(obj.get("publisher"))
        for key, target in (
            ("datePublished", head.ld_published),
            ("dateModified", head.ld_modified),
        ):
            if isinstance(obj.get(key), str):
                target.append(obj[key])
        head.ld_authors.extend(_ld_names(obj.get("author")))


def _read_head(tree: Any) -> _Head:
    root = tree.getroottree().getroot()
    head = _Head(
        meta={},
        canonical=None,
        base=None,
        title=None,
        html_lang=root.get("lang") or root.get("xml:lang"),  # the HTML parser keeps the prefix
        ld_published=[],
        ld_modified=[],
        ld_authors=[],
        ld_site_names=[],
    )
    for el in root.iter("meta", "link", "base", "title", "script"):
        tag = el.tag
        if tag == "meta":
            key = el.get("property") or el.get("name") or el.get("itemprop") or el.get("http-equiv")
            value = el.get("content")
            if key and value and value.strip():
                head.meta.setdefault(key.strip().lower(), value.strip())
        elif tag == "link":
            rels = (el.get("rel") or "").lower().split()
            if "canonical" in rels and head.canonical is None:
                head.canonical = el.get("href")
        elif tag == "base":
            head.base = head.base or el.get("href")
        elif tag == "title":
            if head.title is None and el.text and el.text.strip():
                head.title = el.text
        elif (el.get("type") or "").strip().lower() == "application/ld+json" and el.text:
            _read_json_ld(el.text, head)
    return head


def _first_meta(head: _Head, *keys: str) -> str | None:
    for key in keys:
        if value := head.meta.get(key):
            return value
    return None


_PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "publishdate",
    "publish-date",
    "pubdate",
    "dc.date.issued",
    "dcterms.issued",
    "dcterms.created",
    "dc.date",
    "date",
    "sailthru.date",
    "parsely-pub-date",
)
_EXPLICIT_PUBLISHED = 3  # the article-specific tags above; JSON-LD ranks before the generic ones
_MODIFIED_META = (
    "article:modified_time",
    "og:updated_time",
    "datemodified",
    "dcterms.modified",
    "last-modified",
)


# --- small normalisers --------------------------------------------------------------------

_LANG = re.compile(r"[a-z]{2}")


def normalise_language(value: str | None) -> str | None:
    """Two-letter code from "en-GB", "de_DE", "FR" and the like; anything else -> None."""
    if not value:
        return None
    first = re.split(r"[,;\s]+", value.strip())[0]
    primary = re.split(r"[-_]", first, maxsplit=1)[0].lower()
    return primary if _LANG.fullmatch(primary) else None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None


def _split_authors(values: list[str | None]) -> tuple[str, ...]:
    names: dict[str, str] = {}  # casefolded -> first spelling seen
    for value in values:
        for part in re.split(r"\s*[;|]\s*", value or ""):
            name = _clean(part)
            # article:author is often a profile URL, not a name
            if name and "://" not in name:
                names.setdefault(name.casefold(), name)
    return tuple(names.values())


def _fallback_title(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    if len(line) <= 120:
        return line
    return line[:120].rsplit(" ", 1)[0] + "…"


# --- extraction ---------------------------------------------------------------------------


def _first_plausible(
    raws: list[str | None], now: datetime, rejected: list[ParsedDate]
) -> ParsedDate | None:
    for raw in raws:
        parsed = parse_date(raw, now=now)
        if parsed is None:
            continue
        if parsed.ok:
            return parsed
        rejected.append(parsed)
    return None


def _published_candidates(head: _Head) -> list[str | None]:
    """Page dates in order of trust: article meta tags, JSON-LD, then generic meta names."""
    explicit = [head.meta.get(key) for key in _PUBLISHED_META[:_EXPLICIT_PUBLISHED]]
    generic = [head.meta.get(key) for key in _PUBLISHED_META[_EXPLICIT_PUBLISHED:]]
    return [*explicit, *head.ld_published, *generic]


def _pick_published(
    page: ParsedDate | None, feed: ParsedDate | None, fetched_at: datetime
) -> tuple[datetime, str | None, PublishedSource]:
    if page is not None and page.value is not None:
        return page.value, page.raw, "page"
    if feed is not None and feed.value is not None:
        return feed.value, feed.raw, "feed"
    return fetched_at, None, "fetched"


def _trafilatura(tree: Any, url: str, *, with_metadata: bool, fetched_at: datetime) -> Document:
    """Run trafilatura in fast mode; translate its failures into ExtractionError."""
    date_params = {
        "original_date": True,
        # free-text date search picks up dates of related links; meta, URL and <time> suffice
        "extensive_search": False,
        "min_date": EARLIEST.strftime("%Y-%m-%d"),
        # htmldate would read the clock for its upper bound; ours comes from the fetch
        "max_date": (fetched_at + MAX_SKEW).strftime("%Y-%m-%d"),
    }
    try:
        document = trafilatura.bare_extraction(
            tree,
            url=url,
            fast=True,
            include_comments=False,
            with_metadata=with_metadata,
            date_extraction_params=date_params,
        )
    except (ValueError, TypeError, RecursionError, etree.LxmlError) as err:
        raise ExtractionError(url, "extract_failed", f"{type(err).__name__}: {err}") from err
    if not isinstance(document, Document):
        raise ExtractionError(url, "no_text", "the extractor found no main text")
    return document


def extract_article(
    body: bytes,
    url: str,
    *,
    content_type: str | None = None,
    content_language: str | None = None,
    feed_title: str | None = None,
    feed_published: str | None = None,
    fetched_at: datetime,
    min_chars: int = 200,
    max_elements: int = MAX_ELEMENTS,
) -> ExtractedArticle:
    """Turn a fetched page into an article, or raise ExtractionError with the reason.

    Reasons: ``not_html``, ``no_text`` (fewer than ``min_chars`` characters of main text),
    ``oversize`` (more than ``max_elements`` HTML elements), ``extract_failed``.
    Trafilatura's metadata pass runs only when the feed did not give both a title and a
    plausible date; canonical URL, language and meta tags are always read.
    An unusable ``url`` raises ``pipeline.net.urls.UnsupportedURL``. Both are PermanentErrors;
    anything else is a bug.
    """
    fetched_at = as_utc(fetched_at)
    page, tree = _load_page(body, url, content_type, max_elements)
    head = _read_head(tree)
    base = absolute_http(head.base or "", url) or url
    declared = [absolute_http(v or "", base) for v in (head.canonical, head.meta.get("og:url"))]
    canonical_url = choose_canonical(url, declared)

    rejected: list[ParsedDate] = []
    page_date = _first_plausible(_published_candidates(head), fetched_at, rejected)
    feed_date = _first_plausible([feed_published], fetched_at, rejected)
    title = _clean(feed_title)
    need_metadata = title is None or feed_date is None

    document = _trafilatura(tree, url, with_metadata=need_metadata, fetched_at=fetched_at)
    text = (document.text or "").strip()
    if len(text) < min_chars:
        raise ExtractionError(url, "no_text", f"{len(text)} characters < {min_chars}")

    if need_metadata and page_date is None:
        page_date = _first_plausible([document.date], fetched_at, rejected)
    published, published_raw, published_source = _pick_published(page_date, feed_date, fetched_at)
    modified = _first_plausible(
        [*(head.meta.get(key) for key in _MODIFIED_META), *head.ld_modified], fetched_at, []
    )

    authors = _split_authors(
        [*head.ld_authors, head.meta.get("author"), head.meta.get("article:author")]
    ) or _split_authors([document.author])
    return ExtractedArticle(
        url=url.strip(),
        canonical_url=canonical_url,
        title=_title(title, document, head, text),
        text=text,
        description=_clean(
            _first_meta(head, "og:description", "description", "twitter:description")
            or document.description
        ),
        authors=authors,
        published=published,
        published_raw=published_raw,
        published_source=published_source,
        updated=modified.value if modified is not None else None,
        # not trafilatura's sitename: it falls back to the host of whatever rel=canonical says
        site_name=_clean(
            _first_meta(head, "og:site_name", "application-name")
            or next(iter(head.ld_site_names), None)
        ),
        lead_image=_lead_image(head, document, base),
        language_hint=_language_hint(head, content_language),
        encoding=page.encoding,
        mojibake_repaired=page.mojibake_repaired,
        rejected_dates=tuple(rejected),
    )


def _load_page(
    body: bytes, url: str, content_type: str | None, max_elements: int
) -> tuple[DecodedPage, Any]:
    """The decoded page and its parsed tree; ExtractionError when it is not HTML or too big."""
    if not body.strip():
        raise ExtractionError(url, "no_text", "empty body")
    _reject_non_html_bytes(body, url, content_type)
    page = decode_html(body, content_type)
    _reject_non_html_text(page.text, url)
    tree = trafilatura.load_html(page.text)
    if tree is None:
        raise ExtractionError(url, "not_html", "unparseable markup")
    # Counted before the heavy work: lxml's count takes milliseconds where trafilatura on the
    # same tree takes minutes.
    elements = int(tree.xpath("count(//*)"))
    if elements > max_elements:
        raise ExtractionError(url, "oversize", f"{elements} HTML elements > {max_elements}")
    return page, tree


def _title(feed_title: str | None, document: Document, head: _Head, text: str) -> str:
    """The feed's title, else the page's (extractor, social tags, <title>), else the text's."""
    return (
        feed_title
        or _clean(document.title)
        or _clean(_first_meta(head, "og:title", "twitter:title"))
        or _clean(head.title)
        or _fallback_title(text)
    )


def _language_hint(head: _Head, content_language: str | None) -> str | None:
    """The language the page declares: <html lang>, og:locale, then the Content-Language."""
    return (
        normalise_language(head.html_lang)
        or normalise_language(head.meta.get("og:locale"))
        or normalise_language(head.meta.get("content-language"))
        or normalise_language(content_language)
    )


def _lead_image(head: _Head, document: Document, base: str) -> str | None:
    """The page's image (social tags, else the extractor's), as an absolute http(s) URL."""
    image = _first_meta(
        head,
        "og:image",
        "og:image:url",
        "og:image:secure_url",
        "twitter:image",
        "twitter:image:src",
    )
    return absolute_http(image or document.image or "", base)
