"""Length-weighted substring counts of a text batch: the statistics the tokenizer sampler draws vocabularies from.

Each text is split into GPT-2-style pretokens; each pretoken, spelled in byte-level chars, contributes every
substring that starts at a multiple of ``stride`` within it and has 1..``max_len`` chars, weighted by its length in
bytes. Pretokens are deduplicated first (a batch of 128 x 2,048 chars has ~60k pretokens but ~10k distinct ones),
so the Python work scales with the distinct pretokens, not the characters.
"""

from __future__ import annotations

from collections import Counter

import regex

from zett.tokenizers.bytes import bytes_to_byte_level

# GPT-2's split regex (the one the original sampler counts with and the sampled tokenizers' ByteLevel uses).
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPLIT = regex.compile(SPLIT_PATTERN)
WHITESPACE_CHARS = ("Ġ", "Ċ", "ĉ")  # byte-level space, newline, tab


def pretoken_counts(texts, prefix: str = "") -> Counter:
    """Distinct pretokens of ``texts`` (each optionally prefixed) with their counts."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(_SPLIT.findall(prefix + text if prefix else text))
    return counts


def substring_counts(texts, stride: int = 4, max_len: int = 15, prefix: str = "") -> dict[str, int]:
    """Byte-level substring -> sum over occurrences of its length (bytes). Substrings never cross pretokens."""
    counts: dict[str, int] = {}
    get = counts.get
    for pretoken, c in pretoken_counts(texts, prefix).items():
        s = bytes_to_byte_level(pretoken.encode())
        n = len(s)
        for i in range(0, n, stride):
            for j in range(i + 1, min(i + max_len, n) + 1):
                sub = s[i:j]
                counts[sub] = get(sub, 0) + c * (j - i)
    return counts


def is_candidate(piece: str) -> bool:
    """Whether a counted substring may become a sampled piece: single chars (the 256 bytes are always there)
    and strings with two or more whitespace chars (the fixed whitespace-run pieces cover those) may not."""
    return len(piece) > 1 and (piece.count("Ġ") + piece.count("Ċ") + piece.count("ĉ")) < 2


def whitespace_pieces(max_len: int = 15) -> list[str]:
    """The fixed whitespace-run pieces: ``c2 + c1 * i`` for c1, c2 in (space, newline, tab), i = 1..max_len."""
    return [c2 + c1 * i for c1 in WHITESPACE_CHARS for i in range(1, max_len + 1) for c2 in WHITESPACE_CHARS]
