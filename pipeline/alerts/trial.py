"""``newsradar alerts test``: run the configured rules on article files, on the real analysers.

Each file is indexed into a throw-away index built from mappings/articles.json, so it is
analysed exactly as an indexed article would be; the index is removed after. A rule that matches
a file is scored for relevance as matching scores it: it alerts when the score reaches its
min_relevance, and is listed under ``below`` otherwise. Rules without queries (breaking stories
across topics) have nothing to try on a file.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from pipeline.alerts.highlight import highlighted
from pipeline.alerts.query import Term, compile_rule, parse_query, terms
from pipeline.alerts.relevance import score_articles
from pipeline.alerts.rules import analyse, check_terms
from pipeline.errors import ConfigError
from pipeline.languages import language
from pipeline.settings import AlertRule
from pipeline.store.client import IndexNames, call, load_template

__all__ = [
    "ARTICLE_SUFFIXES",
    "Analysed",
    "RuleHit",
    "RuleQuery",
    "TrialResult",
    "article_files",
    "read_article_file",
    "try_rules",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Analysed:
    """A word or phrase and the terms its language's analyser makes of it (what is matched)."""

    text: str
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule whose query matched a file: its words, a snippet, and the relevance verdict.

    ``analysed``: the matched words as the analyser made them; ``relevance``: the score
    (pipeline.alerts.relevance); ``min_relevance``: the rule's threshold; ``why``: the
    one-line reason a digest would show.
    """

    rule_id: str
    name: str
    terms: tuple[str, ...]
    snippet: str
    relevance: float
    min_relevance: float
    where: str
    why: str
    analysed: tuple[Analysed, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleQuery:
    """A rule's query in the file's language: each of its words and phrases as analysed.

    A prefix (``expans*``) is analysed like a word and then matched as a prefix of terms.
    """

    rule_id: str
    analyser: str
    terms: tuple[Analysed, ...]


@dataclass(frozen=True, slots=True)
class TrialResult:
    """One file run through the rules: its language, the rules that alert, those below.

    ``hits``: rules that would alert on it; ``below``: rules whose query matches but whose
    relevance stays under their min_relevance; ``queries``: what each rule searches.
    """

    file: str
    title: str
    language: str
    probability: float
    method: str
    hits: tuple[RuleHit, ...]
    below: tuple[RuleHit, ...] = ()
    queries: tuple[RuleQuery, ...] = ()


# What `newsradar alerts test DIR` tries in a directory.
ARTICLE_SUFFIXES: Final = (".txt", ".html", ".htm")


def article_files(paths: Sequence[Path]) -> list[Path]:
    """The files to try: each file as given; for a directory, its .txt and .html files, sorted.

    A ConfigError names a path that does not exist, is neither a file nor a directory (a
    device or a pipe would never end), or is a directory without such files.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            try:
                found = sorted(
                    entry
                    for entry in path.iterdir()
                    if entry.suffix.lower() in ARTICLE_SUFFIXES
                    and not entry.name.startswith(".")
                    and entry.is_file()
                )
            except OSError as exc:
                raise ConfigError(str(path), "", f"cannot be read: {exc.strerror}") from None
            if not found:
                raise ConfigError(str(path), "", "a directory without .txt or .html files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise ConfigError(str(path), "", "neither a file nor a directory")
        else:
            raise ConfigError(str(path), "", "no such file or directory")
    return files


def read_article_file(path: Path, *, now: datetime) -> tuple[str, str, str | None]:
    """(title, text, language hint) of an HTML page (extracted) or a text file (first line)."""
    # Imported here: trafilatura takes seconds to import, and only this command needs it.
    from pipeline.normalise.extract import extract_article

    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc.strerror}") from None
    head = body.lstrip()[:512].lower()
    if path.suffix.lower() in (".html", ".htm") or head.startswith((b"<!doctype html", b"<html")):
        article = extract_article(
            body, f"https://alerts-test.invalid/{path.name}", fetched_at=now, min_chars=1
        )
        return article.title, article.text, article.language_hint
    text = body.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines()]
    first = next((i for i, line in enumerate(lines) if line), 0)
    title = lines[first] if lines else ""
    return title, "\n".join(lines[first + 1 :]).strip(), None


def try_rules(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[AlertRule],
    files: Sequence[Path],
    *,
    now: datetime,
) -> list[TrialResult]:
    """Which rules match each file, on the real analysers: a throw-away index, removed after.

    The index is built from mappings/articles.json, so a file is analysed exactly as an
    indexed article would be. Source and country filters are not applied: a file has neither.
    """
    from pipeline.normalise.language import detect_language  # slow to import; only needed here

    rules = [rule for rule in rules if rule.queries]
    template = load_template("articles", names.prefix)["template"]
    index = f"{names.prefix}-alerts-test-{uuid.uuid4().hex[:12]}"
    queries = {rule.id: compile_rule(rule, with_filters=False) for rule in rules}
    results = []
    call(
        es,
        es.indices.create,
        index=index,
        settings=template["settings"],
        mappings=template["mappings"],
    )
    cache: dict[tuple[str, str], Analysed] = {}

    def analysed(lang: str, text: str) -> Analysed:
        if (lang, text) not in cache:
            cache[lang, text] = Analysed(text, call(es, analyse, es, lang, text, index=index))
        return cache[lang, text]

    try:
        # Analysed in the throw-away index: an API key limited to the prefix's indices may
        # analyse there, not cluster-wide.
        call(es, check_terms, client=es, rules=rules, index=index)
        for number, path in enumerate(files):
            title, text, hint = read_article_file(path, now=now)
            detected = detect_language(title, text, hint=hint)
            lang = detected.language
            document: dict[str, Any] = {"title": title, "text": text, "language": lang}
            if f"text_{lang}" in template["mappings"]["properties"]:
                document[f"title_{lang}"] = title
                document[f"text_{lang}"] = text
            doc_id = f"file-{number}"
            call(es, es.index, index=index, id=doc_id, document=document, refresh=True)
            matched = [r for r in rules if _matches(es, index, queries[r.id], doc_id)]
            verdicts = [_verdict(es, index, rule, doc_id, lang, analysed) for rule in matched]
            results.append(
                TrialResult(
                    file=str(path),
                    title=title,
                    language=lang,
                    probability=round(detected.probability, 3),
                    method=detected.method,
                    hits=tuple(v for v in verdicts if v.relevance >= v.min_relevance),
                    below=tuple(v for v in verdicts if v.relevance < v.min_relevance),
                    queries=tuple(
                        _rule_query(rule.id, lang, rule.queries[lang], analysed)
                        for rule in rules
                        if lang in rule.queries
                    ),
                )
            )
    finally:
        try:
            es.options(ignore_status=404).indices.delete(index=index)
        except (TransportError, ApiError) as exc:
            log.warning("could not remove the test index %s: %s", index, exc)
    return results


def _verdict(
    es: Elasticsearch,
    index: str,
    rule: AlertRule,
    doc_id: str,
    lang: str,
    analysed: Callable[[str, str], Analysed],
) -> RuleHit:
    """The rule's relevance on a file it matched, with the words and the passage."""
    hit = highlighted(es, index, rule, [doc_id])[doc_id]
    matched = tuple(analysed(lang, term) for term in hit.terms)
    wanted = {rule.id: {doc_id: lang}}
    scored = score_articles(es, index, wanted, {rule.id: rule.queries}).get(rule.id, {})
    relevance = scored.get(doc_id)
    if relevance is None:  # matched through a language field the file is not detected in
        return RuleHit(rule.id, rule.name, hit.terms, hit.snippet, 1.0, 0.0, "body", "", matched)
    return RuleHit(
        rule_id=rule.id,
        name=rule.name,
        terms=hit.terms,
        snippet=relevance.passage or hit.snippet,
        relevance=relevance.score,
        min_relevance=rule.relevance_threshold,
        where=relevance.where,
        why=relevance.explain(),
        analysed=matched,
    )


def _rule_query(
    rule_id: str, lang: str, query: str, analysed: Callable[[str, str], Analysed]
) -> RuleQuery:
    """``query``'s words and phrases through ``lang``'s analyser, each once, in order."""
    seen: dict[str, Analysed] = {}
    for term in terms(parse_query(query)):
        written = f"{term.text}*" if isinstance(term, Term) and term.prefix else term.text
        if written in seen:
            continue
        found = analysed(lang, term.text)
        if written != term.text:
            # What bool_prefix searches: the analysed word's last term as a prefix.
            prefix = (*found.terms[:-1], f"{found.terms[-1]}*") if found.terms else ()
            found = Analysed(written, prefix)
        seen[written] = found
    entry = language(lang)
    return RuleQuery(rule_id, entry.analyser if entry else lang, tuple(seen.values()))


def _matches(es: Elasticsearch, index: str, query: dict[str, Any], doc_id: str) -> bool:
    restricted = {"bool": {"must": [query], "filter": [{"ids": {"values": [doc_id]}}]}}
    return int(call(es, es.count, index=index, query=restricted)["count"]) > 0
