"""Benchmark extract_article on generated multilingual news pages, pinned to one core.

Also the extraction's quality on real pages, when the corpus is there: token F1 of our text
against each page's reference text in ../shared/corpus/readability-pages (``--corpus DIR``).
"""

# Cyrillic sentence templates are the point of this file, not look-alike characters.
# ruff: noqa: RUF001

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import lxml.html
import trafilatura

from pipeline.errors import ExtractionError
from pipeline.normalise.extract import extract_article

REPO = Path(__file__).resolve().parents[1]
# Beside the repository, as the project's machines lay it out; a clone elsewhere has none.
CORPUS = REPO.parent / "shared" / "corpus" / "readability-pages"

# Sentence templates per language: {who} {did} {what} {when}. Written for this benchmark.
LANGUAGES: dict[str, dict[str, list[str]]] = {
    "en": {
        "who": [
            "The city council",
            "The transport minister",
            "A group of residents",
            "The regional health authority",
            "Union representatives",
            "The opposition leader",
            "Local shop owners",
            "The university's rector",
        ],
        "did": [
            "announced",
            "rejected",
            "called for",
            "criticised",
            "welcomed",
            "postponed a decision on",
            "published details of",
            "asked for more time to review",
        ],
        "what": [
            "a plan to rebuild the old harbour",
            "new rules for night buses",
            "the budget for school repairs",
            "a proposal to close the river crossing to cars",
            "higher fees for parking permits",
            "an inquiry into delays at the hospital",
            "the merger of two fire stations",
            "a pilot scheme for free school meals",
        ],
        "when": [
            "on Tuesday",
            "late on Friday evening",
            "after a long debate",
            "during a press conference",
            "earlier this week",
            "following months of talks",
        ],
        "extra": [
            "Officials said the first results would be known before the summer.",
            "Critics argue that the costs have been underestimated from the start.",
            "A final vote is expected at the next session of the assembly.",
            "Several neighbourhoods have already organised public meetings.",
            "The figures will be reviewed by an independent auditor.",
        ],
    },
    "de": {
        "who": [
            "Der Stadtrat",
            "Die Verkehrsministerin",
            "Eine Gruppe von Anwohnern",
            "Die Gewerkschaft",
            "Der Oppositionsführer",
            "Die Handelskammer",
            "Der Bürgermeister",
        ],
        "did": [
            "kündigte",
            "kritisierte",
            "begrüßte",
            "verschob",
            "veröffentlichte",
            "forderte",
        ],
        "what": [
            "den Plan für den Umbau des alten Hafens",
            "neue Regeln für den Nachtverkehr",
            "das Budget für die Sanierung der Schulen",
            "höhere Gebühren für Anwohnerparkausweise",
            "die Zusammenlegung zweier Feuerwachen",
            "ein Pilotprojekt für kostenloses Schulessen",
        ],
        "when": [
            "am Dienstag",
            "am späten Freitagabend",
            "nach einer langen Debatte",
            "auf einer Pressekonferenz",
            "nach monatelangen Gesprächen",
        ],
        "extra": [
            "Erste Ergebnisse sollen noch vor dem Sommer vorliegen.",
            "Kritiker halten die Kosten für deutlich zu niedrig angesetzt.",
            "Die endgültige Abstimmung ist für die nächste Sitzung geplant.",
            "In mehreren Stadtteilen haben sich bereits Bürgerinitiativen gegründet.",
        ],
    },
    "fr": {
        "who": [
            "Le conseil municipal",
            "La ministre des Transports",
            "Un collectif d'habitants",
            "Les syndicats",
            "Le chef de l'opposition",
            "La chambre de commerce",
            "Le maire",
        ],
        "did": [
            "a annoncé",
            "a rejeté",
            "a critiqué",
            "a salué",
            "a reporté",
            "a présenté",
        ],
        "what": [
            "le projet de réaménagement du vieux port",
            "de nouvelles règles pour les bus de nuit",
            "le budget de rénovation des écoles",
            "la hausse du prix des vignettes de stationnement",
            "la fusion de deux casernes de pompiers",
            "une expérimentation de cantine gratuite",
        ],
        "when": [
            "mardi",
            "tard vendredi soir",
            "après un long débat",
            "lors d'une conférence de presse",
            "après des mois de négociations",
        ],
        "extra": [
            "Les premiers résultats devraient être connus avant l'été.",
            "Les critiques estiment que les coûts ont été sous-évalués dès le départ.",
            "Un vote définitif est attendu lors de la prochaine séance.",
            "Plusieurs quartiers ont déjà organisé des réunions publiques.",
        ],
    },
    "es": {
        "who": [
            "El ayuntamiento",
            "La ministra de Transportes",
            "Un grupo de vecinos",
            "Los sindicatos",
            "El líder de la oposición",
            "La cámara de comercio",
            "La alcaldesa",
        ],
        "did": [
            "anunció",
            "rechazó",
            "criticó",
            "celebró",
            "aplazó",
            "presentó",
        ],
        "what": [
            "el plan para reformar el antiguo puerto",
            "nuevas normas para los autobuses nocturnos",
            "el presupuesto para reparar las escuelas",
            "la subida de las tasas de aparcamiento",
            "la fusión de dos parques de bomberos",
            "un programa piloto de comedores gratuitos",
        ],
        "when": [
            "el martes",
            "el viernes por la noche",
            "tras un largo debate",
            "en una rueda de prensa",
            "después de meses de negociaciones",
        ],
        "extra": [
            "Los primeros resultados se conocerán antes del verano.",
            "Los críticos sostienen que los costes se subestimaron desde el principio.",
            "La votación final está prevista para la próxima sesión.",
            "Varios barrios ya han convocado asambleas públicas.",
        ],
    },
    "ru": {
        "who": [
            "Городской совет",
            "Министр транспорта",
            "Группа жителей",
            "Профсоюз",
            "Лидер оппозиции",
            "Торговая палата",
            "Мэр города",
        ],
        "did": [
            "объявил",
            "отклонил",
            "раскритиковал",
            "одобрил",
            "отложил",
            "представил",
        ],
        "what": [
            "план реконструкции старого порта",
            "новые правила для ночных автобусов",
            "бюджет на ремонт школ",
            "повышение платы за парковку",
            "объединение двух пожарных частей",
            "пилотный проект бесплатного школьного питания",
        ],
        "when": [
            "во вторник",
            "поздно вечером в пятницу",
            "после долгих дебатов",
            "на пресс-конференции",
            "после нескольких месяцев переговоров",
        ],
        "extra": [
            "Первые результаты ожидаются до начала лета.",
            "Критики считают, что расходы с самого начала были занижены.",
            "Окончательное голосование пройдёт на следующем заседании.",
            "В нескольких районах уже прошли собрания жителей.",
        ],
    },
    "uk": {
        "who": [
            "Міська рада",
            "Міністр транспорту",
            "Група мешканців",
            "Профспілка",
            "Лідер опозиції",
            "Торгова палата",
            "Міський голова",
        ],
        "did": [
            "оголосив",
            "відхилив",
            "розкритикував",
            "схвалив",
            "відклав",
            "представив",
        ],
        "what": [
            "план реконструкції старого порту",
            "нові правила для нічних автобусів",
            "бюджет на ремонт шкіл",
            "підвищення плати за паркування",
            "об'єднання двох пожежних частин",
            "пілотний проєкт безкоштовного шкільного харчування",
        ],
        "when": [
            "у вівторок",
            "пізно ввечері в п'ятницю",
            "після тривалих дебатів",
            "на пресконференції",
            "після кількох місяців переговорів",
        ],
        "extra": [
            "Перші результати очікують ще до літа.",
            "Критики вважають, що витрати від початку занизили.",
            "Остаточне голосування відбудеться на наступному засіданні.",
            "У кількох районах уже пройшли збори мешканців.",
        ],
    },
}

SECTIONS = ["city", "politics", "economy", "culture", "sport", "science", "world", "opinion"]
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Page:
    """One generated page and what a feed would have said about it."""

    url: str
    body: bytes
    title: str
    published: datetime
    language: str


def _sentence(rng: random.Random, words: dict[str, list[str]]) -> str:
    if rng.random() < 0.25:
        return rng.choice(words["extra"])
    parts = [rng.choice(words[k]) for k in ("who", "did", "what", "when")]
    if rng.random() < 0.5:
        parts = [parts[0], parts[3], parts[1], parts[2]]
    return " ".join(parts) + "."


def _boilerplate_links(rng: random.Random, words: dict[str, list[str]], n: int) -> str:
    items = []
    for i in range(n):
        title = f"{rng.choice(words['who'])} {rng.choice(words['did'])} {rng.choice(words['what'])}"
        href = f"/{rng.choice(SECTIONS)}/story-{rng.randrange(10**6)}-{i}"
        items.append(f'<li><a href="{href}">{title}</a></li>')
    return "\n".join(items)


def make_page(rng: random.Random, index: int) -> Page:
    """Generate one article page with site chrome around it."""
    lang = list(LANGUAGES)[index % len(LANGUAGES)]
    words = LANGUAGES[lang]
    section = rng.choice(SECTIONS)
    published = NOW - timedelta(minutes=rng.randrange(60 * 24 * 30))
    title = f"{rng.choice(words['who'])} {rng.choice(words['did'])} {rng.choice(words['what'])}"
    slug = f"{published:%Y/%m/%d}/story-{index}"
    url = f"https://www.news-{lang}.example.com/{section}/{slug}?utm_source=rss&utm_medium=feed"
    paragraphs = "\n".join(
        "<p>" + " ".join(_sentence(rng, words) for _ in range(rng.randint(2, 5))) + "</p>"
        for _ in range(rng.randint(4, 10))
    )
    menu = "".join(f'<li><a href="/{s}">{s.title()}</a></li>' for s in SECTIONS)
    script = "var cfg = {" + ",".join(f'"k{i}": {rng.random():.6f}' for i in range(400)) + "};"
    css = " ".join(f".c{i} {{ margin: {i % 7}px; color: #{i:06x}; }}" for i in range(200))
    date_meta = (
        f'<meta property="article:published_time" content="{published.isoformat()}">'
        if rng.random() < 0.7
        else ""
    )
    html = f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{title} | News {lang.upper()}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="canonical" href="/{section}/{slug}">
<meta property="og:title" content="{title}">
<meta property="og:site_name" content="News {lang.upper()}">
<meta property="og:image" content="/img/{index}.jpg">
{date_meta}
<style>{css}</style>
<script>{script}</script>
</head>
<body>
<div class="cookie-banner">We use cookies to improve the site. <button>Accept</button></div>
<header><a class="logo" href="/">News {lang.upper()}</a><nav><ul>{menu}</ul></nav>
<form action="/search"><input name="q"><button>Search</button></form></header>
<div class="breadcrumbs"><a href="/">Home</a> / <a href="/{section}">{section}</a></div>
<main>
<article>
<h1>{title}</h1>
<div class="byline">{published:%d.%m.%Y %H:%M}</div>
{paragraphs}
<div class="share"><a href="#">Facebook</a> <a href="#">X</a> <a href="#">Mail</a></div>
</article>
<aside class="related"><h2>Related</h2><ul>{_boilerplate_links(rng, words, 12)}</ul></aside>
</main>
<section class="most-read"><h2>Most read</h2><ol>{_boilerplate_links(rng, words, 8)}</ol></section>
<footer><ul>{menu}</ul><p>Imprint | Privacy | Contact | Advertise</p></footer>
</body>
</html>"""
    return Page(url=url, body=html.encode("utf-8"), title=title, published=published, language=lang)


def run(pages: list[Page], *, feed_gives_metadata: bool) -> tuple[int, int, float]:
    """Extract every page once; return (extracted, failed, seconds)."""
    ok = failed = 0
    start = time.perf_counter()
    for page in pages:
        try:
            extract_article(
                page.body,
                page.url,
                content_type="text/html; charset=utf-8",
                feed_title=page.title if feed_gives_metadata else None,
                feed_published=format_datetime(page.published) if feed_gives_metadata else None,
                fetched_at=NOW,
            )
            ok += 1
        except ExtractionError:
            failed += 1
    return ok, failed, time.perf_counter() - start


class CorpusMissing(Exception):
    """The real-page corpus is not where it was looked for."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.folder = folder

    def __str__(self) -> str:
        return (
            f"no real-page corpus at {self.folder} (folders holding source.html and "
            "expected.html): pass --corpus DIR, the readability-pages folder of shared/corpus"
        )


def corpus_pages(folder: Path) -> list[Path]:
    """The corpus' page folders, in name order; CorpusMissing when there are none."""
    pages = sorted(
        p.parent for p in folder.glob("*/source.html") if (p.parent / "expected.html").exists()
    )
    if not pages:
        raise CorpusMissing(folder)
    return pages


# A CJK character is a token of its own (those scripts put no spaces between words); any
# other run of letters and digits is one word.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\W_]+")


def tokens(text: str) -> Counter[str]:
    """The text's word tokens, case-folded, with their counts."""
    return Counter(_TOKEN.findall(text.casefold()))


def token_f1(got: str, expected: str) -> tuple[float, float, float]:
    """(F1, precision, recall) of the tokens of ``got`` against those of ``expected``."""
    mine, theirs = tokens(got), tokens(expected)
    common = sum((mine & theirs).values())
    if not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(mine.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall), precision, recall


@dataclass(frozen=True)
class PageScore:
    """Our extraction of one corpus page against its reference text."""

    name: str
    language: str | None
    f1: float
    precision: float
    recall: float
    cpu_ms: float  # extract_article alone, this thread
    library_ms: float  # trafilatura.extract(fast=True) alone on the same page: the floor
    kib: float


def score_corpus(folder: Path) -> list[PageScore]:
    """Extract every corpus page as the crawl does and score its text against the reference."""
    scores: list[PageScore] = []
    pages = corpus_pages(folder)
    # Lazy imports and caches load on the first page: outside the timing.
    extract_article((pages[0] / "source.html").read_bytes(), "http://127.0.0.1/", fetched_at=NOW)
    for page in pages:
        body = (page / "source.html").read_bytes()
        # Text, not bytes: the fragments declare no charset, and lxml would read them as Latin-1.
        reference = (page / "expected.html").read_text(encoding="utf-8")
        expected = lxml.html.fromstring(reference).text_content()
        metadata = json.loads((page / "expected-metadata.json").read_text(encoding="utf-8"))
        started = time.thread_time()
        try:
            text = extract_article(
                body, f"http://127.0.0.1/{page.name}/", content_type="text/html", fetched_at=NOW
            ).text
        except ExtractionError:
            text = ""
        spent = (time.thread_time() - started) * 1000
        started = time.thread_time()
        trafilatura.extract(body, url=f"http://127.0.0.1/{page.name}/", fast=True)
        library = (time.thread_time() - started) * 1000
        f1, precision, recall = token_f1(text, str(expected))
        scores.append(
            PageScore(
                page.name,
                metadata.get("lang"),
                f1,
                precision,
                recall,
                spent,
                library,
                len(body) / 1024,
            )
        )
    return scores


def print_scores(folder: Path, scores: list[PageScore]) -> None:
    """The mean F1 over the corpus, and its weakest pages."""
    mean = statistics.fmean(s.f1 for s in scores)
    print(
        f"extraction quality on {len(scores)} real pages ({folder}): mean token F1 {mean:.3f} "
        f"(precision {statistics.fmean(s.precision for s in scores):.3f}, recall "
        f"{statistics.fmean(s.recall for s in scores):.3f}); extract_article "
        f"{statistics.fmean(s.cpu_ms for s in scores):.1f} ms CPU a page "
        f"(mean page {statistics.fmean(s.kib for s in scores):.0f} KiB); the library alone, "
        f"trafilatura.extract(fast=True): "
        f"{statistics.fmean(s.library_ms for s in scores):.1f} ms CPU a page"
    )
    weakest = sorted(scores, key=lambda s: s.f1)[:5]
    print("  weakest: " + ", ".join(f"{s.name} {s.f1:.2f}" for s in weakest))


def main(argv: list[str] | None = None) -> int:
    """Generate the corpus, run both paths, print the table; then F1 on the real pages."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=1200, help="pages to generate (>= 1000)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--cpu", type=int, default=0, help="core to pin the process to")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="real pages with references")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})  # one core, as the target is per core
    rng = random.Random(args.seed)
    pages = [make_page(rng, i) for i in range(args.docs)]
    run(pages[:20], feed_gives_metadata=False)  # warm imports and caches outside the timing

    size_kb = sum(len(p.body) for p in pages) / len(pages) / 1024
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"corpus: {len(pages)} pages, {len(LANGUAGES)} languages "
        f"({', '.join(LANGUAGES)}), mean page {size_kb:.1f} KiB, 1 core"
    )
    print(f"{'path':<42} {'docs':>6} {'failed':>6} {'seconds':>8} {'docs/s':>8}")
    for label, feed in (
        ("feed gave title+date (no metadata pass)", True),
        ("metadata extraction", False),
    ):
        ok, failed, seconds = run(pages, feed_gives_metadata=feed)
        print(f"{label:<42} {ok:>6} {failed:>6} {seconds:>8.2f} {ok / seconds:>8.1f}")
    try:
        print_scores(args.corpus, score_corpus(args.corpus))
    except CorpusMissing as exc:
        print(f"extraction quality: skipped, {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
