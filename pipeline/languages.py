"""The languages newsradar reads: each detector language with its analyser, plugin and stemming.

One table drives everything language-dependent: the title_xx / text_xx fields of the articles
mapping (``devtools/languages.py`` writes them into mappings/articles.json, and a test keeps the
file in sync), which languages a rule may have queries in, what ``newsradar config`` says a rule
covers, the plugins docker/elasticsearch.Dockerfile installs, the analysers the local node's
plugin registers, the same-event stop words, and the README's language table.

The languages are those of the language detector (langdetect's 55 profiles, Chinese in two
scripts counted once), and Georgian, which the detector does not know but a source can declare
(its script is in no profile, so the source's hint decides). A language gets the Elasticsearch
analyser of that name where Lucene analyses it and Elasticsearch names the analyser, so a
production cluster runs the same mapping with analysis-common and the plugins below. The others
fall back to ``FOLDED``, a standard analyser that lower-cases and folds accents: no stemming, so
a rule reaches their inflected forms with a trailing ``*``.

Imports nothing from pipeline, so every stage (settings included) can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "FOLDED",
    "FOLDED_ANALYSER",
    "LANGUAGES",
    "LANGUAGE_CODES",
    "Language",
    "analyse_request",
    "language",
    "language_fields",
    "plugins",
]

# The analyser of languages Lucene does not analyse (or Elasticsearch does not name): defined in
# the articles index settings from parts every Elasticsearch has (lowercase is built in;
# asciifolding is analysis-common's, and the local node's plugin registers it).
FOLDED: Final = "newsradar_folded"
FOLDED_ANALYSER: Final[dict[str, Any]] = {
    "type": "custom",
    "tokenizer": "standard",
    "filter": ["lowercase", "asciifolding"],
}


@dataclass(frozen=True, slots=True)
class Language:
    """One language: its detector code, the analyser of its fields and what that analyser does."""

    code: str  # ISO 639-1, as the detector reports it (zh for both Chinese scripts)
    name: str
    analyser: str  # Elasticsearch's name for it, or FOLDED
    plugin: str | None  # the Elasticsearch plugin production needs; None: analysis-common
    stemming: str  # what the analyser does to a word, for the README and `newsradar config`
    justext: str | None = None  # justext's stop list, for same-event evidence
    detected: bool = True  # False: not among the detector's profiles, known from a source hint

    @property
    def stemmed(self) -> bool:
        """Whether inflected forms meet (a Lucene language analyser rather than the fallback)."""
        return self.analyser != FOLDED

    @property
    def fields(self) -> tuple[str, str]:
        """The article fields analysed in this language: title_xx and text_xx."""
        return f"title_{self.code}", f"text_{self.code}"


def _folded(
    code: str, name: str, justext: str | None, why: str = "", *, detected: bool = True
) -> Language:
    note = "no Lucene analyser: lower-cased, accents folded, no stemming (use a trailing *)"
    return Language(code, name, FOLDED, None, f"{note}{why}", justext, detected)


_SNOWBALL = "Snowball stemmer"
LANGUAGES: Final[tuple[Language, ...]] = (
    _folded("af", "Afrikaans", "Afrikaans"),
    Language(
        "ar",
        "Arabic",
        "arabic",
        None,
        "Arabic normalisation, light stemmer (prefixes and suffixes)",
        "Arabic",
    ),
    Language(
        "bg", "Bulgarian", "bulgarian", None, "light stemmer (case and number endings)", "Bulgarian"
    ),
    Language(
        "bn",
        "Bengali",
        "bengali",
        None,
        "Indic and Bengali normalisation, light stemmer",
        "Bengali",
    ),
    Language("ca", "Catalan", "catalan", None, f"elisions removed, {_SNOWBALL}", "Catalan"),
    Language("cs", "Czech", "czech", None, "light stemmer (case endings, possessives)", "Czech"),
    _folded("cy", "Welsh", "Welsh"),
    Language("da", "Danish", "danish", None, _SNOWBALL, "Danish"),
    Language(
        "de",
        "German",
        "german",
        None,
        "umlauts and ß normalised, light stemmer; compounds stay whole",
        "German",
    ),
    Language(
        "el", "Greek", "greek", None, "accents and final sigma folded, Greek stemmer", "Greek"
    ),
    Language("en", "English", "english", None, "possessive 's removed, Porter stemmer", "English"),
    Language(
        "es", "Spanish", "spanish", None, "light stemmer (plural and gender endings)", "Spanish"
    ),
    Language("et", "Estonian", "estonian", None, _SNOWBALL, "Estonian"),
    Language(
        "fa",
        "Persian",
        "persian",
        None,
        "Arabic and Persian normalisation, Persian stemmer",
        "Persian",
    ),
    Language("fi", "Finnish", "finnish", None, _SNOWBALL, "Finnish"),
    Language(
        "fr", "French", "french", None, "elisions removed, accents folded, light stemmer", "French"
    ),
    _folded("gu", "Gujarati", "Gujarati"),
    _folded("he", "Hebrew", "Hebrew"),
    Language("hi", "Hindi", "hindi", None, "Indic and Hindi normalisation, light stemmer", "Hindi"),
    Language(
        "hr",
        "Croatian",
        "serbian",
        None,
        "the serbian analyser: Serbo-Croatian Snowball stemmer, č ć đ š ž folded",
        "Croatian",
    ),
    Language("hu", "Hungarian", "hungarian", None, _SNOWBALL, "Hungarian"),
    Language("id", "Indonesian", "indonesian", None, "prefixes and suffixes stemmed", "Indonesian"),
    Language("it", "Italian", "italian", None, "elisions removed, light stemmer", "Italian"),
    Language(
        "ja",
        "Japanese",
        "kuromoji",
        "analysis-kuromoji",
        "Kuromoji morphological analysis: words segmented, verbs and adjectives to their base form",
    ),
    # Georgian script is in none of the detector's profiles: such an article has no n-gram the
    # detector knows, so it takes its source's hint (``language: ka`` in sources.yaml).
    _folded(
        "ka",
        "Georgian",
        "Georgian",
        "; not detected: set by the source's language: ka",
        detected=False,
    ),
    _folded("kn", "Kannada", "Kannada"),
    Language(
        "ko",
        "Korean",
        "nori",
        "analysis-nori",
        "Nori morphological analysis: compounds split, particles and endings dropped",
        "Korean",
    ),
    Language("lt", "Lithuanian", "lithuanian", None, _SNOWBALL, "Lithuanian"),
    Language("lv", "Latvian", "latvian", None, "light stemmer (case endings)", "Latvian"),
    _folded("mk", "Macedonian", "Macedonian"),
    _folded("ml", "Malayalam", "Malayalam"),
    _folded("mr", "Marathi", "Marathi"),
    _folded("ne", "Nepali", "Nepali", "; Lucene's Nepali analyser has no Elasticsearch name"),
    Language(
        "nl", "Dutch", "dutch", None, f"{_SNOWBALL} with exceptions for irregular forms", "Dutch"
    ),
    Language("no", "Norwegian", "norwegian", None, f"{_SNOWBALL} (Bokmål)", "Norwegian_Bokmal"),
    _folded("pa", "Punjabi", None),
    Language(
        "pl",
        "Polish",
        "polish",
        "analysis-stempel",
        "Stempel statistical stemmer (a learned table; odd stems for names: NATO -> na)",
        "Polish",
    ),
    Language(
        "pt",
        "Portuguese",
        "portuguese",
        None,
        "light stemmer (plural, gender, augmentatives)",
        "Portuguese",
    ),
    Language("ro", "Romanian", "romanian", None, _SNOWBALL, "Romanian"),
    Language("ru", "Russian", "russian", None, f"{_SNOWBALL}; \u0451 read as \u0435", "Russian"),
    _folded("sk", "Slovak", "Slovak"),
    _folded("sl", "Slovenian", "Slovenian"),
    _folded("so", "Somali", None),
    _folded("sq", "Albanian", "Albanian"),
    Language("sv", "Swedish", "swedish", None, _SNOWBALL, "Swedish"),
    _folded("sw", "Swahili", "Swahili"),
    _folded("ta", "Tamil", "Tamil", "; Lucene's Tamil analyser has no Elasticsearch name"),
    _folded("te", "Telugu", "Telugu", "; Lucene's Telugu analyser has no Elasticsearch name"),
    Language("th", "Thai", "thai", None, "dictionary word segmentation; Thai does not inflect"),
    _folded("tl", "Tagalog", "Tagalog"),
    Language(
        "tr",
        "Turkish",
        "turkish",
        None,
        f"apostrophe suffixes cut, Turkish i, {_SNOWBALL}",
        "Turkish",
    ),
    Language(
        "uk",
        "Ukrainian",
        "ukrainian",
        "analysis-ukrainian",
        "morfologik dictionary: each word to its lemmas",
        "Ukrainian",
    ),
    _folded("ur", "Urdu", "Urdu"),
    _folded("vi", "Vietnamese", "Vietnamese"),
    Language(
        "zh",
        "Chinese",
        "smartcn",
        "analysis-smartcn",
        "SmartCN word segmentation (simplified script); Chinese does not inflect",
    ),
)

LANGUAGE_CODES: Final = tuple(entry.code for entry in LANGUAGES)
_BY_CODE: Final = {entry.code: entry for entry in LANGUAGES}


def language(code: str) -> Language | None:
    """The table's entry for ``code``, or None for a language newsradar does not know."""
    return _BY_CODE.get(code)


def plugins() -> tuple[str, ...]:
    """The Elasticsearch plugins the analysers need beyond analysis-common, sorted."""
    return tuple(sorted({entry.plugin for entry in LANGUAGES if entry.plugin is not None}))


def language_fields() -> dict[str, dict[str, Any]]:
    """The articles mapping's title_xx / text_xx properties, one pair per language."""
    fields: dict[str, dict[str, Any]] = {}
    for entry in LANGUAGES:
        for name in entry.fields:
            fields[name] = {"type": "text", "analyzer": entry.analyser}
    return fields


def analyse_request(code: str) -> dict[str, Any]:
    """Arguments of Elasticsearch's _analyze API that analyse text as ``code``'s fields do.

    The folding analyser lives in the articles index settings, so outside an index it is given
    by its parts.
    """
    entry = _BY_CODE[code]
    if entry.stemmed:
        return {"analyzer": entry.analyser}
    return {"tokenizer": FOLDED_ANALYSER["tokenizer"], "filter": list(FOLDED_ANALYSER["filter"])}
