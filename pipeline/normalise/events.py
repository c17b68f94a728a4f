"""Same-event evidence: what an article says about its happening, and how two articles compare.

Two reports of one event are written in other words, often in other languages, so their copies
detection (MinHash) sees nothing in common. What they share is what survives rewording and
translation: the names of the people and places (transliterated and reduced to a consonant
skeleton, so Коротченко, Korotchenko and Korotchenkos meet), organisations and places under one
id from a shipped vocabulary (НАТО, NATO, OTAN), numbers and calendar dates. Within one language
their vocabulary and titles overlap too. A topic (NATO, an earthquake in Turkey) shares the
organisation and the country, but not the day, the numbers and the other names of one event.

``signature`` reads the evidence of one article (pure, a few milliseconds); ``compare`` weighs
two signatures into a score and a verdict, and is symmetric, so whichever of two workers meets a
pair reaches the same verdict (see ``pipeline.store.stories``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final

import justext
import yaml
from anyascii import anyascii

from pipeline.languages import language as table_entry

__all__ = [
    "DEFAULT_EVENT_CONFIG",
    "EventConfig",
    "EventSignature",
    "Evidence",
    "compare",
    "signature",
    "specific_keys",
]

# Key kinds, the prefix of each key: a name's skeleton, a vocabulary concept, a number, a
# calendar date (month-day) and a year.
NAME, CONCEPT, NUMBER, DATE, YEAR = "n:", "c:", "#:", "d:", "y:"
# How much a shared key of each kind says about the event rather than the topic. Concepts
# (NATO, Germany) and years are what a whole topic shares; a date or a number is the event's.
_WEIGHTS: Final[Mapping[str, float]] = {NAME: 1.0, CONCEPT: 0.3, NUMBER: 1.2, DATE: 1.5, YEAR: 0.4}
# Added to the score per shared date or telling number, for at most three of them.
_TELLING_BONUS: Final = 0.1
_ROUND = re.compile(r"[1-9]0+")
# Kinds that count as specific evidence for min_shared and the candidate search.
_SPECIFIC: Final = (NAME, NUMBER, DATE)
# Terms and keys kept per article: enough for any article's core, bounded for the index.
MAX_TERMS: Final = 60
MAX_KEYS: Final = 80

_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*")
_ELISION = re.compile(r"(?:[ldjnmtsc]|qu|jusqu|lorsqu|puisqu)['’](?=\w)", re.IGNORECASE)
_POSSESSIVE = re.compile(r"['’]s$")
# What ends a sentence (or opens a quote): a capitalised word after it may be any word.
_SENTENCE_ENDS: Final = frozenset(".!?…:;—–-•*")
# Quotation marks are looked through: «Берёзовская» mid-sentence is a name, a quote opening a
# sentence is not.
_QUOTES: Final = frozenset("\"'«»“”„‹›‘’")
# Numbers with thousands separators ("1,200", "1 200", "1.200") or a decimal part ("7,8").
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:[  .,]\d{3})+|\d+(?:[.,]\d+)?)(?![\w])")
_DATE = re.compile(
    r"(?:(?<![\w.,])(?P<before>\d{1,2})\.?\s+(?:de\s+)?)?(?P<month>[^\W\d_]{3,})"
    r"(?(before)|\s+(?P<after>\d{1,2})(?![\d.,]\d))"
)
_THOUSANDS = re.compile(r"\d{1,3}(?:([  .,])\d{3})+")
_MONTHS: Final[Mapping[int, tuple[str, ...]]] = {
    1: ("january", "jan", "январ", "січн", "janvier", "januar", "jänner", "enero"),
    2: ("february", "feb", "феврал", "лют", "février", "fevrier", "februar", "febrero"),
    3: ("march", "мар", "берез", "mars", "märz", "marz", "marzo"),
    4: ("april", "apr", "апрел", "квіт", "avril", "abril"),
    5: ("may", "ма", "трав", "mai", "mayo"),
    6: ("june", "jun", "июн", "черв", "juin", "juni", "junio"),
    7: ("july", "jul", "июл", "лип", "juillet", "juli", "julio"),
    8: ("august", "aug", "август", "серп", "août", "aout", "agosto"),
    9: ("september", "sept", "sep", "сентябр", "верес", "septembre", "septiembre"),
    10: ("october", "oct", "октябр", "жовт", "octobre", "oktober", "octubre"),
    11: ("november", "nov", "ноябр", "листопад", "novembre", "noviembre"),
    12: ("december", "dec", "декабр", "груд", "décembre", "decembre", "dezember", "diciembre"),
}
# Whole month words: the stems above are matched only as the start of these words.
_MONTH_WORD = re.compile(
    r"^(?:"
    r"jan(?:uary|vier|uar)?|jänner|enero|январ[ьяюе]|січ(?:ень|ня|ні)|"
    r"feb(?:ruary|rero|ruar)?|f[ée]vrier|феврал[ьяюе]|лют(?:ий|ого|ому)|"
    r"march|mars|m[äa]rz|marzo|март[ае]?|берез(?:ень|ня|ні)|"
    r"apr(?:il)?|avril|abril|апрел[ьяюе]|квіт(?:ень|ня|ні)|"
    r"may|mai|mayo|ма[яйе]|трав(?:ень|ня|ні)|"
    r"june?|juin|juni|junio|июн[ьяюе]|черв(?:ень|ня|ні)|"
    r"july?|juillet|juli|julio|июл[ьяюе]|лип(?:ень|ня|ні)|"
    r"aug(?:ust)?|ao[uû]t|agosto|август[ае]?|серп(?:ень|ня|ні)|"
    r"sept?(?:ember)?|septembre|septiembre|сентябр[ьяюе]|верес(?:ень|ня|ні)|"
    r"oct(?:ober)?|octobre|oktober|octubre|октябр[ьяюе]|жовт(?:ень|ня|ні)|"
    r"nov(?:ember)?|novembre|noviembre|ноябр[ьяюе]|листопад(?:а|і)?|"
    r"dec(?:ember)?|d[ée]cembre|dezember|diciembre|декабр[ьяюе]|груд(?:ень|ня|ні)"
    r")$"
)
# Russian and Ukrainian case endings taken off a name before transliteration, longest first;
# the vowels the skeleton drops anyway need no entry.
_CYRILLIC_ENDING = re.compile(
    r"(?:ого|его|ому|ему|ыми|ими|ами|ями|ові|еві|ом|ем|ой|ей|ій|ым|им|ах|ях|ам|ям|ую|юю)$"
)
_WEEKDAYS: Final = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday "
    "montag dienstag mittwoch donnerstag freitag samstag sonnabend sonntag "
    "lundi mardi mercredi jeudi vendredi samedi dimanche "
    "lunes martes miércoles jueves viernes sábado domingo "
    "понедельник вторник среда среду четверг пятница пятницу суббота субботу воскресенье "
    "понеділок вівторок середа середу четвер п'ятниця п'ятницю субота суботу неділя неділю".split()
)
_GERMAN_DETERMINERS: Final = frozenset(
    "der die das den dem des ein eine einem einen einer eines kein keine keinen keinem keiner "
    "im am vom zum zur beim ins ans aufs dieser diese dieses diesen diesem jeder jede jedes "
    "jeden jedem alle allen aller viele vielen mehrere mehreren beide beiden sein seine seinen "
    "seinem seiner ihr ihre ihren ihrem ihrer unser unsere unseren".split()
)
_GERMAN_NOUN_SUFFIX = re.compile(
    r"(?:ung|ungen|heit|heiten|keit|keiten|schaft|schaften|tion|tionen|sion|sionen|tät|täten|"
    r"ismus|nis|nisse|tum|ment|ments|ling|linge|chen|kräfte|leute|beamte|beamten|zentrum|"
    r"amt|ämter|rat|räte|werk|werke|gebiet|gebiete|kasse|straße|stelle|stellen|"
    # Offices before a name: "Bürgermeister Ralf Péus", "Ministerpräsident Wüst".
    r"meister|minister|präsident|sprecher|sprecherin|kanzler|kanzlerin|chef|chefin|leiter|"
    r"leiterin|direktor|direktorin)$"
)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
# Spelling variants that transliteration leaves apart, folded before vowels are dropped:
# Мюнхен/Munchen, Вашингтон/Washington, Гельсінкі/Helsinki, Ryutte/Rutte.
_FOLDS: Final = (
    ("tsch", "ch"),
    ("sch", "sh"),
    ("kh", "h"),
    ("ch", "h"),
    ("ph", "f"),
    ("ck", "k"),
    ("qu", "kv"),
    ("q", "k"),
    ("x", "ks"),
    ("w", "v"),
    ("ts", "z"),
    ("tz", "z"),
    ("c", "k"),
    ("g", "h"),
)
_DROPPED = re.compile(r"[aeiouyjh'’\-\s]")
_REPEATS = re.compile(r"(.)\1+")


@dataclass(frozen=True, slots=True)
class EventConfig:
    """When two reports count as one event; the defaults were chosen on tests/fixtures/events.

    ``window_hours``: the most two reports' times may differ. ``threshold`` and
    ``cross_threshold``: the least score within one language and across two. ``min_shared``:
    specific keys (names, numbers, dates) two reports must share to be compared at all.
    ``max_candidates``: earlier reports compared per article, the best-matching first.
    ``enabled``: False keeps stories to copies alone.
    """

    enabled: bool = True
    window_hours: float = 72.0
    threshold: float = 0.16
    cross_threshold: float = 0.10
    min_shared: int = 2
    max_candidates: int = 50


DEFAULT_EVENT_CONFIG: Final = EventConfig()


@dataclass(frozen=True, slots=True)
class EventSignature:
    """What an article says about its event: keys any language shares, and its own words.

    ``keys``: sorted, unique, each prefixed by its kind (``n:`` name skeleton, ``c:`` concept,
    ``#:`` number, ``d:`` month-day, ``y:`` year), with ``key_counts`` its mentions (one more
    each in the title and in the lead). ``terms``: content-word stems in the article's
    language, most frequent first, with ``term_counts``. ``title``: the title's keys and stems.
    """

    keys: tuple[str, ...]
    key_counts: tuple[int, ...]
    terms: tuple[str, ...]
    term_counts: tuple[int, ...]
    title: tuple[str, ...]
    lead: tuple[str, ...] = ()

    def document(self) -> dict[str, list[str] | list[int]]:
        """The signature as article document fields."""
        return {
            "event_keys": list(self.keys),
            "event_key_counts": list(self.key_counts),
            "event_terms": list(self.terms),
            "event_term_counts": list(self.term_counts),
            "event_title": list(self.title),
            "event_lead": list(self.lead),
        }

    @classmethod
    def from_document(cls, source: Mapping[str, Any]) -> EventSignature | None:
        """The signature stored on an article document, or None when it has none."""
        keys = source.get("event_keys")
        counts = source.get("event_key_counts")
        if not isinstance(keys, list) or not isinstance(counts, list):
            return None
        return cls(
            keys=tuple(str(k) for k in keys),
            key_counts=tuple(int(c) for c in counts),
            terms=tuple(str(t) for t in source.get("event_terms") or ()),
            term_counts=tuple(int(c) for c in source.get("event_term_counts") or ()),
            title=tuple(str(t) for t in source.get("event_title") or ()),
            lead=tuple(str(t) for t in source.get("event_lead") or ()),
        )

    def key_vector(self) -> dict[str, float]:
        """Each key's weight: its kind's, more for more mentions."""
        return {
            k: _WEIGHTS[k[:2]] * (1 + math.log(c))
            for k, c in zip(self.keys, self.key_counts, strict=True)
        }

    def term_vector(self) -> dict[str, float]:
        """Each term's weight, more for more mentions."""
        return {t: 1 + math.log(c) for t, c in zip(self.terms, self.term_counts, strict=True)}


@dataclass(frozen=True, slots=True)
class Evidence:
    """How two reports compare, part by part, and whether they are one event."""

    score: float
    joined: bool
    reason: str
    shared: tuple[str, ...]
    keys: float
    terms: float
    title: float
    coverage: float
    telling: int
    hours_apart: float
    same_language: bool


def signature(title: str, text: str, language: str) -> EventSignature:
    """The event evidence of one article: its keys, and its terms in ``language``."""
    stop = _stoplist(language)
    text = _prose(text)
    body_keys = _keys(text, stop, language)
    # A title capitalises every word in some styles: its names count when the body has them.
    known = set(body_keys)
    title_keys = [k for k in _keys(title, stop, language) if k in known or not k.startswith(NAME)]
    # The title and the lead say what the report is about: their keys and words count twice.
    lead = text[: _lead_end(text)]  # from the start: a title-like first line counts too
    lead_keys = _keys(lead, stop, language) if lead else []
    keys = Counter(body_keys + title_keys + lead_keys)
    title_stems = _stems(title, stop)
    terms = Counter(_stems(text, stop) + title_stems * 2)
    ranked_keys = sorted(sorted(keys, key=lambda k: (-keys[k], k))[:MAX_KEYS])
    ranked_terms = sorted(terms, key=lambda t: (-terms[t], t))[:MAX_TERMS]
    return EventSignature(
        keys=tuple(ranked_keys),
        key_counts=tuple(keys[k] for k in ranked_keys),
        terms=tuple(ranked_terms),
        term_counts=tuple(terms[t] for t in ranked_terms),
        title=tuple(sorted(set(title_keys) | set(title_stems))),
        lead=tuple(sorted({k for k in title_keys + lead_keys if not k.startswith(YEAR)})),
    )


def _prose(text: str) -> str:
    """The text without lines that are not prose: menus, tags, bylines, copyright notices.

    Extraction leaves some behind ("Home | World | Sport", "Related: Europe, Politics",
    "© 2020 Example News."), and their capitalised words would pass for names.
    """
    return "\n".join(line for line in text.splitlines() if _is_prose(line))


def _is_prose(line: str) -> bool:
    words = line.split()
    if "|" in line or "©" in line or not words:
        return False
    if line.rstrip().endswith((".", "!", "?", "»", "”", '"')):
        return True
    capitalised = sum(1 for word in words if word[:1].isupper())
    return len(words) >= 6 and capitalised * 2 < len(words)


def _lead_end(text: str) -> int:
    """Where the lead ends: the first paragraph of a dozen words or more, at most 400 characters.

    Shorter lines first ("Breaking news: follow our live coverage") are not what it is about.
    """
    start = 0
    for paragraph in text.split("\n"):
        if len(paragraph.split()) >= 12:
            return min(start + len(paragraph), start + 400)
        start += len(paragraph) + 1
    return min(len(text), 400)


def specific_keys(keys: Iterable[str]) -> list[str]:
    """The keys that tell one event from another of its topic: names, numbers, dates."""
    return [k for k in keys if k.startswith(_SPECIFIC)]


def compare(
    a: EventSignature,
    a_language: str,
    a_time: datetime,
    b: EventSignature,
    b_language: str,
    b_time: datetime,
    config: EventConfig = DEFAULT_EVENT_CONFIG,
) -> Evidence:
    """Weigh the evidence that two reports tell one event; symmetric in its two sides.

    The score is the reports' likeness (keys, and within one language their words and titles)
    scaled by how much of each one's lead the other has, plus a bonus per shared date or
    telling number (7.8, 212,000; not 10 or 100), all discounted by the time between them:
    reports of one happening come within hours, another happening of the topic days later.
    """
    hours = abs((a_time - b_time).total_seconds()) / 3600
    same_language = a_language == b_language and a_language not in ("", "und")
    shared = tuple(sorted(set(a.keys) & set(b.keys)))
    # What each report leads with (who, where, how many) must be in the other one: reports of
    # two events of one topic lead with different places and people.
    coverage = math.sqrt(_coverage(a.lead, b.keys) * _coverage(b.lead, a.keys))
    key_score = _cosine(a.key_vector(), b.key_vector())
    if same_language:
        term_score = _cosine(a.term_vector(), b.term_vector())
        title_score = _set_cosine(a.title, b.title)
        likeness = 0.3 * key_score + 0.7 * term_score + 0.15 * title_score
        threshold = config.threshold
    else:
        term_score = 0.0
        title_keys = [t for t in a.title if ":" in t], [t for t in b.title if ":" in t]
        title_score = _set_cosine(*title_keys)
        likeness = 0.85 * key_score + 0.15 * title_score
        threshold = config.cross_threshold
    telling = sum(1 for key in shared if _telling(key))
    decay = 1 - 0.5 * min(hours / config.window_hours, 1.0)
    score = (likeness * coverage + _TELLING_BONUS * min(telling, 3)) * decay
    specific = len(specific_keys(shared))
    if hours > config.window_hours:
        joined, reason = False, f"{hours:.0f} h apart, more than {config.window_hours:g} h"
    elif specific < config.min_shared:
        joined, reason = False, f"{specific} names, numbers or dates shared, fewer than"
        reason += f" {config.min_shared}"
    elif score < threshold:
        joined, reason = False, f"score {score:.3f} below {threshold:g}"
    else:
        joined, reason = True, f"score {score:.3f} at least {threshold:g}"
    return Evidence(
        score=round(score, 4),
        joined=joined,
        reason=reason,
        shared=shared,
        keys=round(key_score, 4),
        terms=round(term_score, 4),
        title=round(title_score, 4),
        coverage=round(coverage, 4),
        telling=telling,
        hours_apart=round(hours, 2),
        same_language=same_language,
    )


def _telling(key: str) -> bool:
    """A date, or a number few other stories would give: with decimals or 3+ digits, not round."""
    if key.startswith(DATE):
        return True
    if not key.startswith(NUMBER):
        return False
    value = key[len(NUMBER) :]
    return "." in value or (len(value) >= 3 and not _ROUND.fullmatch(value))


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Cosine of two weighted sets."""
    if not a or not b:
        return 0.0
    common = sum(weight * b[key] for key, weight in a.items() if key in b)
    norm = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return common / norm if norm else 0.0


def _coverage(lead: Sequence[str], keys: Sequence[str]) -> float:
    """The weighted share of a lead's keys that the other report has; 1 without a lead."""
    if not lead:
        return 1.0
    other = set(keys)
    total = sum(_WEIGHTS[k[:2]] for k in lead)
    return sum(_WEIGHTS[k[:2]] for k in lead if k in other) / total


def _set_cosine(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return 0.0
    return len(set(a) & set(b)) / math.sqrt(len(set(a)) * len(set(b)))


def _keys(text: str, stop: frozenset[str], language: str) -> list[str]:
    """Names, concepts, numbers and dates of a text, one key per mention."""
    vocabulary = _vocabulary()
    keys: list[str] = []
    words = _words(text)
    opening = [_opens_sentence(text, start) for _, start in words]
    # A capitalised word opening a sentence is a name only when it is capitalised mid-sentence
    # somewhere too: "Officials said" is not a name, "Korotchenko said" is.
    names_midsentence = {w for (w, _), first in zip(words, opening, strict=True) if not first}
    index = 0
    while index < len(words):
        concept, length = _concept_at(words, index, vocabulary)
        if concept is not None:
            keys.append(CONCEPT + concept)
            index += length
            continue
        word = words[index][0]
        index += 1
        if not word[:1].isupper() or word.lower() in stop:
            continue
        if opening[index - 1] and word not in names_midsentence:
            continue
        if _not_a_name(word, words[index - 2][0] if index >= 2 else "", language):
            continue
        skeleton = _skeleton(word)
        if len(skeleton) >= 2:
            keys.append(NAME + skeleton)
    dates, days = _dates(text)
    keys += dates
    keys += _numbers(text, days)
    return keys


def _not_a_name(word: str, previous: str, language: str) -> bool:
    """Whether a capitalised word is a weekday, a month or (in German) a common noun.

    German capitalises every noun. One after an article or a determiner ("die Feuerwehr",
    "im Kanton") or with a noun's suffix ("Regierung", "Gemeinschaft") is taken for a noun;
    names stand alone ("Merz sagte", "in Bestwig").
    """
    lower = word.lower()
    if lower in _WEEKDAYS or _month(word) is not None:
        return True
    if language != "de":
        return False
    return previous.lower() in _GERMAN_DETERMINERS or bool(_GERMAN_NOUN_SUFFIX.search(lower))


def _words(text: str) -> list[tuple[str, int]]:
    """The words of a text with where they start, without elisions and possessives.

    l'OTAN and d'Allemagne give OTAN and Allemagne, Moscow's and USSR’s give Moscow and USSR.
    """
    words: list[tuple[str, int]] = []
    for match in _WORD.finditer(text):
        word, start = match.group(), match.start()
        elided = _ELISION.match(word)
        if elided:
            word, start = word[elided.end() :], start + elided.end()
        words.append((_POSSESSIVE.sub("", word), start))
    return words


def _opens_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` opens the text, a paragraph or a sentence."""
    position = start - 1
    while position >= 0 and (text[position].isspace() or text[position] in _QUOTES):
        if text[position] == "\n":
            return True
        position -= 1
    return position < 0 or text[position] in _SENTENCE_ENDS


def _skeleton(word: str) -> str:
    """A name's consonant skeleton: Коротченко, Korotchenko and Korotschenko give krtnk."""
    if _CYRILLIC.search(word):
        stripped = _CYRILLIC_ENDING.sub("", word.lower())
        word = stripped if len(stripped) >= 4 else word.lower()
    latin = anyascii(word).lower()
    for old, new in _FOLDS:
        latin = latin.replace(old, new)
    consonants = _DROPPED.sub("", latin)
    return _REPEATS.sub(r"\1", "".join(ch for ch in consonants if ch.isalpha()))


def _numbers(text: str, days: Sequence[tuple[int, int]]) -> list[str]:
    """Number keys, years apart, days of dates left out; groups of three digits are thousands."""
    keys: list[str] = []
    for match in _NUMBER.finditer(text):
        if match.span(1) in days:
            continue
        raw = match.group(1)
        if _THOUSANDS.fullmatch(raw):
            value = re.sub(r"\D", "", raw)
        else:
            value = raw.replace(",", ".")
            if "." in value:
                value = value.rstrip("0").rstrip(".")
        if not value:
            continue
        if "." not in value and len(value) == 4 and 1900 <= int(value) <= 2100:
            keys.append(YEAR + value)
        elif "." in value or int(value) >= 10:  # 1 to 9 are in every story
            keys.append(NUMBER + value)
    return keys


def _dates(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Month-day keys of "31 March", "March 31", "31. März", "31 марта", "31 de marzo".

    Also the spans of their day numbers, which are not counted as numbers.
    """
    keys: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _DATE.finditer(text):
        month = _month(match.group("month"))
        day = match.group("before") or match.group("after")
        if month is None or day is None or not 1 <= int(day) <= 31:
            continue
        keys.append(f"{DATE}{month:02d}-{int(day):02d}")
        group = "before" if match.group("before") else "after"
        spans.append(match.span(group))
    return keys, spans


def _month(word: str) -> int | None:
    lower = word.lower()
    if not _MONTH_WORD.match(lower):
        return None
    for month, stems in _MONTHS.items():
        if any(lower.startswith(stem) for stem in stems):
            return month
    return None


def _stems(text: str, stop: frozenset[str]) -> list[str]:
    """Content words cut to a stem of six letters: a cheap stand-in for per-language stemming."""
    stems = []
    for word, _ in _words(text):
        word = word.lower()
        if len(word) < 4 or word in stop:
            continue
        stems.append(word[:6])
    return stems


@cache
def _stoplist(language: str) -> frozenset[str]:
    # justext's stop list of the language (pipeline/languages.py names it), where it has one.
    entry = table_entry(language)
    if entry is None or entry.justext is None:
        return frozenset()
    return frozenset(justext.get_stoplist(entry.justext))


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    exact: Mapping[tuple[str, ...], str]  # words (case-folded, or as written for capitals)
    prefixes: Sequence[tuple[str, str]]  # (lower-case prefix, concept), longest first
    longest: int


@cache
def _vocabulary() -> _Vocabulary:
    path = resources.files("pipeline.normalise").joinpath("data/event_vocabulary.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    exact: dict[tuple[str, ...], str] = {}
    prefixes: list[tuple[str, str]] = []
    for group in data.values():
        for concept, forms in group.items():
            for form in forms:
                form = str(form)
                if form.endswith("*"):
                    prefixes.append((form[:-1].lower(), concept))
                    continue
                words = tuple(_WORD.findall(form))
                if not words:
                    continue
                exact[words if form.isupper() else tuple(w.lower() for w in words)] = concept
    prefixes.sort(key=lambda p: (-len(p[0]), p[0]))
    return _Vocabulary(exact, prefixes, max((len(w) for w in exact), default=1))


def _concept_at(
    words: Sequence[tuple[str, int]], index: int, vocabulary: _Vocabulary
) -> tuple[str | None, int]:
    """The vocabulary concept starting at word ``index``, and how many words it spans."""
    for length in range(min(vocabulary.longest, len(words) - index), 0, -1):
        written = tuple(w for w, _ in words[index : index + length])
        concept = vocabulary.exact.get(written) or vocabulary.exact.get(
            tuple(w.lower() for w in written)
        )
        if concept is not None:
            return concept, length
    lower = words[index][0].lower()
    for prefix, concept in vocabulary.prefixes:
        if lower.startswith(prefix):
            return concept, 1
    return None, 0
