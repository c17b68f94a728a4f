"""Relevance: how much a matched article is about its rule's topic, not only whether it names it.

A rule's query decides whether an article names the topic; a defence-budget report whose last
sentence says that new members were not on the agenda names NATO enlargement too. Relevance
weighs where the article names it and how much of the text is about it.

A query is read as alternatives, each an AND of *parts*: ``(NATO OR "North Atlantic Treaty")
AND (enlargement OR accession)`` has one alternative of two parts, the alliance and the
enlargement words (``NOT`` operands are no part: the article matched, so they are absent).
Elasticsearch highlights each part on its own over the whole title and text, with the rule's
own analysers (stems, prefixes, phrases and proximity as the rule matches them: a Russian
inflected form is a hit), so every hit comes with its place in the text; a named query per word
or phrase says which of them the article has. Nothing is tokenised again here.

The score, 0 to 1, has three tiers (pipeline.settings.FOCUS_RELEVANCE names them):

* every part of an alternative in the title: 0.8 + 0.2 c;
* every part in the title or the lead (the text's first paragraph, at most 80 words): 0.5 + 0.3 c;
* otherwise: 0.5 c, halved when the part named least often is named only once: a body-only
  match counts as far as the text keeps coming back to it, and once is a passing mention;

where the coverage c = 0.75 min(1, density / 10) + 0.25 min(1, extra / 3): density is the hits
per 1,000 words of the part named least often (a defence report names NATO often and new
members once: once is what counts), extra the distinct words and phrases found beyond one per
part. The passage that carried the score (the paragraph with most parts and hits) goes with it.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from elasticsearch import Elasticsearch

from pipeline.alerts.query import And, Node, Not, Or, Phrase, Term, compile_language, parse_query
from pipeline.alerts.rules import RuleError
from pipeline.settings import FOCUS_RELEVANCE
from pipeline.store.client import call

__all__ = [
    "LEAD_MAX_WORDS",
    "Relevance",
    "Spans",
    "parts_of",
    "score_articles",
    "score_spans",
]

log = logging.getLogger(__name__)

# The lead: the text's first paragraph (with short lines before it, such as a dateline, until
# LEAD_MIN_WORDS), never more than its first LEAD_MAX_WORDS words. Text without paragraph breaks
# (a feed summary) is cut the same way.
LEAD_MIN_WORDS: Final = 20
LEAD_MAX_WORDS: Final = 80
# Density at which coverage is full: one hit of the rarest part every 100 words.
_FULL_DENSITY: Final = 10.0
# Distinct words and phrases beyond one per part at which that half of coverage is full.
_FULL_EXTRA: Final = 3
_PASSAGE_CHARS: Final = 300
_TERMS_KEPT: Final = 8
# The unified highlighter analyses this many characters of a field at most (the index's own
# limit, index.highlight.max_analyzed_offset, is 1,000,000); an article is far shorter.
_MAX_ANALYZED: Final = 500_000
_SEARCHES_PER_REQUEST: Final = 100
# Highlight marks from Unicode's private use area: they cannot occur in article text.
_OPEN: Final = "\ue000"
_CLOSE: Final = "\ue001"
_MARKS: Final = re.compile(f"([{_OPEN}{_CLOSE}])")
# Scripts written without spaces between words: Han, kana, Thai, Lao, Khmer, Myanmar.
_UNSPACED: Final = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f]"
)
_UNSPACED_WORD: Final = 2


@dataclass(frozen=True, slots=True)
class Relevance:
    """How much one article is about one rule's topic, and the passage that shows it.

    ``where``: ``title``, ``lead`` or ``body``; ``density``: hits per 1,000 words of the part
    named least often; ``distinct``: the query's words and phrases found; ``terms``: the hits as
    written, with how often, most frequent first.
    """

    score: float
    where: str
    words: int
    density: float
    distinct: int
    terms: tuple[tuple[str, int], ...]
    passage: str

    def to_json(self) -> dict[str, Any]:
        """The outbox's ``relevance`` object."""
        return {
            "score": self.score,
            "where": self.where,
            "words": self.words,
            "density": self.density,
            "distinct": self.distinct,
            "terms": [{"term": term, "count": count} for term, count in self.terms],
            "passage": self.passage,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Relevance:
        """A stored ``relevance`` object read back."""
        return cls(
            score=float(data.get("score") or 0.0),
            where=str(data.get("where") or "body"),
            words=int(data.get("words") or 0),
            density=float(data.get("density") or 0.0),
            distinct=int(data.get("distinct") or 0),
            terms=tuple((str(t["term"]), int(t["count"])) for t in data.get("terms") or ()),
            passage=str(data.get("passage") or ""),
        )

    def explain(self) -> str:
        """One line for a reader: where, which terms how often, the score."""
        where = {
            "title": "in the title",
            "lead": "in the lead",
            "body": f"further down, its rarest part {self.density:.1f} times per 1,000 words",
        }[self.where]
        terms = ", ".join(f"{term} ({count})" for term, count in self.terms)
        counted = f"; {terms} in {self.words} words" if terms else ""
        return f"{where}{counted}; relevance {self.score:.2f}"


# --- the query's parts ----------------------------------------------------------------------


def parts_of(node: Node) -> tuple[tuple[Node, ...], ...]:
    """The query's alternatives, each the tuple of parts that must all be present.

    The operands of a top-level OR that are no AND are synonyms: together they are one
    alternative of one part, so that ``NATO OR OTAN`` counts its hits together.
    """
    operands = node.operands if isinstance(node, Or) else (node,)
    alternatives: list[tuple[Node, ...]] = []
    loose: list[Node] = []
    for operand in operands:
        if isinstance(operand, And):
            alternatives.append(tuple(o for o in operand.operands if not isinstance(o, Not)))
        else:
            loose.append(operand)
    if loose:
        alternatives.insert(0, (loose[0] if len(loose) == 1 else Or(tuple(loose)),))
    return tuple(alternatives)


def _positive_leaves(node: Node) -> Iterator[Term | Phrase]:
    if isinstance(node, Term | Phrase):
        yield node
    elif isinstance(node, And | Or):
        for operand in node.operands:
            yield from _positive_leaves(operand)


# --- scoring marked text (pure) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spans:
    """One article's hits of one part: (start, end) offsets in its title and in its text."""

    title: tuple[tuple[int, int], ...] = ()
    text: tuple[tuple[int, int], ...] = ()


def score_spans(
    title: str,
    text: str,
    alternatives: Sequence[Sequence[Spans]],
    distinct: Sequence[int],
) -> Relevance:
    """The best-scoring alternative's relevance, from each of its parts' hits.

    ``alternatives`` holds, per alternative, the hits of each of its parts; ``distinct`` the
    distinct words and phrases found per alternative.
    """
    words = _count_words(title) + _count_words(text)
    lead_end = _lead_end(text)
    best: Relevance | None = None
    for spans, found in zip(alternatives, distinct, strict=True):
        candidate = _score_alternative(title, text, spans, found, words, lead_end)
        if best is None or candidate.score > best.score:
            best = candidate
    if best is None:
        raise ValueError("a query has at least one alternative")
    return best


def _score_alternative(
    title: str,
    text: str,
    parts: Sequence[Spans],
    distinct: int,
    words: int,
    lead_end: int,
) -> Relevance:
    in_title = all(part.title for part in parts)
    in_lead = all(part.title or any(s < lead_end for s, _ in part.text) for part in parts)
    # A part the query matched but the highlighter did not place is somewhere in the text.
    rarest = min(max(1, len(part.title) + len(part.text)) for part in parts)
    density = 1000.0 * rarest / max(1, words)
    extra = max(0, distinct - len(parts))
    coverage = 0.75 * min(1.0, density / _FULL_DENSITY) + 0.25 * min(1.0, extra / _FULL_EXTRA)
    title_floor, lead_floor = FOCUS_RELEVANCE["title"], FOCUS_RELEVANCE["lead"]
    if in_title:
        where, score = "title", title_floor + (1.0 - title_floor) * coverage
    elif in_lead:
        where, score = "lead", lead_floor + (title_floor - lead_floor) * coverage
    else:
        where, score = "body", lead_floor * coverage * (0.5 if rarest == 1 else 1.0)
    # Two decimals, as shown; a tier never reaches the next one's floor.
    ceiling = {"title": 1.0, "lead": title_floor - 0.01, "body": lead_floor - 0.01}[where]
    return Relevance(
        score=min(ceiling, round(score, 2)),
        where=where,
        words=words,
        density=round(density, 1),
        distinct=distinct,
        terms=_terms(title, text, parts),
        passage=_passage(title, text, parts, where, lead_end),
    )


def _lead_end(text: str) -> int:
    """The offset where the lead ends: see LEAD_MIN_WORDS and LEAD_MAX_WORDS."""
    counted = 0
    position = 0
    for line in text.split("\n"):
        end = position + len(line)
        for word_end in _word_ends(line, position):
            counted += 1
            if counted >= LEAD_MAX_WORDS:
                return word_end
        if counted >= LEAD_MIN_WORDS:
            return end
        position = end + 1
    return len(text)


def _word_ends(line: str, offset: int) -> Iterator[int]:
    """Where each word of ``line`` ends (offsets from ``offset``).

    Words end at white space; in scripts written without spaces between words (Chinese,
    Japanese, Thai, ...) every _UNSPACED_WORD characters count as a word, about what a word
    is there, so that a Japanese article is not a handful of "words".
    """
    inside = 0
    for index, char in enumerate(line):
        if char.isspace():
            if inside:
                yield offset + index
            inside = 0
        elif _UNSPACED.match(char):
            inside += 1
            if inside % _UNSPACED_WORD == 0:
                yield offset + index + 1
                inside = 0
        else:
            inside = max(inside, 1)
    if inside:
        yield offset + len(line)


def _count_words(text: str) -> int:
    return sum(1 for _ in _word_ends(text, 0))


def _terms(title: str, text: str, parts: Sequence[Spans]) -> tuple[tuple[str, int], ...]:
    """The hits as written, most frequent first, then in the order they come."""
    # One phrase hit that two parts share counts once.
    places = sorted(
        {(0, s, e) for part in parts for s, e in part.title}
        | {(1, s, e) for part in parts for s, e in part.text}
    )
    counts: Counter[str] = Counter()
    written: dict[str, str] = {}
    for field, start, end in places:
        term = " ".join((title if field == 0 else text)[start:end].split())
        key = term.casefold()
        written.setdefault(key, term)
        counts[key] += 1
    order = {key: n for n, key in enumerate(written)}
    ranked = sorted(counts, key=lambda key: (-counts[key], order[key]))
    return tuple((written[key], counts[key]) for key in ranked[:_TERMS_KEPT])


def _passage(title: str, text: str, parts: Sequence[Spans], where: str, lead_end: int) -> str:
    """The passage that carried the score, cut around its first hit when long.

    The lead when the lead carried it; otherwise the paragraph with most parts, then most hits.
    """
    best: tuple[int, int, int] | None = None  # (parts, hits, -start)
    chosen = (0, 0, 0)  # paragraph start, end, first hit
    position = 0
    for line in text.split("\n"):
        end = position + len(line)
        if where == "lead" and position >= lead_end:
            break
        inside = [[s for s, _ in part.text if position <= s < end] for part in parts]
        hits = sum(len(found) for found in inside)
        key = (sum(1 for found in inside if found), hits, -position)
        if hits and (best is None or key > best):
            best = key
            chosen = (position, end, min(s for found in inside for s in found))
        position = end + 1
    if best is None:
        return " ".join(title.split())
    start, end, first = chosen
    if end - start <= _PASSAGE_CHARS:
        return " ".join(text[start:end].split())
    # A window opening at the sentence of the first hit when it is near (else a little before
    # the hit, on a word boundary), and closing on a word boundary.
    sentence = max(text.rfind(mark, start, first) for mark in (". ", "! ", "? ", "… "))
    if sentence >= start and first - sentence <= _PASSAGE_CHARS // 2:
        cut = sentence + 2
    else:
        cut = max(start, first - _PASSAGE_CHARS // 5)
        if cut > start:
            cut = max(start, text.rfind(" ", start, cut) + 1)
    stop = min(end, cut + _PASSAGE_CHARS)
    if stop < end and text.rfind(" ", cut, stop) > first:
        stop = text.rfind(" ", cut, stop)
    passage = " ".join(text[cut:stop].split())
    return ("… " if cut > start else "") + passage + (" …" if stop < end else "")


def _unmark(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Highlighted text without its marks, and where each mark was."""
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    start: int | None = None
    for piece in _MARKS.split(marked):
        if piece == _OPEN:
            start = length
        elif piece == _CLOSE:
            if start is not None:
                spans.append((start, length))
            start = None
        else:
            plain.append(piece)
            length += len(piece)
    return "".join(plain), tuple(spans)


# --- Elasticsearch -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """One rule's language query, taken apart: its parts, leaves and alternatives."""

    language: str
    parts: tuple[dict[str, Any], ...]  # compiled, one per distinct part
    leaves: tuple[dict[str, Any], ...]  # compiled, one per distinct word or phrase
    alternatives: tuple[tuple[int, ...], ...]  # part indices
    alternative_leaves: tuple[frozenset[int], ...]  # leaf indices


def _plan(query: str, language: str) -> _Plan:
    parts: dict[str, tuple[int, dict[str, Any]]] = {}
    leaves: dict[tuple[str, bool, int], tuple[int, dict[str, Any]]] = {}
    alternatives: list[tuple[int, ...]] = []
    alternative_leaves: list[frozenset[int]] = []
    for alternative in parts_of(parse_query(query)):
        indices = []
        found: set[int] = set()
        for part in alternative:
            compiled = compile_language(part, language)
            key = json.dumps(compiled, sort_keys=True, ensure_ascii=False)
            indices.append(parts.setdefault(key, (len(parts), compiled))[0])
            for leaf in _positive_leaves(part):
                leaf_key = (
                    leaf.text.casefold(),
                    isinstance(leaf, Term) and leaf.prefix,
                    leaf.slop if isinstance(leaf, Phrase) else 0,
                )
                entry = (len(leaves), compile_language(leaf, language))
                found.add(leaves.setdefault(leaf_key, entry)[0])
        alternatives.append(tuple(indices))
        alternative_leaves.append(frozenset(found))
    return _Plan(
        language=language,
        parts=tuple(compiled for _, compiled in sorted(parts.values(), key=lambda p: p[0])),
        leaves=tuple(compiled for _, compiled in sorted(leaves.values(), key=lambda p: p[0])),
        alternatives=tuple(alternatives),
        alternative_leaves=tuple(alternative_leaves),
    )


def _leaves_search(plan: _Plan, ids: Sequence[str]) -> dict[str, Any]:
    """The articles' analysed title and text, and which words and phrases each has."""
    named = [
        {"bool": {"filter": [leaf], "_name": f"leaf-{n}"}} for n, leaf in enumerate(plan.leaves)
    ]
    fields = [f"title_{plan.language}", f"text_{plan.language}"]
    return {
        "query": {"bool": {"filter": [{"ids": {"values": list(ids)}}], "should": named}},
        "size": len(ids),
        "_source": fields,
        "track_total_hits": False,
    }


def _part_search(plan: _Plan, part: dict[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    """One part's hits in the articles' whole title and text."""
    whole = {"number_of_fragments": 0}
    return {
        "query": {"ids": {"values": list(ids)}},
        "size": len(ids),
        "_source": False,
        "track_total_hits": False,
        "highlight": {
            "type": "unified",
            "pre_tags": [_OPEN],
            "post_tags": [_CLOSE],
            "highlight_query": part,
            "max_analyzed_offset": _MAX_ANALYZED,
            "fields": {f"title_{plan.language}": whole, f"text_{plan.language}": whole},
        },
    }


def score_articles(
    es: Elasticsearch,
    index: str,
    wanted: Mapping[str, Mapping[str, str]],
    queries: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, Relevance]]:
    """Rule id -> article id -> relevance, for every (rule, article) in ``wanted``.

    ``wanted`` maps a rule id to its articles and their languages; ``queries`` a rule id to
    its queries by language. An article in a language the rule has no query for is left out.
    One msearch (in requests of a hundred searches) for everything: per rule and language, one
    search for the words and phrases and one per part for its hits.
    """
    jobs: list[tuple[str, _Plan, list[str]]] = []
    for rule_id, articles in sorted(wanted.items()):
        by_language: dict[str, list[str]] = defaultdict(list)
        for article_id, language in articles.items():
            if language in queries.get(rule_id, {}):
                by_language[language].append(article_id)
        for language, ids in sorted(by_language.items()):
            jobs.append((rule_id, _plan(queries[rule_id][language], language), sorted(ids)))
    # Rules that share a query (or a part of one) over the same articles search it once.
    bodies: dict[str, dict[str, Any]] = {}
    keys: list[tuple[str, list[str]]] = []
    for _, plan, ids in jobs:
        searches = [_leaves_search(plan, ids), *(_part_search(plan, p, ids) for p in plan.parts)]
        named = [json.dumps(body, sort_keys=True, ensure_ascii=False) for body in searches]
        bodies.update(zip(named, searches, strict=True))
        keys.append((named[0], named[1:]))
    answers = dict(zip(bodies, _msearch(es, index, list(bodies.values())), strict=True))
    scores: dict[str, dict[str, Relevance]] = defaultdict(dict)
    for (rule_id, plan, ids), (leaves_key, part_keys) in zip(jobs, keys, strict=True):
        found = _hits(answers[leaves_key], rule_id)
        marks = [_hits(answers[key], rule_id) for key in part_keys]
        for article_id in ids:
            if article_id in found:
                scores[rule_id][article_id] = _score_one(plan, found[article_id], marks, article_id)
    return dict(scores)


def _score_one(
    plan: _Plan, found: Mapping[str, Any], marks: Sequence[Mapping[str, Any]], article_id: str
) -> Relevance:
    source = found.get("_source") or {}
    title = str(source.get(f"title_{plan.language}") or "")
    text = str(source.get(f"text_{plan.language}") or "")
    has = {int(name.rsplit("-", 1)[1]) for name in found.get("matched_queries") or ()}
    spans: list[Spans] = []
    for part_marks in marks:
        highlight = (part_marks.get(article_id) or {}).get("highlight") or {}
        spans.append(
            Spans(
                title=_spans(highlight.get(f"title_{plan.language}"), title),
                text=_spans(highlight.get(f"text_{plan.language}"), text),
            )
        )
    return score_spans(
        title,
        text,
        [[spans[i] for i in alternative] for alternative in plan.alternatives],
        [len(has & leaves) for leaves in plan.alternative_leaves],
    )


def _spans(fragments: Iterable[str] | None, original: str) -> tuple[tuple[int, int], ...]:
    for fragment in fragments or ():
        plain, spans = _unmark(fragment)
        if plain == original:
            return spans
        # A field highlighted otherwise than whole (it never is with number_of_fragments 0)
        # cannot be placed: its hits are counted, their place is not known.
        log.warning("highlight does not give the whole field back; hits counted in the body")
        return tuple((len(original), len(original)) for _ in spans)
    return ()


def _hits(answer: Mapping[str, Any], rule_id: str) -> dict[str, Mapping[str, Any]]:
    if "error" in answer:
        raise RuleError(rule_id, f"relevance search failed: {answer['error']}")
    return {str(hit["_id"]): hit for hit in answer["hits"]["hits"]}


def _msearch(
    es: Elasticsearch, index: str, bodies: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for start in range(0, len(bodies), _SEARCHES_PER_REQUEST):
        searches: list[Mapping[str, Any]] = []
        for body in bodies[start : start + _SEARCHES_PER_REQUEST]:
            searches += [{"index": index}, body]
        answers.extend(call(es, es.msearch, searches=searches)["responses"])
    return answers
