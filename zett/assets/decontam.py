"""Decontamination: drop training documents that share a long character n-gram with any evaluation text.

Both sides are whitespace-normalised (runs of whitespace become one space), then every window of ``n`` characters
(default 50) is hashed with a polynomial rolling hash modulo 2**64, computed for a whole document at once with
numpy (prefix sums of ``c[j] * B**-j``; ``B`` is odd, so invertible modulo 2**64). The evaluation windows form a
sorted array; a training document is dropped when any of its windows is in it. Every position of both sides is
checked, so a shared span of ``n`` characters or more is always found (a false hit needs a 64-bit collision).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

import numpy as np

NGRAM = 50
_BASE = 0x100000001B3  # the FNV prime: odd, so it has an inverse modulo 2**64
_INV = pow(_BASE, -1, 2**64)

# The evaluation texts held out from training: (corpus, split); None = every split.
EVAL_SPLITS: tuple[tuple[str, str | None], ...] = (
    ("botchan", "validation"), ("botchan", "test"),
    ("stdlib-code", "validation"), ("stdlib-code", "test"),
    ("humaneval", None),
    ("glib", "validation"), ("glib", "test"),
    ("gtk", "validation"), ("gtk", "test"),
)


def normalise(text: str) -> str:
    return " ".join(text.split())


def _powers(base: int, length: int) -> np.ndarray:
    """[1, base, base**2, ...] modulo 2**64, shape (length,)."""
    p = np.full(length, base, dtype=np.uint64)
    p[0] = 1
    return np.cumprod(p, dtype=np.uint64)  # uint64 products wrap modulo 2**64


def ngram_hashes(text: str, n: int = NGRAM) -> np.ndarray:
    """Hashes of every ``n``-character window of the normalised text, shape (max(0, len - n + 1),) uint64."""
    s = normalise(text)
    if len(s) < n:
        return np.zeros(0, dtype=np.uint64)
    c = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
    length = len(c)
    with np.errstate(over="ignore"):
        prefix = np.zeros(length + 1, dtype=np.uint64)
        np.cumsum(c * _powers(_INV, length), dtype=np.uint64, out=prefix[1:])
        # window i = B**(i+n-1) * (prefix[i+n] - prefix[i]) = sum_j c[i+j] * B**(n-1-j)
        return (prefix[n:] - prefix[:-n]) * _powers(_BASE, length)[n - 1:]


class NgramIndex:
    """The set of ``n``-gram hashes of some evaluation texts."""

    def __init__(self, texts: Iterable[str], n: int = NGRAM):
        self.n = n
        parts = [ngram_hashes(t, n) for t in texts]
        self.hashes = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.hashes)

    def contaminated(self, text: str) -> bool:
        """True when ``text`` shares at least one ``n``-character window (after normalisation) with the index."""
        if len(self.hashes) == 0:
            return False
        h = ngram_hashes(text, self.n)
        if len(h) == 0:
            return False
        idx = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
        return bool((self.hashes[idx] == h).any())


def fingerprint(texts: Iterable[str], n: int = NGRAM) -> str:
    """A sha256 over the evaluation texts and ``n``: the cache key of a decontamination result."""
    h = hashlib.sha256(f"ngram={n}\n".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


@functools.cache  # the evaluation corpora do not change within a process; loading them takes seconds
def _eval_texts() -> tuple[str, ...]:
    return tuple(_load_eval_texts())


def eval_texts() -> list[str]:
    """Every evaluation text of ``EVAL_SPLITS`` (all languages of glib/gtk: msgids and translations)."""
    return list(_eval_texts())


def _load_eval_texts() -> list[str]:
    from zett.assets.corpora import load_corpus

    out: list[str] = []
    for corpus, split in EVAL_SPLITS:
        for s in ([split] if split else ["train", "validation", "test"]):
            out += list(load_corpus(corpus, s)["text"])
    return out
