"""The words of a news text that survive translation: names, concepts, numbers and dates.

Read by ``pipeline.normalise.events`` for its signatures. Names are capitalised words that are
not the first of a sentence (unless capitalised mid-sentence too), reduced to a consonant
skeleton of their transliteration; organisations and places come from a shipped vocabulary in
six languages; numbers and month-day dates are read as each of those languages writes them.
Menus, tag lines and bylines left by extraction are not prose and give nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import justext
import yaml
from anyascii import anyascii

from pipeline.languages import language as table_entry

__all__ = [
    "CONCEPT",
    "DATE",
    "NAME",
    "NUMBER",
    "YEAR",
    "keys_of",
    "lead_end",
    "prose",
    "stems",
    "stoplist",
    "words_of",
]

# Key kinds, the prefix of each key: a name's skeleton, a vocabulary concept, a number, a
# calendar date (month-day) and a year.
NAME, CONCEPT, NUMBER, DATE, YEAR = "n:", "c:", "#:", "d:", "y:"
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*")
_ELISION = re.compile(r"(?:[ldjnmtsc]|qu|jusqu|lorsqu|puisqu)['’](?=\w)", re.IGNORECASE)
_POSSESSIVE = re.compile(r"['’]s$")
# What ends a sentence (or opens a quote): a capitalised word after it may be any word.
_SENTENCE_ENDS: Final = frozenset(".!?…:;—–-•*")
# Quotation marks are looked through: «Берёзовская» mid-sentence is a name, a quote opening a
# sentence is not.
_QUOTES: Final = frozenset("\"'«»“”„‹›‘’")
# Numbers with thousands separators ("1,200", "1 200", "1.200") or a decimal part ("7,8").
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+|\d+(?:[.,]\d+)?)(?![\w])")
# A month word, and the day before it ("31 марта", "31. März", "31 de marzo") or after it
# ("March 31"), looked for around each month word so that "в Москве 14 марта" finds it.
_MONTH_CANDIDATE = re.compile(r"[^\W\d_]{3,}")
_DAY_BEFORE = re.compile(r"(?<![\w.,])(\d{1,2})\.?\s+(?:de\s+)?$")
_DAY_AFTER = re.compile(r"\s+(\d{1,2})(?![\d.,]\d|\w)")
_THOUSANDS = re.compile(r"\d{1,3}(?:([ \u00a0\u202f.,])\d{3})+")
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


def prose(text: str) -> str:
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


def lead_end(text: str) -> int:
    """Where the lead ends: the first paragraph of a dozen words or more, at most 400 characters.

    Shorter lines first ("Breaking news: follow our live coverage") are not what it is about.
    """
    start = 0
    for paragraph in text.split("\n"):
        if len(paragraph.split()) >= 12:
            return min(start + len(paragraph), start + 400)
        start += len(paragraph) + 1
    return min(len(text), 400)


def keys_of(
    text: str, stop: frozenset[str], language: str, words: Sequence[tuple[str, int]] | None = None
) -> list[tuple[str, int]]:
    """Names, concepts, numbers and dates of a text, one (key, position) per mention.

    ``words`` are the text's ``words_of``, when the caller has them already.
    """
    vocabulary = _vocabulary()
    keys: list[tuple[str, int]] = []
    words = words_of(text) if words is None else words
    # Only capitalised words can be names: only they are asked whether they open a sentence.
    opening = {
        index: _opens_sentence(text, start)
        for index, (word, start) in enumerate(words)
        if word[:1].isupper()
    }
    # A capitalised word opening a sentence is a name only when it is capitalised mid-sentence
    # somewhere too: "Officials said" is not a name, "Korotchenko said" is.
    names_midsentence = {words[index][0] for index, first in opening.items() if not first}
    index = 0
    while index < len(words):
        concept, length = _concept_at(words, index, vocabulary)
        word, start = words[index]
        if concept is not None:
            keys.append((CONCEPT + concept, start))
            index += length
            continue
        index += 1
        if not word[:1].isupper() or word.lower() in stop:
            continue
        if opening[index - 1] and word not in names_midsentence:
            continue
        if _not_a_name(word, words[index - 2][0] if index >= 2 else "", language):
            continue
        skeleton = _skeleton(word)
        if len(skeleton) >= 2:
            keys.append((NAME + skeleton, start))
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


def words_of(text: str) -> list[tuple[str, int]]:
    """The words of a text with where they start, without elisions and possessives.

    l'OTAN and d'Allemagne give OTAN and Allemagne, Moscow's and USSR’s give Moscow and USSR.
    """
    words: list[tuple[str, int]] = []
    for match in _WORD.finditer(text):
        word, start = match.group(), match.start()
        if "'" in word or "’" in word:  # the regexes only for the few words they can change
            elided = _ELISION.match(word)
            if elided:
                word, start = word[elided.end() :], start + elided.end()
            word = _POSSESSIVE.sub("", word)
        words.append((word, start))
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


def _numbers(text: str, days: Sequence[tuple[int, int]]) -> list[tuple[str, int]]:
    """Number keys, years apart, days of dates left out; groups of three digits are thousands."""
    keys: list[tuple[str, int]] = []
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
            keys.append((YEAR + value, match.start()))
        elif "." in value or int(value) >= 10:  # 1 to 9 are in every story
            keys.append((NUMBER + value, match.start()))
    return keys


def _dates(text: str) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
    """Month-day keys of "31 March", "March 31", "31. März", "31 марта", "31 de marzo".

    Also the spans of their day numbers, which are not counted as numbers.
    """
    keys: list[tuple[str, int]] = []
    spans: list[tuple[int, int]] = []
    for match in _MONTH_CANDIDATE.finditer(text):
        month = _month(match.group())
        if month is None:
            continue
        before = _DAY_BEFORE.search(text, max(0, match.start() - 8), match.start())
        after = _DAY_AFTER.match(text, match.end(), match.end() + 6)
        day = before or after
        if day is None or not 1 <= int(day.group(1)) <= 31:
            continue
        keys.append((f"{DATE}{month:02d}-{int(day.group(1)):02d}", day.start(1)))
        spans.append(day.span(1))
    return keys, spans


def _month(word: str) -> int | None:
    lower = word.lower()
    if not _MONTH_WORD.match(lower):
        return None
    for month, stems in _MONTHS.items():
        if any(lower.startswith(stem) for stem in stems):
            return month
    return None


def stems(words: Sequence[tuple[str, int]], stop: frozenset[str]) -> list[str]:
    """Content words cut to a stem of six letters: a cheap stand-in for per-language stemming."""
    stems = []
    for word, _ in words:
        word = word.lower()
        if len(word) < 4 or word in stop:
            continue
        stems.append(word[:6])
    return stems


@cache
def stoplist(language: str) -> frozenset[str]:
    """The language's stop words (justext's lists), empty for a language it does not know."""
    # pipeline/languages.py names justext's list for each language that has one.
    entry = table_entry(language)
    if entry is None or entry.justext is None:
        return frozenset()
    return frozenset(justext.get_stoplist(entry.justext))


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    exact: Mapping[tuple[str, ...], str]  # words (case-folded, or as written for capitals)
    # First word (case-folded) of an exact form -> the word counts of its forms, longest first:
    # most words start no form, and cost one lookup.
    starts: Mapping[str, tuple[int, ...]]
    # The first _STEM letters of a prefix form -> (prefix, concept), longest first.
    prefixes: Mapping[str, tuple[tuple[str, str], ...]]


# Every prefix form has at least this many letters (the vocabulary's rule against short stems).
_STEM: Final = 4


@cache
def _vocabulary() -> _Vocabulary:
    path = resources.files("pipeline.normalise").joinpath("data/event_vocabulary.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    exact: dict[tuple[str, ...], str] = {}
    prefixes: dict[str, list[tuple[str, str]]] = {}
    for group in data.values():
        for concept, forms in group.items():
            for form in map(str, forms):
                if form.endswith("*"):
                    prefix = form[:-1].lower()
                    if len(prefix) < _STEM:
                        raise ValueError(f"event vocabulary: {form!r} is shorter than {_STEM}")
                    prefixes.setdefault(prefix[:_STEM], []).append((prefix, concept))
                    continue
                words = tuple(_WORD.findall(form))
                if words:
                    exact[words if form.isupper() else tuple(w.lower() for w in words)] = concept
    starts: dict[str, set[int]] = {}
    for words in exact:
        starts.setdefault(words[0].lower(), set()).add(len(words))
    return _Vocabulary(
        exact,
        {first: tuple(sorted(lengths, reverse=True)) for first, lengths in starts.items()},
        {k: tuple(sorted(v, key=lambda p: (-len(p[0]), p[0]))) for k, v in prefixes.items()},
    )


def _concept_at(
    words: Sequence[tuple[str, int]], index: int, vocabulary: _Vocabulary
) -> tuple[str | None, int]:
    """The vocabulary concept starting at word ``index``, and how many words it spans."""
    lower = words[index][0].lower()
    for length in vocabulary.starts.get(lower, ()):
        if index + length > len(words):
            continue
        written = tuple(w for w, _ in words[index : index + length])
        concept = vocabulary.exact.get(written) or vocabulary.exact.get(
            tuple(w.lower() for w in written)
        )
        if concept is not None:
            return concept, length
    for prefix, concept in vocabulary.prefixes.get(lower[:_STEM], ()):
        if lower.startswith(prefix):
            return concept, 1
    return None, 0
