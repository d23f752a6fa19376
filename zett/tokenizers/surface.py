"""Surface forms: every target token's bytes decomposed into base-tokenizer pieces, the hypernetwork's input.

Decomposition runs the base tokenizer's *model* only (BPE merges / Unigram Viterbi / WordPiece), never its
normaliser or pretokenizer, on the target token's bytes spelled the base's way (byte-level chars, ``▁`` for
spaces, ``##`` continuations). Policies:

- a target token whose spelling is itself a base vocabulary entry is exactly that one id (even where the base
  model's merges could not reach it);
- more than ``max_pieces`` pieces: the first ``max_pieces`` are the hypernetwork's input (``ids``), the rest are
  kept in ``overflow_ids`` so that the FVT mean still uses every piece; the token is counted in ``n_truncated``;
- a byte the base cannot express (no byte-level char, no ``<0xNN>`` piece): id ``n_base_rows + byte``, where
  ``n_base_rows`` is the base *model's* embedding row count (``len(base)`` unless given; padded matrices such as
  Qwen2's have more rows than the tokenizer has tokens). This is the one byte-fallback contract of training,
  transfer and evaluation: the hypernetwork's fallback row ``b`` is surface id ``base_vocab_size + b``;
- target special tokens map by role (``specials.map_role``) onto the base's special of the same role, a one-piece
  row of that id; a special without a base counterpart is decomposed from its literal text;
- a token with no bytes at all (an empty string in the vocabulary) gets the base's unk (else eos, else 0).
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from zett.tokenizers.bytes import (
    _decode_table,
    byte_level_to_bytes,
    byte_to_char,
    byte_vocab,
    bytes_to_byte_level,
    tokenizer_style,
)
from zett.tokenizers.load import load_tokenizer
from zett.tokenizers.specials import ROLE_PRIORITY, map_role, role_ids


@dataclass
class SurfaceForms:
    """Base-piece decomposition of a target vocabulary.

    ids: ``[V_target, max_pieces]`` base ids, right-padded with 0; ``id >= n_base`` is byte fallback
    (byte = id - n_base). mask: ``[V_target, max_pieces]`` True on real pieces. special: ``[V_target]`` base id of
    the role-matched base special token, else -1. n_truncated: tokens that had more than ``max_pieces`` pieces.
    overflow_ids / overflow_mask: ``[V_target, E]`` the pieces past ``max_pieces`` (E = longest form - max_pieces,
    0 when nothing is truncated), read by the FVT mean only.
    """

    ids: torch.Tensor  # [V_target, max_pieces] int64
    mask: torch.Tensor  # [V_target, max_pieces] bool
    special: torch.Tensor  # [V_target] int64
    n_truncated: int
    n_base: int = 0  # base embedding rows: ids at or above it are byte fallbacks
    overflow_ids: torch.Tensor | None = None  # [V_target, E] int64
    overflow_mask: torch.Tensor | None = None  # [V_target, E] bool

    def __post_init__(self):
        if self.overflow_ids is None:
            self.overflow_ids = torch.zeros((self.ids.shape[0], 0), dtype=torch.long)
            self.overflow_mask = torch.zeros((self.ids.shape[0], 0), dtype=torch.bool)

    @property
    def lengths(self) -> torch.Tensor:  # [V_target]
        return self.mask.sum(1)

    def __len__(self) -> int:
        return self.ids.shape[0]


_MEMO_LIMIT = 2_000_000  # bytes -> pieces entries kept per base before the memo is reset


class BaseDecomposer:
    """Decomposes byte strings into base pieces with the base tokenizer's model alone; memoised per byte string,
    so repeated calls (one sampled tokenizer per training step) mostly hit the memo."""

    def __init__(self, base):
        self.tokenizer = load_tokenizer(base)
        backend = self.tokenizer.backend_tokenizer
        self.style = tokenizer_style(backend)
        self.model = backend.model
        self.n = len(self.tokenizer)
        self.vocab = backend.get_vocab(with_added_tokens=False)
        self.roles = role_ids(self.tokenizer)
        self.special_by_content = {self.tokenizer.convert_ids_to_tokens(i): i for i in self.roles.values()}
        self.normalizer = backend.normalizer if self.style.kind == "wordpiece" else None
        unk = self.tokenizer.unk_token_id
        self.empty_id = unk if unk is not None else (self.tokenizer.eos_token_id or 0)
        # Byte -> base id for bytes that must be expressed alone (invalid UTF-8 for text-spelled bases).
        self.byte_ids = np.full(256, -1, dtype=np.int64)
        if self.style.kind == "byte_level":
            for b, c in enumerate(byte_to_char()):
                self.byte_ids[b] = self.vocab.get(c, -1)
            self.missing = {byte_to_char()[b] for b in range(256) if self.byte_ids[b] < 0}
        else:
            for b in range(256):
                self.byte_ids[b] = self.vocab.get(f"<0x{b:02X}>", self.vocab.get(chr(b), -1) if b < 128 else -1)
            self.missing = set()
        self.memo: dict[bytes, list[int]] = {}
        self.rows = PieceRows()

    # -- spelling --------------------------------------------------------------------------------------------

    def _byte_piece(self, b: int) -> int:
        i = int(self.byte_ids[b])
        return i if i >= 0 else self.n + b

    def _tokenize(self, s: str) -> list[int]:
        if not s:
            return []
        i = self.vocab.get(s)
        if i is not None:
            return [i]
        return [t.id for t in self.model.tokenize(s)]

    def _byte_level(self, data: bytes) -> list[int]:
        s = bytes_to_byte_level(data)
        if not self.missing or not (set(s) & self.missing):
            return self._tokenize(s)
        out: list[int] = []
        run: list[str] = []
        for c, b in zip(s, data, strict=True):
            if c in self.missing:
                out += self._tokenize("".join(run))
                run = []
                out.append(self.n + b)
            else:
                run.append(c)
        return out + self._tokenize("".join(run))

    def _text(self, text: str, word_start: bool) -> list[int]:
        if self.style.kind == "metaspace":
            return self._tokenize(text.replace(" ", self.style.replacement))
        if self.style.kind == "wordpiece":
            out: list[int] = []
            if self.normalizer is not None:
                text = self.normalizer.normalize_str(text)
            for k, word in enumerate(text.split(" ")):
                if word:
                    out += self._tokenize(word if (word_start or k > 0) else self.style.prefix + word)
            return out
        return self._tokenize(text)

    def _text_based(self, data: bytes) -> list[int]:
        # Split into valid UTF-8 runs and stray bytes (a byte-level target's token can end mid-character).
        text = data.decode("utf-8", errors="surrogateescape")
        out: list[int] = []
        word_start = text.startswith(" ")
        for is_bad, group in itertools.groupby(text, key=lambda c: 0xDC80 <= ord(c) <= 0xDCFF):
            chunk = "".join(group)
            if is_bad:
                out += [self._byte_piece(ord(c) - 0xDC00) for c in chunk]
            else:
                out += self._text(chunk, word_start)
            word_start = False
        return out

    def decompose(self, data: bytes) -> list[int]:
        """Base piece ids for one byte string (never empty)."""
        hit = self.memo.get(data)
        if hit is not None:
            return hit
        pieces = self._byte_level(data) if self.style.kind == "byte_level" else self._text_based(data)
        if not pieces:
            pieces = [self.empty_id]
        if len(self.memo) >= _MEMO_LIMIT:
            self.memo.clear()
        self.memo[data] = pieces
        return pieces


    def entries(self, keys) -> np.ndarray:
        """``[len(keys)]`` row ids in ``self.rows`` of each key's decomposition, decomposing only keys never seen.

        A key is the token's bytes, its GPT-2 byte-level spelling (a ``str``, as sampled vocabularies spell their
        pieces; converted to bytes exactly as ``byte_vocab`` does) or ``("id", i)``: the one-piece row ``[i]``.
        In the steady state of training almost every key is known, so a vocabulary costs one C-level dict lookup
        per token."""
        rows = self.rows
        if len(rows) + len(keys) > _MEMO_LIMIT:
            rows.clear()
        found = np.fromiter(map(rows.index.get, keys, itertools.repeat(-1)), dtype=np.int64, count=len(keys))
        miss = np.flatnonzero(found < 0)
        if len(miss):
            new = list(dict.fromkeys(keys[k] for k in miss.tolist()))  # distinct, in order
            rows.add_many(new, self.decompose_keys(new))
            found[miss] = np.fromiter(map(rows.index.__getitem__, (keys[k] for k in miss.tolist())),
                                      dtype=np.int64, count=len(miss))
        return found

    def decompose_keys(self, keys) -> list[list[int]]:
        """``decompose`` for many keys (see ``entries``). A byte-level spelling for a byte-level base is already
        the base's spelling: it goes to the base model directly, without the round trip through bytes."""
        out: list[list[int]] = []
        tokenize, byte_level, missing = self._tokenize, self.style.kind == "byte_level", self.missing
        for key in keys:
            if isinstance(key, str):
                if byte_level and key and not (missing and not missing.isdisjoint(key)):
                    out.append(tokenize(key))
                else:
                    out.append(self.decompose(_byte_level_to_bytes(key)))
            elif isinstance(key, bytes):
                out.append(self.decompose(key))
            else:
                out.append([int(key[1])])
        return out


def _byte_level_to_bytes(s: str) -> bytes:
    try:  # the fast branch of byte_vocab for byte-level vocabularies
        return s.translate(_decode_table()).encode("latin-1")
    except UnicodeEncodeError:
        return byte_level_to_bytes(s)


class PieceRows:
    """A growing store of decompositions: all pieces in one flat int64 array, each entry a (start, length) slice,
    looked up by key. ``gather`` assembles any set of entries into a padded matrix with numpy alone."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.index: dict = {}
        self.flat = np.zeros(1 << 16, dtype=np.int64)
        self.start = np.zeros(1 << 12, dtype=np.int64)
        self.length = np.zeros(1 << 12, dtype=np.int64)
        self.n, self.n_flat = 0, 0

    def __len__(self) -> int:
        return self.n

    def add_many(self, keys, pieces: list[list[int]]):
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        m, n = int(lengths.sum()), len(keys)
        if self.n_flat + m > len(self.flat):
            self.flat = np.concatenate([self.flat, np.zeros(max(m, len(self.flat)), dtype=np.int64)])
        if self.n + n > len(self.start):
            grow = max(n, len(self.start))
            self.start = np.concatenate([self.start, np.zeros(grow, dtype=np.int64)])
            self.length = np.concatenate([self.length, np.zeros(grow, dtype=np.int64)])
        self.flat[self.n_flat:self.n_flat + m] = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64,
                                                             count=m)
        self.start[self.n:self.n + n] = self.n_flat + np.cumsum(lengths) - lengths
        self.length[self.n:self.n + n] = lengths
        self.index.update(zip(keys, range(self.n, self.n + n), strict=True))
        self.n_flat += m
        self.n += n

    def gather(self, entries: np.ndarray, min_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """entries [V] -> (ids [V, W] right-padded with 0, mask [V, W], lengths [V]); W = max(longest, min_width)."""
        lengths = self.length[entries]
        width = max(int(lengths.max(initial=0)), min_width)
        cols = np.arange(width)
        mask = cols[None, :] < lengths[:, None]
        pos = np.where(mask, self.start[entries][:, None] + cols[None, :], 0)
        return np.where(mask, self.flat[pos], 0), mask, lengths


_DECOMPOSERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decomposer(base) -> BaseDecomposer:
    """The cached ``BaseDecomposer`` of a loaded base tokenizer (built once per tokenizer object)."""
    tok = load_tokenizer(base)
    found = _DECOMPOSERS.get(tok)
    if found is None:
        found = _DECOMPOSERS[tok] = BaseDecomposer(tok)
    return found


def _special_rows(target, dec: BaseDecomposer, n_rows: int) -> np.ndarray:
    """``[V_target]`` base special id per target special token (role-matched), else -1."""
    special = np.full(n_rows, -1, dtype=np.int64)
    by_id: dict[int, list[str]] = {}
    for role, i in role_ids(target).items():
        by_id.setdefault(i, []).append(role)
    for i, roles in by_id.items():
        if i >= n_rows:
            continue
        roles.sort(key=lambda r: ROLE_PRIORITY.index(r) if r in ROLE_PRIORITY else len(ROLE_PRIORITY))
        for role in roles:
            j = map_role(role, dec.roles)
            if j < 0 and role.startswith("chat:"):
                j = dec.special_by_content.get(role[5:], -1)
            if j >= 0:
                special[i] = j
                break
    return special


def surface_forms(target, base, max_pieces: int = 7, n_base_rows: int | None = None,
                  byte_level: list[str | None] | None = None) -> SurfaceForms:
    """Decompose every token of ``target`` into pieces of ``base`` (see the module docstring for the policies).

    ``target``/``base``: anything ``load_tokenizer`` accepts (pass loaded tokenizers to reuse the base's cache).
    ``n_base_rows``: the base model's embedding row count (default ``len(base)``); byte fallbacks are
    ``n_base_rows + byte``. ``byte_level``: the target's tokens by id in GPT-2 byte-level spelling (``None`` for
    specials), when the caller already has them (``TokenizerSampler`` tokenizers carry ``zett_byte_level``); it
    must equal ``byte_vocab(target)`` after conversion and saves reading the vocabulary back from the tokenizer.
    """
    if max_pieces < 1:
        raise ValueError(f"max_pieces must be >= 1, got {max_pieces}")
    target = load_tokenizer(target)
    dec = decomposer(base)
    n_base_rows = dec.n if n_base_rows is None else int(n_base_rows)
    if n_base_rows < dec.n:
        raise ValueError(f"the base tokenizer has {dec.n} tokens but the base model only {n_base_rows} embedding "
                         "rows; pass the tokenizer that belongs to the model")
    tokens = byte_vocab(target) if byte_level is None else byte_level
    special = _special_rows(target, dec, len(tokens))

    # Specials and tokens without bytes (a handful) get explicit keys; every other token is keyed by its bytes
    # (or byte-level spelling) and served from the decomposer's persistent store.
    keys = list(tokens)
    added = None
    for i in set(np.flatnonzero(special >= 0).tolist()) | {i for i, t in enumerate(tokens) if t is None}:
        if special[i] >= 0:
            keys[i] = ("id", int(special[i]))
            continue
        if added is None:
            added = target.backend_tokenizer.get_added_tokens_decoder()
        if i in added:  # a special token the base has no counterpart for: its literal text
            keys[i] = added[i].content.encode()
        else:
            content = target.convert_ids_to_tokens(i)
            keys[i] = content.encode() if content else ("id", dec.empty_id)
    full, full_mask, lengths = dec.rows.gather(dec.entries(keys), max_pieces)
    if n_base_rows != dec.n:  # the decomposer spells byte fallbacks len(base) + byte
        full = np.where(full_mask & (full >= dec.n), full - dec.n + n_base_rows, full)
    full, full_mask = torch.from_numpy(full), torch.from_numpy(full_mask)
    return SurfaceForms(ids=full[:, :max_pieces].contiguous(), mask=full_mask[:, :max_pieces].contiguous(),
                        special=torch.from_numpy(special), n_truncated=int((lengths > max_pieces).sum()),
                        n_base=n_base_rows, overflow_ids=full[:, max_pieces:].contiguous(),
                        overflow_mask=full_mask[:, max_pieces:].contiguous())
