"""Duplicate detection: exact (content hash) and near (MinHash over word shingles, LSH bands)."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from pipeline.errors import ConfigError, PermanentError

__all__ = [
    "DEFAULT_CONFIG",
    "DedupConfig",
    "DedupVerdict",
    "Fingerprint",
    "FingerprintMismatch",
    "classify",
    "content_hash",
    "estimated_jaccard",
    "fingerprint",
    "normalise_text",
]

# Shingles are runs of this many words. A 10% word edit breaks 1 - 0.9**k of the k-shingles:
# on tests/fixtures/dedup, 10%-edited copies have a median Jaccard of 0.59 at k = 3 but 0.43 at
# k = 5, while distinct same-topic articles reach at most 0.29 (k = 3) and the same event told
# by another outlet 0.19. k = 2 separates these fixtures too, but it makes any two texts in one
# language share function-word pairs ("of the", "in the"), which erodes the margin on real news.
SHINGLE_WORDS: Final = 3
# Fixed, so fingerprints from any process, host or restart are comparable; changing it (or
# SHINGLE_WORDS, or the datasketch scheme) changes every fingerprint and their band keys.
_SEED: Final = 1
_SCHEME: Final = "affine32"
# Band keys carry 32 bits of the band's hash: with 10 million stored articles a lookup of 42
# bands meets a chance collision about 0.1 times, and verification discards it.
_BAND_KEY_BYTES: Final = 4

_WORD_RE: Final = re.compile(r"\w+")
# Chinese and Japanese are written without spaces: each ideograph or kana is one token.
_CJK_CLASS: Final = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE: Final = re.compile(f"[{_CJK_CLASS}]")
_TOKEN_RE: Final = re.compile(f"[{_CJK_CLASS}]|[^\\s{_CJK_CLASS}]+")

Kind = Literal["exact", "near", "new"]

if TYPE_CHECKING:
    from datasketch import MinHash


class FingerprintMismatch(PermanentError):
    """Two fingerprints were made with different parameters and cannot be compared."""

    def __init__(self, left: int, right: int) -> None:
        super().__init__(left, right)
        self.left = left
        self.right = right

    def __str__(self) -> str:
        return f"fingerprints with {self.left} and {self.right} permutations are not comparable"


def _check_banding(num_perm: int, bands: int, rows: int) -> None:
    if num_perm < 1 or bands < 1 or rows < 1:
        raise ConfigError("dedup", "num_perm/bands/rows", "must all be positive")
    if bands * rows > num_perm:
        raise ConfigError(
            "dedup", "bands/rows", f"bands x rows = {bands * rows} exceeds num_perm = {num_perm}"
        )


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Near-duplicate settings: MinHash size, LSH banding and the Jaccard threshold.

    Chosen on tests/fixtures/dedup (true Jaccard of 3-word shingles): copies with another
    site's boilerplate 0.71-0.84, copies with 10% of words edited 0.43-0.75; distinct articles
    on the same topic at most 0.29, the same event from another outlet at most 0.19,
    translations 0.00. The threshold 0.45 sits in that gap, four standard errors of a 128-value
    estimate above 0.29 (at 0.50, 8 of the 45 edited copies were missed; at 0.45, 2).
    42 bands of 3 rows make a pair at the threshold a candidate with probability
    1 - (1 - 0.45**3)**42 = 0.98 (datasketch's optimiser picks 32 x 4, i.e. 0.74, because it
    counts a band match as a verdict; ours are verified, so a spurious candidate costs one
    comparison and a missed one a duplicate); a pair at 0.1 shares a key with probability 0.04.
    """

    threshold: float = 0.45
    num_perm: int = 128
    bands: int = 42
    rows: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("dedup", "threshold", f"must be in (0, 1], got {self.threshold}")
        _check_banding(self.num_perm, self.bands, self.rows)


DEFAULT_CONFIG: Final = DedupConfig()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What dedup stores per article: content hash, MinHash values and LSH band keys."""

    content_hash: str
    hashvalues: tuple[int, ...]  # num_perm 32-bit MinHash values
    band_keys: tuple[str, ...]  # "b07:3f9a1c2e"; empty when the text has no words
    num_perm: int

    def to_document(self) -> dict[str, Any]:
        """Fields for the article document; the MinHash as base64 of little-endian uint32."""
        raw = np.asarray(self.hashvalues, dtype="<u4").tobytes()
        return {
            "content_hash": self.content_hash,
            "minhash": base64.b64encode(raw).decode("ascii"),
            "band_keys": list(self.band_keys),
            "num_perm": self.num_perm,
        }

    @classmethod
    def from_document(cls, fields: Mapping[str, Any]) -> Fingerprint:
        """Rebuild a fingerprint from the fields written by ``to_document``."""
        values = np.frombuffer(base64.b64decode(fields["minhash"]), dtype="<u4")
        return cls(
            content_hash=str(fields["content_hash"]),
            hashvalues=tuple(int(v) for v in values),
            band_keys=tuple(str(k) for k in fields["band_keys"]),
            num_perm=int(fields["num_perm"]),
        )


@dataclass(frozen=True, slots=True)
class DedupVerdict:
    """exact: same normalised text; near: best estimated Jaccard >= threshold; else new."""

    kind: Kind
    match_id: str | None
    score: float  # 1.0 for exact; the best estimated Jaccard otherwise


def normalise_text(text: str) -> str:
    """NFKC, casefold, and every run of whitespace and punctuation reduced to one space."""
    return " ".join(_WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()))


def content_hash(text: str) -> str:
    """SHA-256 (hex) of the normalised text: equal for copies that differ only in form."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def fingerprint(
    text: str,
    *,
    num_perm: int = DEFAULT_CONFIG.num_perm,
    bands: int = DEFAULT_CONFIG.bands,
    rows: int = DEFAULT_CONFIG.rows,
) -> Fingerprint:
    """Content hash, MinHash of the word shingles and LSH band keys of ``text``."""
    _check_banding(num_perm, bands, rows)
    normalised = normalise_text(text)
    digest = hashlib.sha256(normalised.encode("utf-8")).hexdigest()
    shingles = _shingles(normalised)
    minhash = _empty_minhash(num_perm).copy()
    if not shingles:
        # Nothing to compare: no band keys, so it is never anyone's candidate.
        return Fingerprint(digest, tuple(minhash.hashvalues.tolist()), (), num_perm)
    minhash.update_batch(shingles)
    values = minhash.hashvalues.astype("<u4")
    raw = values.tobytes()
    width = rows * values.itemsize
    keys = tuple(
        f"b{band:02d}:"
        + hashlib.blake2b(
            raw[band * width : (band + 1) * width], digest_size=_BAND_KEY_BYTES
        ).hexdigest()
        for band in range(bands)
    )
    return Fingerprint(digest, tuple(values.tolist()), keys, num_perm)


def estimated_jaccard(a: Fingerprint, b: Fingerprint) -> float:
    """Share of equal MinHash values: an unbiased estimate of the shingle sets' Jaccard."""
    if a.num_perm != b.num_perm or len(a.hashvalues) != len(b.hashvalues):
        raise FingerprintMismatch(a.num_perm, b.num_perm)
    if not a.band_keys or not b.band_keys:
        return 0.0  # an empty text resembles nothing, not even another empty text
    same = sum(x == y for x, y in zip(a.hashvalues, b.hashvalues, strict=True))
    return same / a.num_perm


def classify(
    candidate: Fingerprint,
    existing: Iterable[tuple[str, Fingerprint]],
    *,
    threshold: float = DEFAULT_CONFIG.threshold,
) -> DedupVerdict:
    """Compare ``candidate`` with stored (id, fingerprint) pairs, e.g. those sharing a band key.

    Ties go to the smallest id, so the verdict does not depend on the order of ``existing``.
    """
    exact: str | None = None
    best_id: str | None = None
    best = 0.0
    for ident, other in existing:
        # Texts without words (no band keys) all hash alike but are not copies of each other.
        if candidate.band_keys and other.content_hash == candidate.content_hash:
            if exact is None or ident < exact:
                exact = ident
            continue
        score = estimated_jaccard(candidate, other)
        if score > best or (score == best and best_id is not None and ident < best_id):
            best_id, best = ident, score
    if exact is not None:
        return DedupVerdict("exact", exact, 1.0)
    if best_id is not None and best >= threshold:
        return DedupVerdict("near", best_id, best)
    return DedupVerdict("new", None, best)


def _shingles(normalised: str) -> list[bytes]:
    """Distinct SHINGLE_WORDS-word shingles (the whole text if it is shorter), as UTF-8."""
    if _CJK_RE.search(normalised):
        tokens = [t.encode("utf-8") for t in _TOKEN_RE.findall(normalised)]
    else:
        tokens = normalised.encode("utf-8").split()
    if len(tokens) <= SHINGLE_WORDS:
        return [b" ".join(tokens)] if tokens else []
    runs = zip(*(tokens[i:] for i in range(SHINGLE_WORDS)), strict=False)
    return list({b" ".join(run) for run in runs})


@functools.lru_cache(maxsize=4)
def _empty_minhash(num_perm: int) -> MinHash:
    # Imported on first use: the datasketch package pulls in scipy.integrate (~3 s), which
    # would otherwise be paid by every process that merely imports this module (DAG parsing).
    from datasketch import MinHash

    # Building the permutations costs more than hashing a short article; copies share them.
    # CRC-32 rather than datasketch's default SHA-1: it is called once per shingle from Python
    # and SHA-1 was a third of the time. The affine32 scheme pre-mixes every input hash with
    # the MurmurHash3 finalizer, which datasketch documents as making weak hashes safe.
    return MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME, hashfunc=zlib.crc32)
