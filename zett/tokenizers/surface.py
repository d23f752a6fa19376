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

from zett.tokenizers.bytes import byte_to_char, byte_vocab, bytes_to_byte_level, tokenizer_style
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


def surface_forms(target, base, max_pieces: int = 7, n_base_rows: int | None = None) -> SurfaceForms:
    """Decompose every token of ``target`` into pieces of ``base`` (see the module docstring for the policies).

    ``target``/``base``: anything ``load_tokenizer`` accepts (pass loaded tokenizers to reuse the base's cache).
    ``n_base_rows``: the base model's embedding row count (default ``len(base)``); byte fallbacks are
    ``n_base_rows + byte``.
    """
    if max_pieces < 1:
        raise ValueError(f"max_pieces must be >= 1, got {max_pieces}")
    target = load_tokenizer(target)
    dec = decomposer(base)
    n_base_rows = dec.n if n_base_rows is None else int(n_base_rows)
    if n_base_rows < dec.n:
        raise ValueError(f"the base tokenizer has {dec.n} tokens but the base model only {n_base_rows} embedding "
                         "rows; pass the tokenizer that belongs to the model")
    tokens = byte_vocab(target)
    special = _special_rows(target, dec, len(tokens))

    added = target.backend_tokenizer.get_added_tokens_decoder()
    rows: list[list[int]] = []
    for i, data in enumerate(tokens):
        if special[i] >= 0:
            rows.append([int(special[i])])
        elif data is not None:
            rows.append(dec.decompose(data))
        elif i in added:  # a special token the base has no counterpart for: its literal text
            rows.append(dec.decompose(added[i].content.encode()))
        else:
            content = target.convert_ids_to_tokens(i)
            rows.append(dec.decompose(content.encode()) if content else [dec.empty_id])

    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    if n_base_rows != dec.n:  # the decomposer spells byte fallbacks len(base) + byte
        flat = np.where(flat >= dec.n, flat - dec.n + n_base_rows, flat)
    width = max(int(lengths.max(initial=0)), max_pieces)
    full_mask = np.arange(width)[None, :] < lengths[:, None]
    full = np.zeros((len(rows), width), dtype=np.int64)
    full[full_mask] = flat  # row-major order of the mask matches the concatenation order
    full, full_mask = torch.from_numpy(full), torch.from_numpy(full_mask)
    return SurfaceForms(ids=full[:, :max_pieces].contiguous(), mask=full_mask[:, :max_pieces].contiguous(),
                        special=torch.from_numpy(special), n_truncated=int((lengths > max_pieces).sum()),
                        n_base=n_base_rows, overflow_ids=full[:, max_pieces:].contiguous(),
                        overflow_mask=full_mask[:, max_pieces:].contiguous())
