"""Highlighting: what a rule matched in each article, as listed terms and a snippet.

Used for the digest's stories and for ``newsradar alerts test``. The highlight marks come from
Unicode's private use area: they cannot occur in article text, so what lies between them is
exactly what the rule matched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from elasticsearch import Elasticsearch

from pipeline.alerts.query import compile_language, parse_query
from pipeline.alerts.reads import mget
from pipeline.alerts.rules import RuleError
from pipeline.settings import AlertRule
from pipeline.store.client import call

__all__ = ["Highlighted", "highlighted"]

_MARK_OPEN: Final = "\ue000"
_MARK_CLOSE: Final = "\ue001"
_SNIPPET_CHARS: Final = 220


@dataclass(frozen=True, slots=True)
class Highlighted:
    """One article as a rule sees it: its stored fields, a snippet and the terms it matched."""

    id: str
    source: dict[str, Any]
    snippet: str
    terms: tuple[str, ...]


_ARTICLE_FIELDS: Final = [
    "title",
    "url",
    "source",
    "language",
    "published",
    "fetched",
    "text",
    "story_id",
]


def highlighted(
    es: Elasticsearch, index: str, rule: AlertRule, ids: Sequence[str]
) -> dict[str, Highlighted]:
    """The articles ``ids`` (all of them), with what the rule matches in each highlighted.

    One search per language in one msearch, each highlighting only that language's fields
    with only that language's query: the whole rule against every language field costs
    several times more and finds nothing more.
    """
    if not ids:
        return {}
    documents = mget(es, index, list(ids))
    by_language: dict[str, list[str]] = defaultdict(list)
    for doc_id, hit in documents.items():
        lang = str(hit.source.get("language") or "")
        if lang in rule.queries:
            by_language[lang].append(doc_id)
    searches: list[dict[str, Any]] = []
    for lang, group in sorted(by_language.items()):
        searches.append({"index": index})
        searches.append(
            {
                "query": {"ids": {"values": group}},
                "size": len(group),
                "_source": False,
                "highlight": {
                    "pre_tags": [_MARK_OPEN],
                    "post_tags": [_MARK_CLOSE],
                    "highlight_query": compile_language(parse_query(rule.queries[lang]), lang),
                    "fields": {
                        f"title_{lang}": {"number_of_fragments": 0},
                        # Five fragments to list what matched; the snippet shows two.
                        f"text_{lang}": {
                            "fragment_size": _SNIPPET_CHARS,
                            "number_of_fragments": 5,
                        },
                    },
                },
            }
        )
    marks: dict[str, dict[str, list[str]]] = {}
    if searches:
        response = call(es, es.msearch, searches=searches)
        for answer in response["responses"]:
            if "error" in answer:
                raise RuleError(rule.id, f"highlighting failed: {answer['error']}")
            for hit in answer["hits"]["hits"]:
                marks[hit["_id"]] = hit.get("highlight", {})
    found = {}
    for doc_id, hit in documents.items():
        fields = marks.get(doc_id, {})
        title_parts = [
            f for name, frags in fields.items() if name.startswith("title_") for f in frags
        ]
        text_parts = [
            f for name, frags in fields.items() if name.startswith("text_") for f in frags
        ]
        if text_parts:
            snippet = " … ".join(_unmark(fragment).strip() for fragment in text_parts[:2])
        else:
            snippet = _lead(str(hit.source.get("text") or ""))
        source = {key: hit.source.get(key) for key in _ARTICLE_FIELDS}
        terms = _marked_terms([*title_parts, *text_parts])
        found[doc_id] = Highlighted(doc_id, source, snippet, terms)
    return found


def _marked_terms(fragments: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for fragment in fragments:
        for piece in fragment.split(_MARK_OPEN)[1:]:
            term = " ".join(piece.partition(_MARK_CLOSE)[0].split())
            if term:
                seen.setdefault(term.casefold(), term)
    return tuple(seen.values())


def _unmark(fragment: str) -> str:
    return fragment.replace(_MARK_OPEN, "").replace(_MARK_CLOSE, "")


def _lead(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _SNIPPET_CHARS:
        return text
    return text[:_SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"
