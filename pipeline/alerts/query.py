"""Topic rules: parse and validate each per-language query, compile a rule to Elasticsearch.

The query language (README, "Alert rules"):

* words are ANDed: ``NATO enlargement`` is ``NATO AND enlargement``;
* ``AND``, ``OR``, ``NOT`` in capitals are operators (lower case they are words); ``NOT``
  binds tightest, then ``AND``, then ``OR``; parentheses group;
* ``"a b c"`` is a phrase, ``"a b"~5`` lets the words stand up to five positions apart;
* ``word*`` is a prefix (``расшир*``); no leading or inner wildcards, no ``?``;
* every word and phrase goes through the language's analyser (stemming, case and accent
  folding), so ``расширение`` also finds ``расширения``.

Nothing is passed to Elasticsearch's own query-string parser: our parse tree is compiled into
``multi_match`` queries over ``title_xx^2`` and ``text_xx``, joined by ``bool`` queries, so a
typo in alerts.yaml fails at load with the rule, the language and the column, never at match
time on a worker.

Pure: this module imports only pipeline.errors, since pipeline.settings parses every rule with
it. The checks that need Elasticsearch (stop words) are pipeline.alerts.rules.check_terms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pipeline.errors import PermanentError

if TYPE_CHECKING:
    from pipeline.settings import AlertRule

__all__ = [
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "MAX_SLOP",
    "MAX_TERMS",
    "And",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "QuerySyntaxError",
    "Term",
    "compile_language",
    "compile_rule",
    "parse_query",
    "rule_fingerprint",
    "terms",
]

# Beyond this a "proximity" phrase is an unordered AND that costs like a phrase.
MAX_SLOP: Final = 50
# Limits on one language's query, checked before the parser recurses (a recursive descent
# hits Python's recursion limit at a few hundred nested parentheses) and before anything is
# sent to Elasticsearch. Real rules are far below them: the shipped ones are at most ~140
# characters, 10 terms, 2 levels. MAX_DEPTH counts "(" and NOT together; each level can add
# two bool queries, so a compiled rule inside its match wrapper stays under Elasticsearch's
# indices.query.max_nested_depth (30; the local node refuses 14 such levels).
MAX_QUERY_CHARS: Final = 2000
MAX_TERMS: Final = 100
MAX_DEPTH: Final = 10
# A one-letter prefix expands to a large share of the index's terms.
MIN_PREFIX: Final = 2
OPERATORS: Final = ("AND", "OR", "NOT")
# Lucene syntax that users may bring from Kibana and that this language does not have; each is
# refused with a hint instead of being silently analysed away.
_UNSUPPORTED: Final = {
    ":": "field names (field:value) are not supported; use the rule's filters",
    "?": "'?' wildcards are not supported; use a trailing * for a prefix",
    "~": '~N only follows a quoted phrase, as in "a b"~5',
    "^": "boosts (^) are not supported",
    "\\": "backslash escapes are not supported; quote the text instead",
    "[": "ranges ([a TO b]) are not supported",
    "]": "ranges ([a TO b]) are not supported",
    "{": "ranges ({a TO b}) are not supported",
    "}": "ranges ({a TO b}) are not supported",
}
_SPELLED: Final = {"&&": "AND", "||": "OR", "!": "NOT"}


class QuerySyntaxError(PermanentError):
    """A rule query that cannot be parsed; ``column`` is 1-based, 0 when it is about the whole."""

    def __init__(self, problem: str, column: int = 0) -> None:
        super().__init__(problem, column)
        self.problem = problem
        self.column = column

    def __str__(self) -> str:
        return f"{self.problem} (column {self.column})" if self.column else self.problem


# --- the parse tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """One word; ``prefix`` when it ended with ``*``."""

    text: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in order, ``slop`` positions of leeway (``"a b"~slop``)."""

    text: str
    slop: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    """Everything but what ``operand`` matches (only beside a positive term)."""

    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    """All of ``operands``."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``operands``."""

    operands: tuple[Node, ...]


Node = Term | Phrase | Not | And | Or


# --- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # WORD, PHRASE, LPAREN, RPAREN, AND, OR, NOT
    text: str
    column: int
    slop: int = 0


def _tokens(query: str) -> Iterator[_Token]:
    position = 0
    length = len(query)
    while position < length:
        char = query[position]
        column = position + 1
        if char.isspace():
            position += 1
        elif char == "(":
            yield _Token("LPAREN", char, column)
            position += 1
        elif char == ")":
            yield _Token("RPAREN", char, column)
            position += 1
        elif char == '"':
            end = query.find('"', position + 1)
            if end < 0:
                raise QuerySyntaxError('unbalanced quote: this " is never closed', column)
            text = query[position + 1 : end]
            if not text.strip():
                raise QuerySyntaxError('empty phrase ""', column)
            if "*" in text or "?" in text:
                raise QuerySyntaxError("wildcards cannot be used inside a quoted phrase", column)
            position = end + 1
            slop = 0
            if position < length and query[position] == "~":
                digits_end = position + 1
                while digits_end < length and query[digits_end].isdigit():
                    digits_end += 1
                digits = query[position + 1 : digits_end]
                if not digits:
                    raise QuerySyntaxError(
                        '~ must be followed by a number of words, as in "a b"~5', position + 1
                    )
                slop = int(digits)
                if slop > MAX_SLOP:
                    raise QuerySyntaxError(f"proximity ~{slop} is over {MAX_SLOP}", position + 1)
                position = digits_end
            if position < length and not (query[position].isspace() or query[position] in "()"):
                raise QuerySyntaxError(
                    "put a space after the closing quote of a phrase", position + 1
                )
            yield _Token("PHRASE", " ".join(text.split()), column, slop)
        else:
            end = position
            while end < length and not (query[end].isspace() or query[end] in '()"'):
                end += 1
            word = query[position:end]
            yield _word_token(word, column)
            position = end


def _word_token(word: str, column: int) -> _Token:
    if word in OPERATORS:
        return _Token(word, word, column)
    if word in _SPELLED:
        raise QuerySyntaxError(f"write {_SPELLED[word]} instead of {word}", column)
    if word[0] in "-+":
        raise QuerySyntaxError(f"write NOT instead of a leading {word[0]!r}", column)
    for offset, char in enumerate(word):
        if char in _UNSUPPORTED:
            raise QuerySyntaxError(_UNSUPPORTED[char], column + offset)
    star = word.find("*")
    if star == 0:
        raise QuerySyntaxError("leading wildcard: a prefix needs letters before the *", column)
    if 0 < star < len(word) - 1:
        raise QuerySyntaxError("only a trailing * is supported", column + star)
    if star > 0 and star < MIN_PREFIX:
        raise QuerySyntaxError(
            f"prefix {word!r} is too short: at least {MIN_PREFIX} letters before *", column
        )
    return _Token("WORD", word, column)


# --- the parser -------------------------------------------------------------------------------


class _Parser:
    """Recursive descent.

    or := and (OR and)* ; and := unary ([AND] unary)* ; unary := NOT unary | primary ;
    primary := WORD | PHRASE | "(" or ")"
    """

    def __init__(self, query: str) -> None:
        self.tokens = list(_tokens(query))
        self.position = 0
        self.end_column = len(query) + 1
        self.depth = 0  # "(" and NOT currently open around the parse position
        words = [t for t in self.tokens if t.kind in ("WORD", "PHRASE")]
        if len(words) > MAX_TERMS:
            raise QuerySyntaxError(
                f"too many words and phrases: {len(words)}; the limit is {MAX_TERMS}",
                words[MAX_TERMS].column,
            )

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise QuerySyntaxError("empty query")
        node = self.or_expr()
        token = self.peek()
        if token is not None:  # only a ")" can stop or_expr early
            raise QuerySyntaxError("unbalanced parenthesis: this ) has no matching (", token.column)
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            self.need_operand(token)
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.unary()]
        while (token := self.peek()) is not None:
            if token.kind == "AND":
                self.take()
                self.need_operand(token)
            elif token.kind not in ("WORD", "PHRASE", "LPAREN", "NOT"):
                break
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token.kind == "NOT":
            self.take()
            self.need_operand(token)
            self.enter(token)
            node = Not(self.unary())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token is None:  # need_operand has ruled this out; kept for the type checker
            raise QuerySyntaxError("the query ends where a word was expected", self.end_column)
        if token.kind in ("AND", "OR"):
            raise QuerySyntaxError(f"{token.kind} has nothing before it", token.column)
        if token.kind == "RPAREN":
            raise QuerySyntaxError("unbalanced parenthesis: this ) has no matching (", token.column)
        self.take()
        if token.kind == "WORD":
            return Term(token.text.rstrip("*"), prefix=token.text.endswith("*"))
        if token.kind == "PHRASE":
            return Phrase(token.text, token.slop)
        # LPAREN
        inner = self.peek()
        if inner is not None and inner.kind == "RPAREN":
            raise QuerySyntaxError("empty parentheses ()", token.column)
        if inner is None:
            raise QuerySyntaxError("unbalanced parenthesis: this ( is never closed", token.column)
        self.enter(token)
        node = self.or_expr()
        self.depth -= 1
        closing = self.peek()
        if closing is None or closing.kind != "RPAREN":
            raise QuerySyntaxError("unbalanced parenthesis: this ( is never closed", token.column)
        self.take()
        return node

    def enter(self, token: _Token) -> None:
        """One more level of "(" or NOT; refused past MAX_DEPTH, before the recursion grows."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(
                f"nested too deep: {self.depth} levels of ( and NOT; the limit is {MAX_DEPTH}",
                token.column,
            )

    def need_operand(self, operator: _Token) -> None:
        """A dangling operator: nothing, ``)``, AND or OR after it."""
        following = self.peek()
        if following is None or following.kind in ("RPAREN", "AND", "OR"):
            raise QuerySyntaxError(f"{operator.kind} has nothing after it", operator.column)


def parse_query(query: str) -> Node:
    """The parse tree of one rule query, or QuerySyntaxError saying what is wrong and where.

    A query over MAX_QUERY_CHARS characters, MAX_TERMS words and phrases or MAX_DEPTH levels
    of parentheses and NOT is refused.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(
            f"too long: {len(query)} characters; the limit is {MAX_QUERY_CHARS}",
            MAX_QUERY_CHARS + 1,
        )
    node = _Parser(query).parse()
    _check_negations(node)
    return node


def _check_negations(node: Node) -> None:
    """Every NOT must stand beside a positive term: ``NOT x`` alone matches almost everything."""
    if isinstance(node, Not):
        raise QuerySyntaxError("NOT needs a positive term beside it, as in 'a AND NOT b'")
    if isinstance(node, Or):
        for operand in node.operands:
            if isinstance(operand, Not):
                raise QuerySyntaxError(
                    "'OR NOT' matches almost everything; write 'a AND NOT b' instead"
                )
            _check_negations(operand)
    elif isinstance(node, And):
        if all(isinstance(operand, Not) for operand in node.operands):
            raise QuerySyntaxError("NOT needs a positive term beside it, as in 'a AND NOT b'")
        for operand in node.operands:
            _check_negations(operand.operand if isinstance(operand, Not) else operand)


def terms(node: Node) -> Iterator[Term | Phrase]:
    """Every word and phrase of the tree, in order."""
    if isinstance(node, Term | Phrase):
        yield node
    elif isinstance(node, Not):
        yield from terms(node.operand)
    else:
        for operand in node.operands:
            yield from terms(operand)


# --- compiling --------------------------------------------------------------------------------


def _fields(language: str) -> list[str]:
    # A title hit weighs double: it orders search results, never whether a rule matches.
    return [f"title_{language}^2", f"text_{language}"]


def compile_language(node: Node, language: str) -> dict[str, Any]:
    """The parse tree as an Elasticsearch query over ``language``'s analysed fields.

    ``language`` is one the articles mapping analyses: pipeline.settings checks every rule's
    languages against pipeline.store.client.LANGUAGE_FIELDS when it loads alerts.yaml.
    """
    fields = _fields(language)
    if isinstance(node, Term) and node.prefix:
        # bool_prefix analyses the word (stemming, folding) before taking it as a prefix, so
        # "расширени*" becomes the stem "расширен" and meets what the analyser indexed.
        return {
            "multi_match": {
                "query": node.text,
                "type": "bool_prefix",
                "fields": fields,
                "operator": "and",
            }
        }
    if isinstance(node, Term | Phrase):
        # A phrase query for single words too: "NATO-Beitritt" analyses into two tokens that
        # belong together.
        body: dict[str, Any] = {"query": node.text, "type": "phrase", "fields": fields}
        if isinstance(node, Phrase) and node.slop:
            body["slop"] = node.slop
        return {"multi_match": body}
    if isinstance(node, Or):
        return {
            "bool": {
                "should": [compile_language(o, language) for o in node.operands],
                "minimum_should_match": 1,
            }
        }
    if isinstance(node, And):
        must = [compile_language(o, language) for o in node.operands if not isinstance(o, Not)]
        must_not = [
            compile_language(o.operand, language) for o in node.operands if isinstance(o, Not)
        ]
        clause: dict[str, Any] = {"must": must}
        if must_not:
            clause["must_not"] = must_not
        return {"bool": clause}
    raise QuerySyntaxError("NOT needs a positive term beside it, as in 'a AND NOT b'")


def compile_rule(rule: AlertRule, *, with_filters: bool = True) -> dict[str, Any]:
    """The rule as one Elasticsearch query: its languages ORed, then its filters.

    Only an article's own language has title_xx/text_xx filled, so each language's query can
    only match articles in that language. ``with_filters=False`` leaves out the source and
    country filters (``newsradar alerts test`` has no source to filter on).
    """
    languages = [
        lang
        for lang in rule.queries
        if rule.filters is None or not rule.filters.languages or lang in rule.filters.languages
    ]
    should = [compile_language(parse_query(rule.queries[lang]), lang) for lang in languages]
    query: dict[str, Any] = {"bool": {"should": should, "minimum_should_match": 1}}
    filters: list[dict[str, Any]] = []
    if rule.filters is not None and with_filters:
        if rule.filters.sources:
            filters.append({"terms": {"source": list(rule.filters.sources)}})
        if rule.filters.countries:
            filters.append({"terms": {"country": list(rule.filters.countries)}})
    if rule.filters is not None and rule.filters.languages:
        filters.append({"terms": {"language": languages}})
    if filters:
        query["bool"]["filter"] = filters
    return query


def rule_fingerprint(query: Mapping[str, Any]) -> str:
    """A short stable hash of a compiled query: tells whether a stored rule is current."""
    text = json.dumps(query, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
