"""A generated loopback news site for the scale test: thousands of pages, in two waves.

Eleven outlets in en, ru, uk, fr and de, each with its own RSS or Atom feed (two also with a
news sitemap). Every event is reported first by one outlet (the original); some are
syndicated word for word or lightly edited by another outlet of its language (exact and near
copies), others are reported again, in other words and often in another language, by other
outlets (stories of several sources). A share of the events is about what the shipped rules of
config/alerts.yaml follow (NATO enlargement, energy sanctions, election results).

Everything comes from one seed: a seed and a page count always give the same site. The pages
are written to a directory and served by the demo site's server (devtools.demosite: ETag,
Last-Modified, conditional GET). The feeds first list the older half of each outlet's items;
``publish_all()`` (or SIGUSR1 to ``python -m devtools.scalesite``) lists all of them.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Literal

import yaml

from devtools.demosite import PLACEHOLDER, DemoSite
from devtools.foreground import stop_on_signals, wait_for_interrupt
from pipeline.errors import NewsradarError
from pipeline.settings import Source

__all__ = [
    "OUTLETS",
    "Event",
    "Outlet",
    "ScalePage",
    "ScaleSite",
    "article_text",
    "main",
    "plan_site",
    "render_page",
]

Kind = Literal["original", "exact_copy", "edited_copy", "report"]

DEFAULT_SEED: Final = 2026
# A fixed week, not the clock: the same seed gives the same site on any day.
START: Final = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SPAN_HOURS: Final = 96.0
# The first wave: what was published before the middle of the span.
CUTOFF: Final = START + timedelta(hours=SPAN_HOURS / 2)
# How often an event is about a topic a shipped rule follows, and how often it is told again.
TOPIC_WEIGHTS: Final = {"nato": 3, "sanctions": 3, "elections": 3, "floods": 45, "economy": 46}
# The sentences, names and page chrome of every language (see the file's header).
TEXT: Final[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).resolve().parent / "data" / "scalesite.yaml").read_text(encoding="utf-8")
)
_BASE: Final = PLACEHOLDER.decode("ascii")  # the server writes its own address in its place


@dataclass(frozen=True, slots=True)
class Outlet:
    """One source of the site: its feed format and whether it has a news sitemap."""

    id: str
    name: str
    language: str
    country: str
    feed_format: Literal["rss", "atom"]
    sitemap: bool = False

    @property
    def feed_path(self) -> str:
        """The site path of the outlet's feed."""
        return f"/{self.id}/{'rss' if self.feed_format == 'rss' else 'atom'}.xml"


OUTLETS: Final = (
    Outlet("harbour-wire", "Harbour Wire", "en", "GB", "rss", sitemap=True),
    Outlet("northgate-herald", "The Northgate Herald", "en", "GB", "atom"),
    Outlet("lakeside-post", "The Lakeside Post", "en", "US", "rss"),
    Outlet("nevsky-vestnik", "Невский вестник", "ru", "RU", "rss"),
    Outlet("volzhskaya-gazeta", "Волжская газета", "ru", "RU", "atom"),
    Outlet("dnipro-daily", "Дніпровський щоденник", "uk", "UA", "rss", sitemap=True),
    Outlet("lvivska-hazeta", "Львівська газета", "uk", "UA", "rss"),
    Outlet("echo-de-loire", "L'Écho de Loire", "fr", "FR", "atom"),
    Outlet("courrier-du-rhone", "Le Courrier du Rhône", "fr", "FR", "rss"),
    Outlet("rhein-kurier", "Rhein-Kurier", "de", "DE", "rss"),
    Outlet("elbe-zeitung", "Elbe-Zeitung", "de", "DE", "atom"),
)
_BY_ID: Final = {outlet.id: outlet for outlet in OUTLETS}


@dataclass(frozen=True, slots=True)
class Event:
    """What every report of one event says: who, where, when, how many."""

    number: int
    topic: str
    people: tuple[tuple[str, str, str], tuple[str, str, str]]  # (Latin, Russian, Ukrainian)
    place: tuple[str, str]  # (Latin, Cyrillic)
    day: date
    figures: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ScalePage:
    """The truth about one article page: its outlet, event, kind, and when it is published."""

    path: str
    source: str
    language: str
    topic: str
    event: int
    kind: Kind
    of: str | None  # the page a copy copies
    published: datetime
    wave: int  # 1: in the feeds from the start; 2: after publish_all()
    variant: int  # which wording of the event (reports draw their own)


def _name(
    rng: random.Random, endings: Sequence[Sequence[str]], syllables: int = 2
) -> tuple[str, str]:
    """A name in Latin and Cyrillic letters, from ``syllables`` or one more, and an ending."""
    # Enough syllables that two people rarely share a name's consonant skeleton: a name shared
    # by chance is evidence of one event for the story stage.
    parts = [rng.choice(TEXT["syllables"]) for _ in range(rng.randint(syllables, syllables + 1))]
    parts.append(rng.choice(endings))
    return "".join(p[0] for p in parts).capitalize(), "".join(p[1] for p in parts).capitalize()


def _person(rng: random.Random) -> tuple[str, str, str]:
    first_latin, first_cyrillic = _name(rng, TEXT["first_name_endings"], syllables=3)
    last_latin, last_cyrillic = _name(rng, TEXT["surname_endings"], syllables=3)
    cyrillic = f"{first_cyrillic} {last_cyrillic}"
    return f"{first_latin} {last_latin}", cyrillic, cyrillic


def _event(number: int, rng: random.Random, day: date) -> Event:
    topics = list(TOPIC_WEIGHTS)
    (topic,) = rng.choices(topics, weights=[TOPIC_WEIGHTS[t] for t in topics])
    return Event(
        number=number,
        topic=topic,
        people=(_person(rng), _person(rng)),
        place=_name(rng, TEXT["place_endings"], syllables=3),
        day=day,
        figures=(rng.randrange(120, 98_000), rng.randrange(12, 9_000)),
    )


def plan_site(pages: int = 2000, seed: int = DEFAULT_SEED) -> tuple[list[ScalePage], list[Event]]:
    """The site's article pages (exactly ``pages``, by path) and the events they report."""
    rng = random.Random(seed)
    planned: list[ScalePage] = []
    events: list[Event] = []
    while len(planned) < pages:
        published = START + timedelta(hours=rng.uniform(0, SPAN_HOURS - 12))
        event = _event(len(events), rng, published.date())
        events.append(event)
        planned.extend(_event_pages(event, published, rng))
    planned = _own_seconds(planned[:pages])
    return sorted(planned, key=lambda p: p.path), events


def _own_seconds(pages: Sequence[ScalePage]) -> list[ScalePage]:
    """The pages with no two published in the same second (the later path moves a second or two).

    Two reports of one second are ordered by when they were fetched, which differs between two
    runs over the site; with a second each, every run orders them alike.
    """
    taken: set[datetime] = set()
    placed: list[ScalePage] = []
    for page in sorted(pages, key=lambda p: (p.published, p.path)):
        published = page.published
        for shift in (0, 1, -1, 2, -2, 3, -3):
            published = page.published + timedelta(seconds=shift)
            if published not in taken and published.date() == page.published.date():
                break
        taken.add(published)
        placed.append(replace(page, published=published, wave=1 if published < CUTOFF else 2))
    return placed


def _event_pages(event: Event, published: datetime, rng: random.Random) -> list[ScalePage]:
    """The original report of ``event``, then its copies and the other outlets' reports."""
    home = rng.choice(OUTLETS)
    original = _page(event, home, published, "original", None, 0)
    found = [original]
    same_language = [o for o in OUTLETS if o.language == home.language and o != home]
    followed = event.topic in {"nato", "sanctions", "elections"}
    if rng.random() < 0.15:
        outlet = rng.choice(same_language)
        later = published + timedelta(minutes=rng.uniform(20, 360))
        found.append(_page(event, outlet, later, "exact_copy", original.path, 0))
    if rng.random() < 0.15:
        outlet = rng.choice(same_language)
        later = published + timedelta(minutes=rng.uniform(20, 360))
        found.append(_page(event, outlet, later, "edited_copy", original.path, 0))
    reports = rng.choice((1, 2, 3)) if followed or rng.random() < 0.2 else 0
    others = [o for o in OUTLETS if o != home]
    for variant, outlet in enumerate(rng.sample(others, reports), start=1):
        later = published + timedelta(minutes=rng.uniform(30, 600))
        found.append(_page(event, outlet, later, "report", None, variant))
    return found


def _page(
    event: Event, outlet: Outlet, published: datetime, kind: Kind, of: str | None, variant: int
) -> ScalePage:
    # Whole seconds: feeds carry no fractions, and the page's date must say what its feed says.
    published = published.replace(microsecond=0)
    name = f"{event.topic}-{event.number:05d}-{kind.replace('_', '-')}{variant or ''}"
    path = f"/{outlet.id}/{published:%Y/%m/%d}/{name}.html"
    wave = 1 if published < CUTOFF else 2
    return ScalePage(
        path, outlet.id, outlet.language, event.topic, event.number, kind, of, published, wave,
        variant,
    )  # fmt: skip


def _figure(value: int, language: str) -> str:
    return f"{value:,}".replace(",", TEXT["thousands"][language])


def _day(day: date, language: str) -> str:
    month = TEXT["months"][language][day.month - 1]
    return str(TEXT["date_formats"][language]).format(d=day.day, m=month)


def write_report(event: Event, language: str, variant: int) -> tuple[str, list[str]]:
    """(title, paragraphs) of one report of ``event``: each variant is worded on its own."""
    rng = random.Random(f"{event.number}:{variant}:{language}")
    index = {"en": 0, "fr": 0, "de": 0, "ru": 1, "uk": 2}[language]
    slots = {
        "person": event.people[0][index],
        "person2": event.people[1][index],
        "place": event.place[1 if index else 0],
        "date": _day(event.day, language),
        "n": _figure(event.figures[0], language),
        "m": _figure(event.figures[1], language),
    }
    title = rng.choice(TEXT["titles"][language][event.topic]).format(**slots)
    lead = rng.choice(TEXT["leads"][language][event.topic]).format(**slots)
    body = [s.format(**slots) for s in rng.sample(TEXT["body"][language][event.topic], 3)]
    voices = [_voice(frame, language, rng) for frame in rng.sample(TEXT["voices"][language], 3)]
    closing = rng.choice(TEXT["generic"][language])
    sentences = [body[0], voices[0], body[1], voices[1], body[2], voices[2], closing]
    paragraphs = [lead] + [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    return title, paragraphs


def _voice(frame: str, language: str, rng: random.Random) -> str:
    """A sentence of someone the reporter met: a name and a place of its own."""
    person = _person(rng)
    place = _name(rng, TEXT["place_endings"], syllables=3)
    cyrillic = language in {"ru", "uk"}
    return frame.format(
        voice=person[1] if cyrillic else person[0],
        role=rng.choice(TEXT["roles"][language]),
        place2=place[1] if cyrillic else place[0],
    )


def _edited(paragraphs: list[str], source: Outlet, page: ScalePage) -> list[str]:
    """A lightly edited copy: one paragraph's sentences swapped, the credit line added."""
    rng = random.Random(page.path)
    edited = list(paragraphs)
    at = rng.randrange(1, len(edited))
    edited[at] = " ".join(reversed(edited[at].split(". ")))
    return [*edited[:-1], TEXT["credit"][page.language].format(source=source.name)]


def article_text(page: ScalePage, events: Sequence[Event]) -> tuple[str, list[str]]:
    """The title and paragraphs of a page's article as its outlet prints them."""
    event = events[page.event]
    if page.kind == "report":
        return write_report(event, page.language, page.variant)
    title, paragraphs = write_report(event, page.language, 0)
    if page.kind == "edited_copy" and page.of is not None:
        home = _BY_ID[page.of.split("/")[1]]
        return title, _edited(paragraphs, home, page)
    return title, paragraphs


def render_page(page: ScalePage, events: Sequence[Event], most_read: Sequence[ScalePage]) -> str:
    """The page's HTML: the article in its outlet's chrome (several KB of it, as real pages)."""
    outlet = _BY_ID[page.source]
    chrome = TEXT["chrome"][page.language]
    title, paragraphs = article_text(page, events)
    sections = chrome["sections"].split("|")
    nav = "".join(f'<li><a href="/{outlet.id}/{s.lower()}/">{escape(s)}</a></li>' for s in sections)
    aside = "".join(
        f'<li><a href="{p.path}">{escape(article_text(p, events)[0])}</a></li>' for p in most_read
    )
    legal = " · ".join(f'<a href="/{outlet.id}/about/{i}">{escape(s)}</a>'
                       for i, s in enumerate(chrome["legal"].split("|")))  # fmt: skip
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    # The outlet's regional pages: the same list on each of its pages, as a site's menu is.
    regions = "".join(
        f'<li><a href="/{outlet.id}/region/{latin.lower()}/">{escape(name)}</a></li>'
        for latin, name in _regions(outlet)
    )
    stamp = page.published.isoformat()
    name = escape(outlet.name)
    return f"""<!DOCTYPE html>
<html lang="{page.language}"><head><meta charset="utf-8">
<title>{escape(title)} | {name}</title>
<link rel="canonical" href="{_BASE}{page.path}">
<meta property="og:title" content="{escape(title)}">
<meta property="og:site_name" content="{name}">
<meta property="article:published_time" content="{stamp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:Georgia,serif;margin:0}}header,footer{{background:#f4f4f4;padding:1em}}
nav ul{{list-style:none;display:flex;gap:1em}}article{{max-width:40em;margin:2em auto}}
aside{{float:right;width:18em}}.cookie{{position:fixed;bottom:0;background:#333;color:#fff}}</style>
</head><body>
<div class="cookie"><p>{escape(chrome["cookies"])}</p><button>OK</button></div>
<header><a class="logo" href="/{outlet.id}/">{name}</a><nav><ul>{nav}</ul></nav>
<form action="/{outlet.id}/search"><input name="q"><button>Search</button></form></header>
<aside><h2>{escape(chrome["most_read"])}</h2><ol>{aside}</ol>
<p class="newsletter">{escape(chrome["newsletter"])}</p></aside>
<article><h1>{escape(title)}</h1>
<p class="byline"><time datetime="{stamp}">{stamp}</time> · {name}</p>
{body}
</article>
<footer><nav><ul>{nav}</ul></nav><nav class="regions"><ul>{regions}</ul></nav>
<p class="newsletter">{escape(chrome["newsletter"])}</p><p>{legal}</p>
<p>© {page.published:%Y} {name}. {escape(chrome["rights"])}</p></footer>
</body></html>
"""


def _regions(outlet: Outlet) -> list[tuple[str, str]]:
    """Forty place names of the outlet's region, (Latin, as its language writes it)."""
    rng = random.Random(outlet.id)
    places = [_name(rng, TEXT["place_endings"]) for _ in range(40)]
    return [
        (latin, cyrillic if outlet.language in {"ru", "uk"} else latin)
        for latin, cyrillic in places
    ]


def feed(outlet: Outlet, pages: Sequence[ScalePage], events: Sequence[Event]) -> str:
    """The outlet's RSS or Atom feed over ``pages`` (its own), newest first."""
    items = sorted(pages, key=lambda p: p.published, reverse=True)
    name = escape(outlet.name)
    if outlet.feed_format == "rss":
        entries = "\n".join(
            f"<item><title>{escape(article_text(p, events)[0])}</title>"
            f'<link>{_BASE}{p.path}</link><guid isPermaLink="true">{_BASE}{p.path}</guid>'
            f"<pubDate>{format_datetime(p.published)}</pubDate></item>"
            for p in items
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            f"<title>{name}</title><link>{_BASE}/{outlet.id}/</link>"
            f"<description>{name}</description><language>{outlet.language}</language>\n"
            f"{entries}\n</channel></rss>\n"
        )
    updated = (items[0].published if items else START).isoformat()
    entries = "\n".join(
        f"<entry><title>{escape(article_text(p, events)[0])}</title>"
        f'<link rel="alternate" href="{_BASE}{p.path}"/><id>{_BASE}{p.path}</id>'
        f"<updated>{p.published.isoformat()}</updated>"
        f"<published>{p.published.isoformat()}</published></entry>"
        for p in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        f'xml:lang="{outlet.language}"><title>{name}</title><id>{_BASE}/{outlet.id}/</id>'
        f'<link rel="alternate" href="{_BASE}/{outlet.id}/"/><updated>{updated}</updated>\n'
        f"{entries}\n</feed>\n"
    )


def news_sitemap(outlet: Outlet, pages: Sequence[ScalePage], events: Sequence[Event]) -> str:
    """The outlet's news sitemap over ``pages``."""
    urls = "\n".join(
        f"<url><loc>{_BASE}{p.path}</loc><news:news><news:publication>"
        f"<news:name>{escape(outlet.name)}</news:name><news:language>{p.language}"
        f"</news:language></news:publication><news:publication_date>{p.published.isoformat()}"
        f"</news:publication_date><news:title>{escape(article_text(p, events)[0])}"
        "</news:title></news:news></url>"
        for p in sorted(pages, key=lambda p: p.published, reverse=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
        f"{urls}\n</urlset>\n"
    )


class ScaleSite:
    """The generated site on 127.0.0.1; a context manager, like DemoSite."""

    def __init__(
        self,
        pages: int = 2000,
        seed: int = DEFAULT_SEED,
        port: int = 0,
        root: Path | None = None,
    ) -> None:
        self.pages, self.events = plan_site(pages, seed)
        self.seed = seed
        self._own_root = root is None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.root = root or Path()
        self._port = port
        self._server: DemoSite | None = None
        self.published_all = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._server is None:
            raise NewsradarError("the scale site is not running; use it inside a with block")
        return self._server.base_url

    def url(self, path: str) -> str:
        """The absolute URL of a site path."""
        return self.base_url + path

    def visible(self) -> list[ScalePage]:
        """The pages the feeds list now: the first wave, or every page after publish_all()."""
        return [p for p in self.pages if self.published_all or p.wave == 1]

    def sources(self, *, sitemaps: bool = False) -> tuple[Source, ...]:
        """The site's outlets as configured sources (with their news sitemaps if asked)."""
        return tuple(
            Source(
                id=o.id,
                name=o.name,
                feeds=(self.url(o.feed_path),),
                sitemaps=(self.url(f"/{o.id}/sitemap-news.xml"),) if sitemaps and o.sitemap else (),
                language=o.language,
                country=o.country,
            )
            for o in OUTLETS
        )

    def write_config(self, folder: Path, alerts: Path, *, digest: str = "30s") -> Path:
        """``sources.yaml`` naming this site, and the rules of ``alerts`` with ``digest`` each."""
        folder.mkdir(parents=True, exist_ok=True)
        listed = [s.model_dump(mode="json", exclude_none=True) for s in self.sources()]
        (folder / "sources.yaml").write_text(
            yaml.safe_dump({"sources": listed}, allow_unicode=True), encoding="utf-8"
        )
        rules = yaml.safe_load(alerts.read_text(encoding="utf-8"))
        for rule in rules["alerts"]:
            rule["digest"] = digest  # a digest per cycle, not one per quarter of an hour
        (folder / "alerts.yaml").write_text(
            yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        return folder

    def start(self) -> ScaleSite:
        """Write the site and serve it; returns self."""
        if self._server is not None:
            return self
        if self._own_root:
            self._tmp = tempfile.TemporaryDirectory(prefix="newsradar-scalesite-")
            self.root = Path(self._tmp.name)
        self._write_pages()
        self._write_listings()
        self._server = DemoSite(port=self._port, root=self.root).start()
        return self

    def publish_all(self) -> None:
        """The second wave: every feed and sitemap lists every page of its outlet."""
        self.published_all = True
        if self._server is not None:
            self._write_listings()

    def stop(self) -> None:
        """Stop serving and remove the written site (unless its folder was given)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ScaleSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_pages(self) -> None:
        by_source: dict[str, list[ScalePage]] = {}
        for page in sorted(self.pages, key=lambda p: p.published):
            by_source.setdefault(page.source, []).append(page)
        for pages in by_source.values():
            for number, page in enumerate(pages):
                target = self.root / page.path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                most_read = pages[max(0, number - 8) : number]  # what was out before it
                target.write_text(render_page(page, self.events, most_read), encoding="utf-8")
        (self.root / "robots.txt").write_text("User-agent: *\nDisallow: /search\n")
        catalog = [asdict(p) | {"published": p.published.isoformat()} for p in self.pages]
        (self.root / ".catalog.json").write_text(json.dumps(catalog), encoding="utf-8")

    def _write_listings(self) -> None:
        visible = self.visible()
        for outlet in OUTLETS:
            own = [p for p in visible if p.source == outlet.id]
            # Write then rename, so a client never reads half a feed.
            self._replace(outlet.feed_path, feed(outlet, own, self.events))
            if outlet.sitemap:
                self._replace(
                    f"/{outlet.id}/sitemap-news.xml", news_sitemap(outlet, own, self.events)
                )

    def _replace(self, path: str, body: str) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name("." + target.name + ".partial")
        partial.write_text(body, encoding="utf-8")
        partial.replace(target)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devtools.scalesite --port N --pages 2000``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.scalesite", description="Serve the scale test's news site."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--pages", type=int, default=2000, help="article pages")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--all", action="store_true", help="list both waves from the start")
    args = parser.parse_args(argv)
    stop_on_signals()
    try:
        with ScaleSite(pages=args.pages, seed=args.seed, port=args.port) as site:
            if args.all:
                site.publish_all()

            def second_wave(signum: int, frame: FrameType | None) -> None:
                site.publish_all()
                print("Published the second wave.", flush=True)

            signal.signal(signal.SIGUSR1, second_wave)
            print(f"Serving {len(site.pages)} pages at {site.base_url}/", flush=True)
            for outlet in OUTLETS:
                print(f"  {outlet.id:<20} {outlet.language} {site.url(outlet.feed_path)}")
            print("kill -USR1 to publish the second wave; Ctrl-C to stop.", flush=True)
            wait_for_interrupt()
    except NewsradarError as exc:
        print(f"scalesite: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
