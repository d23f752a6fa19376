"""Byte-level view of any tokenizer's vocabulary: which exact UTF-8 bytes each token stands for.

Every tokenizer family spells its tokens differently (GPT-2 byte-level chars ``Ġthe``, SentencePiece ``▁the`` and
``<0x0A>``, WordPiece ``##ing``). The hypernetwork only ever sees bytes, so this module maps every token id to the
bytes the token contributes to the tokenizer's *normalised* text:

- byte-level BPE/Unigram: each char is one byte (GPT-2's ``bytes_to_unicode`` table, inverted);
- SentencePiece-style (Metaspace or a ``" " -> "▁"`` normaliser): the replacement char is a space, ``<0xNN>``
  byte-fallback pieces are that single byte;
- WordPiece: ``##x`` -> ``b"x"``; a word-initial ``x`` -> ``b" x"`` (a word start follows whitespace in the text the
  pretokenizer splits, so the token's embedding should be that of a word start; this is ZeTT's own convention. It
  makes punctuation tokens such as ``.`` read ``b" ."``: WordPiece is not lossless, so no exact view exists);
- any other model: the token string's UTF-8 bytes;
- added non-special tokens: their content's bytes; special tokens: ``None``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_to_char() -> tuple[str, ...]:
    """GPT-2's reversible byte -> printable char table (index = byte value)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


@lru_cache(maxsize=1)
def _decode_table() -> dict[int, int]:
    # Only the 68 remapped chars need translating; the others already equal their byte value as latin-1.
    return {ord(c): b for b, c in enumerate(byte_to_char()) if ord(c) != b}


@lru_cache(maxsize=1)
def _encode_table() -> dict[int, str]:
    return {b: c for b, c in enumerate(byte_to_char()) if ord(c) != b}


def bytes_to_byte_level(data: bytes) -> str:
    """``b" hi"`` -> ``"Ġhi"`` (one char per byte)."""
    return data.decode("latin-1").translate(_encode_table())


def byte_level_to_bytes(text: str) -> bytes:
    """``"Ġhi"`` -> ``b" hi"``. Chars outside the byte-level alphabet are kept as their UTF-8 bytes."""
    try:
        return text.translate(_decode_table()).encode("latin-1")
    except UnicodeEncodeError:
        return b"".join(byte_level_to_bytes(c) if ord(c) < 0x144 else c.encode() for c in text)


@dataclass(frozen=True)
class TokenizerStyle:
    """How a fast tokenizer spells its vocabulary (read from its backend's components, never its vocabulary).

    kind: ``byte_level`` | ``metaspace`` | ``wordpiece`` | ``plain``; ``replacement``: the metaspace char;
    ``prefix``: WordPiece's continuing-subword prefix; ``byte_fallback``: ``<0xNN>`` pieces stand for bytes.
    """

    kind: str
    model: str
    replacement: str = "▁"
    prefix: str = "##"
    byte_fallback: bool = False


def _component_json(component) -> list[dict]:
    """All nested nodes of a tokenizers component's JSON (normaliser, pretokenizer, decoder), flattened."""
    if component is None:
        return []
    try:
        root = json.loads(component.__getstate__())
    except Exception:  # a component without a serialisable state tells us nothing
        return []
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "type" in node:
                nodes.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return nodes


def tokenizer_style(backend) -> TokenizerStyle:
    """Detect the vocabulary spelling of a ``tokenizers.Tokenizer`` (``tokenizer.backend_tokenizer``)."""
    model = type(backend.model).__name__
    pre = _component_json(backend.pre_tokenizer)
    dec = _component_json(backend.decoder)
    norm = _component_json(backend.normalizer)
    types = {n["type"] for n in pre + dec}
    byte_fallback = bool(getattr(backend.model, "byte_fallback", False)) or "ByteFallback" in types
    if "ByteLevel" in types:
        return TokenizerStyle("byte_level", model, byte_fallback=byte_fallback)
    if model == "WordPiece":
        return TokenizerStyle("wordpiece", model, prefix=backend.model.continuing_subword_prefix or "##")
    for node in pre + dec:
        if node["type"] == "Metaspace":
            return TokenizerStyle("metaspace", model, replacement=node.get("replacement", "▁"),
                                  byte_fallback=byte_fallback)
    for node in norm:  # SentencePiece-style BPE from GGUF: Replace(" " -> "▁") in the normaliser
        if node["type"] == "Replace" and node.get("pattern", {}).get("String") == " " and node.get("content"):
            return TokenizerStyle("metaspace", model, replacement=node["content"], byte_fallback=byte_fallback)
    for node in dec:
        if node["type"] == "Replace" and node.get("content") == " " and node.get("pattern", {}).get("String"):
            return TokenizerStyle("metaspace", model, replacement=node["pattern"]["String"],
                                  byte_fallback=byte_fallback)
    return TokenizerStyle("plain", model, byte_fallback=byte_fallback)


def token_bytes(token: str, style: TokenizerStyle) -> bytes:
    """The bytes one (non-added) vocabulary string stands for under ``style``."""
    if style.byte_fallback:
        m = _BYTE_FALLBACK.match(token)
        if m:
            return bytes([int(m.group(1), 16)])
    if style.kind == "byte_level":
        return byte_level_to_bytes(token)
    if style.kind == "metaspace":
        return token.replace(style.replacement, " ").encode()
    if style.kind == "wordpiece":
        if token.startswith(style.prefix):
            return token[len(style.prefix):].encode()
        return (" " + token).encode()
    return token.encode()


def vocab_strings(tokenizer) -> list[str | None]:
    """Token strings by id (``None`` for holes in the id space), over ``len(tokenizer)`` ids at least."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    n = max(len(tokenizer), max(vocab.values(), default=-1) + 1)
    strings: list[str | None] = [None] * n
    for s, i in vocab.items():
        strings[i] = s
    return strings


def special_ids(tokenizer) -> set[int]:
    """Ids of special tokens: added tokens flagged special plus every named special token."""
    ids = {i for i, t in tokenizer.backend_tokenizer.get_added_tokens_decoder().items() if t.special}
    ids.update(i for i in tokenizer.all_special_ids if i is not None and i >= 0)
    return ids


def byte_vocab(tokenizer) -> list[bytes | None]:
    """Index = token id; the exact bytes each token contributes to the normalised text, ``None`` for specials.

    ``tokenizer``: anything ``load_tokenizer`` accepts. Length = ``len(tokenizer)`` (or more if the backend has
    ids beyond it). Holes in the id space are ``None`` too.
    """
    from zett.tokenizers.load import load_tokenizer

    tok = load_tokenizer(tokenizer)
    backend = tok.backend_tokenizer
    style = tokenizer_style(backend)
    strings = vocab_strings(tok)
    specials = special_ids(tok)
    added = backend.get_added_tokens_decoder()
    out: list[bytes | None] = [None] * len(strings)
    if style.kind == "byte_level" and not style.byte_fallback:
        table = _decode_table()
        for i, s in enumerate(strings):
            if s is None or i in added:
                continue
            try:
                out[i] = s.translate(table).encode("latin-1")
            except UnicodeEncodeError:
                out[i] = byte_level_to_bytes(s)
    else:
        for i, s in enumerate(strings):
            if s is not None and i not in added:
                out[i] = token_bytes(s, style)
    for i, t in added.items():
        out[i] = None if (t.special or i in specials) else t.content.encode()
    for i in specials:
        if i < len(out):
            out[i] = None
    return out


def missing_bytes(tokenizer) -> list[int]:
    """Byte values a byte-level tokenizer has no vocabulary entry for (it silently drops them when encoding;
    SmolLM2 lacks 21, e.g. 0x04 and 0xF1-0xFF). Empty for other styles (their fallback is UNK or ``<0xNN>``)."""
    from zett.tokenizers.load import load_tokenizer

    backend = load_tokenizer(tokenizer).backend_tokenizer
    if tokenizer_style(backend).kind != "byte_level":
        return []
    vocab = backend.get_vocab(with_added_tokens=False)
    return [b for b, c in enumerate(byte_to_char()) if c not in vocab]


def base_id_by_bytes(base_bytes: list, avoid: set | None = None, n_rows: int | None = None) -> dict[bytes, int]:
    """bytes -> the base id that stands for them, for code that maps target tokens to base tokens by exact bytes
    (lexical copy, OMP anchors, FOCUS overlap).

    ``base_bytes``: the base vocabulary's bytes per id (``byte_vocab``; None or empty for tokens without bytes).
    Where several base ids share bytes, the first id not in ``avoid`` wins (``avoid``: the base's byte-fallback pieces,
    ``byte_fallback_ids``); an avoided id only stands for bytes no other id has. Ids ``>= n_rows`` are left out."""
    avoid = avoid or set()
    lookup: dict[bytes, int] = {}
    for i, b in enumerate(base_bytes if n_rows is None else base_bytes[:n_rows]):
        if b and (b not in lookup or (lookup[b] in avoid and i not in avoid)):
            lookup[b] = i
    return lookup


def byte_fallback_ids(tokenizer) -> set[int]:
    """Ids of the ``<0xNN>`` byte-fallback pieces of a SentencePiece-style tokenizer (empty for other styles).

    Their bytes often equal a regular token's (Gemma-3: ``<0x2E>`` and ``.``), but the tokenizer only emits them for
    bytes it has no piece for, so their embeddings are barely trained: code that maps tokens by bytes should prefer
    the regular token."""
    from zett.tokenizers.load import load_tokenizer

    tok = load_tokenizer(tokenizer)
    if not tokenizer_style(tok.backend_tokenizer).byte_fallback:
        return set()
    return {i for i, s in enumerate(vocab_strings(tok)) if s is not None and _BYTE_FALLBACK.match(s)}


def shadowed_byte_fallback_ids(tokenizer) -> list[int]:
    """Byte-fallback pieces the tokenizer can never emit, sorted: ``<0xNN>`` whose byte is also a regular token.

    Byte fallback replaces a character by its ``<0xNN>`` pieces only when the vocabulary has no token for it, so
    Gemma-3's ``<0x2E>`` never appears while ``.`` is a token (110 of its 256 pieces are such twins). Transfer methods
    that work from bytes give a twin the same row as its regular token; with tied output rows the model then splits
    that token's probability with a token that never occurs."""
    from zett.tokenizers.load import load_tokenizer

    tok = load_tokenizer(tokenizer)
    fallback = byte_fallback_ids(tok)
    if not fallback:
        return []
    vocab = byte_vocab(tok)
    regular = {b for i, b in enumerate(vocab) if b and i not in fallback}
    return sorted(i for i in fallback if i < len(vocab) and vocab[i] in regular)
