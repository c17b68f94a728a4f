"""A loopback news site made of real pages: the corpus' originals and their syndicated copies.

Each original (a folder of ../shared/corpus/readability-pages) appears once at its home outlet
and then, as wire stories do, at other outlets and editions: the same page in another outlet's
chrome (header, navigation, footer, title suffix, its own canonical URL), some with a small
edit on top: a reworded paragraph, a syndication credit with "read more" links, or the last
paragraph cut. Ten outlets, four editions each, one RSS feed per outlet. Everything is drawn
from one seed, so a seed always gives the same site.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from html import escape, unescape
from pathlib import Path
from typing import Final

from bench_extract import corpus_pages

OUTLETS: Final = (
    "courier",
    "herald",
    "gazette",
    "tribune",
    "observer",
    "chronicle",
    "dispatch",
    "ledger",
    "sentinel",
    "monitor",
)
EDITIONS: Final = ("north", "south", "east", "west")
SECTIONS: Final = ("world", "politics", "business", "technology", "science", "culture")
# How a copy differs from its original besides the chrome, with the share of copies.
EDITS: Final = (("chrome", 0.3), ("reworded", 0.3), ("credited", 0.2), ("trimmed", 0.2))

_CANONICAL = re.compile(r"<link\b[^>]*\bcanonical\b[^>]*>|<meta\b[^>]*\bog:url\b[^>]*>", re.I)
_HEAD = re.compile(r"<head\b[^>]*>", re.I)
_BODY = re.compile(r"<body\b[^>]*>", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)
_TITLE = re.compile(r"(<title\b[^>]*>)(.*?)(</title\s*>)", re.I | re.S)
_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Original:
    """One corpus page: its HTML (canonical and og:url declarations removed) and metadata."""

    name: str
    html: str
    title: str
    language: str | None
    paragraphs: tuple[tuple[int, int], ...]  # spans of <p> elements with a sentence or more


@dataclass(frozen=True)
class SitePage:
    """One URL of the site: which original it shows, where, how edited, and when published."""

    path: str
    outlet: str
    edition: str
    original: str
    edit: str  # "original" or one of EDITS
    published: datetime
    title: str


def load_originals(folder: Path) -> list[Original]:
    """The corpus' pages; bench_extract.CorpusMissing when the folder has none."""
    originals = []
    for page in corpus_pages(folder):
        # surrogateescape: a byte that is not UTF-8 goes back out as it came in.
        html = (page / "source.html").read_bytes().decode("utf-8", "surrogateescape")
        html = _CANONICAL.sub("", html)
        metadata = json.loads((page / "expected-metadata.json").read_text(encoding="utf-8"))
        paragraphs = tuple(
            m.span()
            for m in _PARAGRAPH.finditer(html)
            if len(_TAG.sub("", m.group(1)).strip()) >= 80
        )
        title = str(metadata.get("title") or page.name)
        originals.append(Original(page.name, html, title, metadata.get("lang"), paragraphs))
    return originals


def plan_site(originals: list[Original], total: int, seed: int, now: datetime) -> list[SitePage]:
    """``total`` pages (at least the originals): each original, then copies round-robin."""
    rng = random.Random(seed)
    slots = [(outlet, edition) for outlet in OUTLETS for edition in EDITIONS]
    pages: list[SitePage] = []
    first: list[tuple[int, datetime]] = []
    for number, original in enumerate(originals):
        home = (number * 7) % len(slots)
        published = now - timedelta(hours=rng.uniform(2, 46))
        first.append((home, published))
        pages.append(_page(original, slots[home], published, "original", 0, rng))
    rounds = math.ceil(max(0, total - len(originals)) / max(1, len(originals)))
    for copy in range(1, rounds + 1):
        for number, original in enumerate(originals):
            if len(pages) >= total:
                break
            home, published = first[number]
            later = min(published + timedelta(minutes=rng.uniform(5, 360)), now)
            edit = rng.choices([e for e, _ in EDITS], [w for _, w in EDITS])[0]
            slot = slots[(home + copy) % len(slots)]
            pages.append(_page(original, slot, later, edit, copy, rng))
    return pages


def _page(
    original: Original,
    slot: tuple[str, str],
    published: datetime,
    edit: str,
    copy: int,
    rng: random.Random,
) -> SitePage:
    outlet, edition = slot
    section = rng.choice(SECTIONS)
    path = f"/{outlet}/{edition}/{section}/{published:%Y/%m/%d}/{original.name}-{copy}.html"
    return SitePage(path, outlet, edition, original.name, edit, published, original.title)


def render(page: SitePage, original: Original, seed: int) -> bytes:
    """The page's HTML: the original as it is, or a copy in its outlet's chrome, edited."""
    html = original.html
    if page.edit != "original":
        rng = random.Random(f"{seed}:{page.path}")
        html = _edited(original, page, rng)
        html = _TITLE.sub(
            lambda m: f"{m.group(1)}{m.group(2)} | The {page.outlet.title()}{m.group(3)}",
            html,
            count=1,
        )
        html = _wrapped(html, page, rng)
    canonical = f'<link rel="canonical" href="{page.path}">'
    head = _HEAD.search(html)
    at = head.end() if head else 0
    html = html[:at] + canonical + html[at:]
    return html.encode("utf-8", "surrogateescape")


def _edited(original: Original, page: SitePage, rng: random.Random) -> str:
    """The original's HTML with the page's edit made in its article paragraphs."""
    html, spans = original.html, original.paragraphs
    if page.edit == "chrome" or not spans:
        return html
    if page.edit == "trimmed":
        start, end = spans[-1]
        return html[:start] + html[end:]
    if page.edit == "credited":
        end = spans[-1][1]
        outlet = page.outlet.title()
        links = "".join(
            f'<li><a href="/{page.outlet}/{page.edition}/{s}/">More {s} from The {outlet}</a></li>'
            for s in rng.sample(SECTIONS, 3)
        )
        credit = (
            f"<p>This story first appeared with our partners and is republished by The {outlet} "
            f"({page.edition} edition) under a syndication agreement.</p>"
            f'<div class="read-more"><h3>Read more</h3><ul>{links}</ul></div>'
        )
        return html[:end] + credit + html[end:]
    start, end = rng.choice(spans)  # reworded
    return html[:start] + f"<p>{escape(_reworded(html[start:end], rng))}</p>" + html[end:]


def _reworded(paragraph: str, rng: random.Random) -> str:
    """The paragraph's text with about a quarter of its words swapped for others of it."""
    text = unescape(" ".join(_TAG.sub(" ", paragraph).split()))
    words = text.split(" ")
    if len(words) < 8:  # a script without spaces: swap its halves
        return text[len(text) // 2 :] + text[: len(text) // 2]
    edited = [rng.choice(words) if rng.random() < 0.25 else word for word in words]
    return " ".join(edited) + " (Updated with local reaction.)"


def _wrapped(html: str, page: SitePage, rng: random.Random) -> str:
    """The outlet's chrome around the page's body: a header with navigation, and a footer."""
    outlet = page.outlet.title()
    menu = "".join(
        f'<li><a href="/{page.outlet}/{page.edition}/{s}/">{s.title()}</a></li>' for s in SECTIONS
    )
    editions = " · ".join(
        f'<a href="/{page.outlet}/{e}/">{e.title()}</a>' for e in EDITIONS if e != page.edition
    )
    header = (
        f'<div class="outlet-bar">The {outlet} · {page.edition.title()} edition · {editions}'
        f'</div><header class="outlet"><a href="/{page.outlet}/">The {outlet}</a>'
        f"<nav><ul>{menu}</ul></nav></header>"
    )
    trending = "".join(
        f'<li><a href="/{page.outlet}/{page.edition}/{rng.choice(SECTIONS)}/'
        f'{rng.randrange(10**6)}.html">Trending story {rng.randrange(10**4)}</a></li>'
        for _ in range(8)
    )
    footer = (
        f'<aside class="outlet-trending"><h2>Trending</h2><ol>{trending}</ol></aside>'
        f'<footer class="outlet"><ul>{menu}</ul><p>© {page.published:%Y} The {outlet}. '
        "All rights reserved. Imprint · Privacy · Contact</p></footer>"
    )
    body = _BODY.search(html)
    at = body.end() if body else 0
    html = html[:at] + header + html[at:]
    end = max((m.start() for m in _BODY_END.finditer(html)), default=len(html))
    return html[:end] + footer + html[end:]


def feed(outlet: str, pages: list[SitePage], base: str) -> bytes:
    """The outlet's RSS feed: every page of its editions, newest first."""
    items = "\n".join(
        f"<item><title>{escape(p.title)}</title><link>{base}{p.path}</link>"
        f'<guid isPermaLink="true">{base}{p.path}</guid>'
        f"<pubDate>{format_datetime(p.published)}</pubDate></item>"
        for p in sorted(pages, key=lambda p: p.published, reverse=True)
        if p.outlet == outlet
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>The {outlet.title()}</title><link>{base}/{outlet}/</link>"
        f"<description>The {outlet.title()}</description>\n{items}\n</channel></rss>\n"
    ).encode()


def build_site(
    originals: list[Original], pages: list[SitePage], seed: int, base: str
) -> dict[str, bytes]:
    """Path -> body for every page, feed and robots.txt."""
    by_name = {original.name: original for original in originals}
    files = {page.path: render(page, by_name[page.original], seed) for page in pages}
    for outlet in OUTLETS:
        files[f"/{outlet}/rss.xml"] = feed(outlet, pages, base)
    files["/robots.txt"] = b"User-agent: *\nDisallow: /private/\n"
    return files
