"""Language detection: langdetect's model, seeded and vectorised, on a sample of title and text."""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal

import numpy as np
from langdetect.detector import Detector
from langdetect.detector_factory import DetectorFactory
from langdetect.utils.ngram import NGram

__all__ = ["UNDETERMINED", "LanguageResult", "detect_language"]

UNDETERMINED: Final = "und"
"""ISO 639-2 code for "undetermined", used when no language can be stated with confidence."""

Method = Literal["detected", "hint", "undetermined"]

# Fixed seed: langdetect draws n-grams at random, so without a seed the same article can get
# a different answer in another process or on a retry.
_SEED: Final = 0
# langdetect's estimator: 7 random walks; each multiplies in one drawn n-gram at a time and
# stops once a language exceeds CONV_THRESHOLD, checked every 5 draws, or after ~1000 draws.
# We multiply a block of 5 draws at once (the products are the same) and draw _CHUNK_BLOCKS
# blocks at a time for all walks still running; most walks converge within 80 draws.
_TRIALS: Final = 7
_BLOCK: Final = 5
_CHUNK_BLOCKS: Final = 16
_CHUNK: Final = _BLOCK * _CHUNK_BLOCKS
# Draw 0, then ITERATION_LIMIT (1000) more draws rounded up to whole chunks.
_MAX_DRAWS: Final = 1 + -(-Detector.ITERATION_LIMIT // _CHUNK) * _CHUNK
# When the 7 walks disagree (typical of short texts), their mean is a coarse vote (6 of 7 is
# 0.857) and was confidently wrong on fixture fragments; _EXTRA_TRIALS more walks make the
# probability honest. Unanimous answers (all walks converged, mean > _UNANIMOUS) stop at 7.
_EXTRA_TRIALS: Final = 28
_UNANIMOUS: Final = 0.99
# Below this many characters (CJK weighted) the walks see few distinct n-grams and can agree
# on a wrong language most of the time (an English 7-word fragment came out "fr" at 0.91), so
# a short sample is only accepted when the walks are unanimous.
_SHORT_CHARS: Final = 100
# Characters of body text handed to the detector, in _WINDOWS pieces from across the text.
# langdetect samples n-grams at random until it converges, so a longer input buys little
# accuracy but costs extraction time; windows from several places keep one foreign-language
# quote, a byline or a footer from deciding the answer.
_SAMPLE_CHARS: Final = 300
_WINDOWS: Final = 3
# One ideograph / kana / hangul syllable carries about as much as a short word, so it counts
# this many characters towards min_chars (8 Chinese characters are a headline, not 8 letters).
_CJK_WEIGHT: Final = 3
# At least this share of the sample's characters must stand in words: tokens of letters,
# combining marks (Devanagari and Thai vowel signs) and punctuation. Real text, titles and
# Chinese with its inner punctuation score over 0.9; random bytes decoded as latin-1, cp1251
# or UTF-8 with replacement characters score under 0.3 (control characters, symbols and
# U+FFFD break almost every token), and langdetect calls such noise "bn" or "vi" at p=1.0.
_MIN_WORD_SHARE: Final = 0.5
# Languages below this probability are left out of the scores (langdetect itself drops < 0.1).
_NEGLIGIBLE: Final = 1e-4
# langdetect knows Chinese in two scripts; downstream only needs the language.
_CODE_ALIASES: Final = {"zh-cn": "zh", "zh-tw": "zh"}
# langdetect's ko and ja profiles contain Han characters, so a short Chinese text can come out
# as confident "ko" or "ja"; real Korean has hangul and real Japanese has kana.
_REQUIRED_SCRIPT: Final = {
    "ko": re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"),
    "ja": re.compile(r"[\u3040-\u30ff]"),
}
# Scripts of languages without a profile whose letters still turn up in some profiles (stray
# Georgian letters in Estonian's, say), so a Georgian article came out "et" at p=1.0. Text
# mostly in one of these is no language the detector knows: the source's hint decides.
_UNPROFILED_SCRIPT: Final = re.compile("[\u0530-\u058f\u10a0-\u10ff\u1c90-\u1cbf\u2d00-\u2d2f]")

# URLs, e-mail addresses / handles and numbers carry no language (langdetect maps digits to
# spaces anyway) and would only eat the sample's budget.
_LINK_RE: Final = re.compile(r"(?:\bhttps?://|\bwww\.)\S+|(?<!\S)\S*@\S*", re.IGNORECASE)
_NUMBER_RE: Final = re.compile(r"\d[\d.,:/-]*")
_CJK_RE: Final = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
# langdetect's cleaning_text: "latin" is 'A'..'z' (it includes [\]^_`), "non-latin" is anything
# from U+0300 up except the Latin Extended Additional block.
_LATIN_RE: Final = re.compile(r"[A-z]+")
_NON_LATIN_RE: Final = re.compile("[\u0300-\u1dff\u1f00-\U0010ffff]+")


@dataclass(frozen=True, slots=True)
class LanguageResult:
    """The language of an article: ISO 639-1 code (or "und"), its probability and how we know."""

    language: str
    probability: float
    method: Method


class _Model:
    """langdetect's profiles as a matrix, plus the fixed random draws of its estimator."""

    def __init__(self) -> None:
        profiles = resources.files("langdetect") / "profiles"
        # Sorted, so the language order (and with it every float sum) is the same on every
        # machine; DetectorFactory.load_profile would use os.listdir order.
        texts = [p.read_text(encoding="utf-8") for p in sorted(profiles.iterdir(), key=_name)]
        factory = DetectorFactory()
        factory.load_json_profile(texts)
        self.languages: tuple[str, ...] = tuple(factory.get_lang_list())
        table: dict[str, list[float]] = factory.word_lang_prob_map
        self.index: dict[str, int] = {gram: row for row, gram in enumerate(table)}
        # n-gram x language. float32: numpy's exp/log are SIMD-vectorised for float32 on AVX2
        # machines and not for float64, and the estimator needs nothing like 7 digits.
        self.matrix = np.array(list(table.values()), dtype=np.float32)
        # NGram.normalize maps one character at a time and only changes BMP characters; as a
        # str.translate table it runs in C.
        self.translation: dict[int, str] = {}
        for code in range(0x10000):
            normalised = NGram.normalize(chr(code))
            if normalised != chr(code):
                self.translation[code] = normalised
        # The fixed seed makes every document see the same random stream, so it is drawn once.
        # RandomState, not Generator: numpy guarantees its streams never change across versions.
        rng = np.random.RandomState(_SEED)
        alphas = Detector.ALPHA_DEFAULT + rng.standard_normal(_TRIALS + _EXTRA_TRIALS) * (
            Detector.ALPHA_WIDTH
        )
        self.weights = (alphas / Detector.BASE_FREQ).astype(np.float32)[:, None, None]
        self.uniforms = rng.random_sample((_TRIALS + _EXTRA_TRIALS, _MAX_DRAWS))
        # Lower-triangular ones: block log-products -> running sums at each check point.
        self.cumulative = np.tril(np.ones((_CHUNK_BLOCKS, _CHUNK_BLOCKS), dtype=np.float32))
        self.word_rows = functools.lru_cache(maxsize=1 << 16)(self._word_rows)

    def _word_rows(self, padded: str) -> tuple[int, ...]:
        """Rows of the known n-grams of " word" or " word " (langdetect's NGram window)."""
        index = self.index
        rows: list[int] = []
        for end in range(1, len(padded)):
            ch = padded[end]
            # NGram emits nothing while two capitals follow each other (acronyms).
            if ch.isupper() and padded[end - 1].isupper():
                continue
            # Its window holds at most 3 characters: 1-, 2- and (from the 2nd letter) 3-grams.
            grams = [padded[end - 1 : end + 1]]
            if end >= 2:
                grams.append(padded[end - 2 : end + 1])
            if ch != " ":
                grams.insert(0, ch)
            for gram in grams:
                if (row := index.get(gram)) is not None:
                    rows.append(row)
        return tuple(rows)

    def ngram_rows(self, sample: str) -> list[int]:
        """Matrix rows of the sample's known 1-3-grams, in langdetect's order."""
        # langdetect's cleaning_text: drop Latin letters from mostly non-Latin text.
        without_latin = _LATIN_RE.sub("", sample)
        latin = len(sample) - len(without_latin)
        if latin * 2 < len(sample) - len(_NON_LATIN_RE.sub("", sample)):
            sample = without_latin
        words = sample.translate(self.translation).split(" ")
        last = len(words) - 1
        rows: list[int] = []
        for position, word in enumerate(words):
            if word:
                # A word followed by a space also yields its word-final n-grams ("e ", "he ").
                rows.extend(self.word_rows(" " + word + " " if position < last else " " + word))
        return rows

    def estimate(self, rows: list[int]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Per-language probabilities: the mean of langdetect's random walks over the n-grams.

        Each walk multiplies the profiles of randomly drawn n-grams (smoothed by a jittered
        alpha) until one language holds more than CONV_THRESHOLD, checked every 5 draws, or
        the iteration limit. Same model and algorithm as langdetect's Detector; the walks run
        side by side in numpy and draw from a fixed table instead of Python's random.
        """
        candidates = np.fromiter(rows, dtype=np.intp, count=len(rows))
        total = self._walks(candidates, np.arange(_TRIALS))
        if total.max() / _TRIALS > _UNANIMOUS:
            return total / _TRIALS
        extra = self._walks(candidates, np.arange(_TRIALS, _TRIALS + _EXTRA_TRIALS))
        return (total + extra) / (_TRIALS + _EXTRA_TRIALS)

    def _walks(
        self, candidates: np.ndarray[Any, np.dtype[np.intp]], trials: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Sum over ``trials`` of each walk's final language distribution."""
        count = len(candidates)
        result = np.zeros(len(self.languages))
        # Log space between blocks of 5, because a longer product can underflow. langdetect
        # also checks after draw 0 alone, which can never pass: one n-gram would need a
        # probability over 275 to beat 54 rivals smoothed by alpha / BASE_FREQ at 0.99999.
        picks = candidates[(self.uniforms[trials, 0] * count).astype(np.intp)]
        log_prob = np.log(self.matrix[picks] + self.weights[trials, 0])
        pending = trials
        for start in range(1, _MAX_DRAWS, _CHUNK):
            if not pending.size:
                break
            uniforms = self.uniforms[pending, start : start + _CHUNK]
            picks = candidates[(uniforms * count).astype(np.intp)]
            factors = self.matrix[picks] + self.weights[pending]
            factors = factors.reshape(len(pending), _CHUNK_BLOCKS, _BLOCK, -1)
            # Slice products: numpy's prod over a middle axis is several times slower here.
            blocks = factors[:, :, 0] * factors[:, :, 1]
            for k in range(2, _BLOCK):
                blocks *= factors[:, :, k]
            # Log of each block, summed up to every check point; the prior cancels out.
            path = log_prob[:, None, :] + self.cumulative @ np.log(blocks)
            probs = _softmax(path)
            converged = probs.max(axis=2) > Detector.CONV_THRESHOLD
            if start + _CHUNK >= _MAX_DRAWS:
                converged[:, -1] = True  # the iteration limit
            done = converged.any(axis=1)
            first = converged.argmax(axis=1)
            result += probs[done, first[done]].sum(axis=0, dtype=np.float64)
            log_prob = path[~done, -1]
            # Re-centre so float32 keeps its precision over a long walk.
            log_prob -= log_prob.max(axis=1, keepdims=True)
            pending = pending[~done]
        return result


def _softmax(log_prob: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Normalise log probabilities over the last axis (languages)."""
    probs: np.ndarray[Any, Any] = np.exp(log_prob - log_prob.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs


_model_lock = threading.Lock()
_model: _Model | None = None


def _load_model() -> _Model:
    """Load langdetect's profiles once per process, on first use (~1 s; 19 MB kept)."""
    global _model
    with _model_lock:
        if _model is None:
            _model = _Model()
        return _model


def _name(path: Any) -> str:
    return str(path.name)


def detect_language(
    title: str,
    text: str,
    *,
    hint: str | None = None,
    min_probability: float = 0.80,
    min_chars: int = 40,
) -> LanguageResult:
    """Detect the language of an article from a sample of its title and text.

    Below ``min_chars`` characters (after URLs, e-mail addresses and numbers are removed; CJK
    characters count 3), or when the best language scores under ``min_probability`` (or is not
    unanimous on a sample under 100 characters), or when it is mostly in a script no profile
    covers (Georgian, Armenian), the answer is the source's ``hint`` (method "hint") if one is
    given, else "und". A sample that is mostly not words (binary junk,
    replacement or control characters, symbols) is "und" whatever the hint.
    """
    sample = _sample(title, text)
    hint_code = _normalise_hint(hint)
    length = _weighted_length(sample)
    if length < min_chars:
        return _fallback(hint_code, {}, 0.0)
    if _word_share(sample) < _MIN_WORD_SHARE:
        # Not text in any language, so not in the hinted one either.
        return LanguageResult(UNDETERMINED, 0.0, "undetermined")
    if len(_UNPROFILED_SCRIPT.findall(sample)) * 2 > sum(char.isalpha() for char in sample):
        return _fallback(hint_code, {}, 0.0)
    scores = _scores(sample)
    if not scores:
        return _fallback(hint_code, scores, 0.0)
    language, probability = max(scores.items(), key=lambda item: item[1])
    script = _REQUIRED_SCRIPT.get(language)
    needed = max(min_probability, _UNANIMOUS) if length < _SHORT_CHARS else min_probability
    if probability < needed or (script is not None and not script.search(sample)):
        return _fallback(hint_code, scores, probability)
    return LanguageResult(language, probability, "detected")


def _fallback(hint: str | None, scores: dict[str, float], best: float) -> LanguageResult:
    if hint is not None:
        # The probability is the detector's own estimate for the hinted language (0 if unseen).
        return LanguageResult(hint, scores.get(hint, 0.0), "hint")
    return LanguageResult(UNDETERMINED, best, "undetermined")


def _scores(sample: str) -> dict[str, float]:
    """Language -> probability, with langdetect's codes normalised and aliases summed."""
    model = _load_model()
    # langdetect's own Vietnamese normalisation (combining marks into precomposed letters).
    rows = model.ngram_rows(NGram.normalize_vi(sample))
    if not rows:  # no known n-gram at all: nothing to say, and not an error
        return {}
    probabilities = model.estimate(rows)
    scores: dict[str, float] = {}
    # Only languages that got anywhere: looping over all 55 costs more than the rest here.
    for position in np.flatnonzero(probabilities > _NEGLIGIBLE):
        code = model.languages[position]
        code = _CODE_ALIASES.get(code, code)
        scores[code] = scores.get(code, 0.0) + float(probabilities[position])
    return scores


def _normalise_hint(hint: str | None) -> str | None:
    """Reduce a feed or config language tag ("en-US", "zh_Hans", "DE") to its primary subtag."""
    if not hint:
        return None
    primary = re.split(r"[-_]", hint.strip(), maxsplit=1)[0].lower()
    # A malformed tag from a feed is ignored rather than trusted or raised.
    if not (2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha()):
        return None
    return primary


def _clean(fragment: str) -> str:
    # The substring tests are C-speed; the link pattern is the slow one to run everywhere.
    if "@" in fragment or "://" in fragment or "www." in fragment or "WWW." in fragment:
        fragment = _LINK_RE.sub(" ", fragment)
    return " ".join(_NUMBER_RE.sub(" ", fragment).split())


def _sample(title: str, text: str) -> str:
    """Title plus about _SAMPLE_CHARS of text from _WINDOWS places, cut at word boundaries."""
    pieces = [_clean(title[: _SAMPLE_CHARS * 2])[:_SAMPLE_CHARS]]
    if len(text) <= _SAMPLE_CHARS * 2:
        # Short enough to clean whole; then windows only if the cleaned text is still long.
        text = _clean(text)
        if len(text) <= _SAMPLE_CHARS:
            pieces.append(text)
            return " ".join(p for p in pieces if p)
    width = _SAMPLE_CHARS // _WINDOWS
    for k in range(_WINDOWS):
        # Centres at 1/6, 3/6, 5/6: away from bylines at the top and footers at the bottom.
        centre = len(text) * (2 * k + 1) // (2 * _WINDOWS)
        # Twice the width of raw text, since cleaning may remove URLs and numbers.
        window = _clean(text[max(0, centre - width) : centre + width])
        start = window.find(" ") + 1 if centre > width else 0  # drop a word cut at the front
        window = window[start : start + width]
        if len(window) == width and (cut := window.rfind(" ")) > 0:
            window = window[:cut]  # and one cut at the back
        pieces.append(window)
    return " ".join(p for p in pieces if p)


def _word_share(sample: str) -> float:
    """Share of the sample's non-space characters in tokens made of letters, marks, punctuation.

    A token needs at least one letter; symbols, control and replacement characters spoil it.
    """
    total = in_words = 0
    for token in sample.split():
        total += len(token)
        if token.isalpha() or (
            any(char.isalpha() for char in token)
            and all(unicodedata.category(char)[0] in "LMP" for char in token)
        ):
            in_words += len(token)
    return in_words / total if total else 0.0


def _weighted_length(sample: str) -> int:
    """Characters of the cleaned sample, with CJK characters counted _CJK_WEIGHT times."""
    cjk = len(sample) - len(_CJK_RE.sub("", sample))
    return len(sample) + cjk * (_CJK_WEIGHT - 1)
