"""Byte-level alignment of two tokenizations of the same texts, for cross-tokenizer distillation (ALM).

The teacher is the base model on the *base* tokenizer's encoding, the student is the base model with predicted
embeddings on the *sampled* tokenizer's encoding. Both encode the same text, so both token sequences spell the same
bytes; a *chunk* is a shortest pair of token spans (one per side) that spell identical bytes. Chunks are found
without walking bytes in Python: every token gets an extent on a common axis (its byte length, and one extra unit
for a special token matched by role on both sides), cumulative extents give each side's boundary set, and the
chunk boundaries are the intersection of the two sets (``np.intersect1d``); ``np.searchsorted`` then assigns every
token to the chunk that ends at or after its own end. Everything here runs on the CPU inside the collator.

Granularities (``mode``):

- ``unconstrained``: every boundary both sides share.
- ``space``: only boundaries where the next token on both sides starts with whitespace (space, tab, newline,
  carriage return), or next to a matched special token, or at the end of both sequences.

Special tokens (no bytes) are matched by role (``zett.tokenizers.special_token_roles``) and byte offset, in order
(an LCS over the short list of specials of each sequence); a matched pair is a chunk of its own. An unmatched
special belongs to no chunk. Truncation is free: a boundary exists only where both sides have one, so bytes covered
by one side alone never enter a chunk. As a safety net the aligned region ends at the first byte where the two
sides' spelled bytes differ (a tokenizer that drops bytes, an ``<unk>``, a normaliser that rewrites text); the
number of bytes lost that way is reported in ``Alignment.stats``.
"""

from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

MODES = ("unconstrained", "space")
WHITESPACE = b" \t\n\r"
# One matched special token = one unit on the second (low) axis of the packed extent; bytes are the high axis.
_SPECIAL_UNIT = 1 << 20


@dataclass(frozen=True)
class TokenTable:
    """Per-id facts about one vocabulary, as numpy arrays indexed by token id.

    lengths [V] int64: bytes spelled (0 for special tokens and holes in the id space)
    starts_space [V] bool: first byte is whitespace (``WHITESPACE``)
    role [V] int64: -1 for ordinary tokens, else a code of the special token's role, equal across tokenizers
    offsets [V + 1] int64, data [Σ lengths] uint8: every token's bytes, concatenated (token i = data[offsets[i]:
    offsets[i + 1]])
    """

    lengths: np.ndarray
    starts_space: np.ndarray
    role: np.ndarray
    offsets: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def special(self) -> np.ndarray:  # [V] bool
        return self.role >= 0


def role_code(role: str) -> int:
    """A stable non-negative integer for a role string (``"eos"``, ``"chat:<|im_start|>"``)."""
    return zlib.crc32(role.encode("utf-8")) & 0x7FFFFFFF


def table_from_bytes(vocab: list[bytes | None], roles: dict[int, str] | None = None) -> TokenTable:
    """Build a ``TokenTable`` from a byte vocabulary (``None`` = no bytes) and special roles (id -> role)."""
    n = len(vocab)
    role = np.full(n, -1, dtype=np.int64)
    for i, r in (roles or {}).items():
        if 0 <= i < n:
            role[i] = role_code(r)
    # A special token spells no text, whatever its content.
    vocab = [None if role[i] >= 0 else b for i, b in enumerate(vocab)]
    lengths = np.fromiter((0 if b is None else len(b) for b in vocab), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(b for b in vocab if b), dtype=np.uint8)
    has = lengths > 0
    first = np.zeros(n, dtype=np.uint8)
    first[has] = data[offsets[:-1][has]]
    starts_space = np.isin(first, np.frombuffer(WHITESPACE, dtype=np.uint8)) & has
    return TokenTable(lengths, starts_space, role, offsets, data)


def token_table(tokenizer) -> TokenTable:
    """``TokenTable`` of any tokenizer ``zett.tokenizers.load_tokenizer`` accepts."""
    from zett.tokenizers import byte_vocab, load_tokenizer, special_token_roles

    tok = load_tokenizer(tokenizer)
    return table_from_bytes(byte_vocab(tok), special_token_roles(tok))


def _spelled(table: TokenTable, ids: np.ndarray) -> np.ndarray:
    """The bytes a token sequence spells, concatenated, without a Python loop. ids [n] -> [Σ lengths] uint8."""
    lengths = table.lengths[ids]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint8)
    starts = table.offsets[ids]
    # index of byte k = start of its token + (k - first output index of its token)
    out_start = np.cumsum(lengths) - lengths
    idx = np.repeat(starts - out_start, lengths) + np.arange(total)
    return table.data[idx]


def _match_specials(t_keys: list[tuple[int, int]], s_keys: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Indices (into each list) of specials matched by (byte offset, role), in order on both sides."""
    if not t_keys or not s_keys:
        return [], []
    ti, si = [], []
    for block in difflib.SequenceMatcher(None, t_keys, s_keys, autojunk=False).get_matching_blocks():
        ti.extend(range(block.a, block.a + block.size))
        si.extend(range(block.b, block.b + block.size))
    return ti, si


@dataclass
class _Side:
    ends: np.ndarray        # [n] packed extent at each token's end
    nonempty: np.ndarray    # [n] bool: the token occupies extent (bytes, or a matched special)
    candidates: np.ndarray  # sorted packed extents where this side allows a chunk boundary


def _side(table: TokenTable, ids: np.ndarray, matched: np.ndarray, mode: str, skip: int) -> _Side:
    """``skip``: leading bytes this side spells that the other does not (a SentencePiece prefix space)."""
    cum_bytes = np.maximum(np.cumsum(table.lengths[ids]) - skip, 0)
    ends = cum_bytes * _SPECIAL_UNIT + np.cumsum(matched, dtype=np.int64)  # [n]
    nonempty = np.diff(ends, prepend=0) > 0
    idx = np.flatnonzero(nonempty)
    if mode == "unconstrained" or idx.size == 0:
        return _Side(ends, nonempty, ends[idx])
    # "space": a boundary after token idx[k] is allowed when the next non-empty token starts with whitespace or
    # is a matched special, when token idx[k] itself is a matched special, or at the sequence end.
    after_ok = table.starts_space[ids[idx[1:]]] | matched[idx[1:]]
    ok = np.append(after_ok, True) | matched[idx]
    return _Side(ends, nonempty, ends[idx[ok]])


def _prefix_skip(t_bytes: np.ndarray, s_bytes: np.ndarray) -> tuple[int, int]:
    """(teacher, student) leading bytes to ignore: a space only one side spells at the very start (SentencePiece
    tokenizers prepend one to the text; byte-level ones do not)."""
    space = WHITESPACE[0]
    t0 = t_bytes.size > 0 and t_bytes[0] == space
    s0 = s_bytes.size > 0 and s_bytes[0] == space
    if t0 and not s0 and (s_bytes.size == 0 or t_bytes.size < 2 or t_bytes[1] == s_bytes[0]):
        return 1, 0
    if s0 and not t0 and (t_bytes.size == 0 or s_bytes.size < 2 or s_bytes[1] == t_bytes[0]):
        return 0, 1
    return 0, 0


def _special_offsets(table: TokenTable, ids: np.ndarray, positions: np.ndarray, skip: int) -> np.ndarray:
    """Bytes spelled before each special token at ``positions`` (after dropping ``skip`` leading bytes)."""
    before = np.cumsum(table.lengths[ids]) - table.lengths[ids]
    return np.maximum(before[positions] - skip, 0)


def align_pair(t_ids, s_ids, t_table: TokenTable, s_table: TokenTable, mode: str = "unconstrained"):
    """Align one teacher and one student sequence (padding already removed).

    t_ids [n_t], s_ids [n_s] token ids (int arrays). Returns (t_chunk [n_t], s_chunk [n_s], n_chunks, stats):
    the chunk index of every token (-1 = in no chunk) and ``stats`` = {"aligned_bytes", "mismatch_bytes"}.
    """
    if mode not in MODES:
        raise ValueError(f"alignment mode {mode!r} is not supported; use one of {MODES}")
    t_ids = np.asarray(t_ids, dtype=np.int64)
    s_ids = np.asarray(s_ids, dtype=np.int64)
    for name, ids, table in (("teacher", t_ids, t_table), ("student", s_ids, s_table)):
        if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
            raise ValueError(f"{name} token ids must lie in [0, {len(table)}) (the {name} tokenizer's vocabulary); "
                             f"got ids in [{ids.min()}, {ids.max()}]: pass unpadded, unremapped ids")
    t_bytes, s_bytes = _spelled(t_table, t_ids), _spelled(s_table, s_ids)
    t_skip, s_skip = _prefix_skip(t_bytes, s_bytes)
    t_bytes, s_bytes = t_bytes[t_skip:], s_bytes[s_skip:]

    # Special tokens: match by (byte offset, role) in order.
    t_matched = np.zeros(t_ids.size, dtype=bool)
    s_matched = np.zeros(s_ids.size, dtype=bool)
    t_sp = np.flatnonzero(t_table.role[t_ids] >= 0)
    s_sp = np.flatnonzero(s_table.role[s_ids] >= 0)
    if t_sp.size and s_sp.size:
        t_off = _special_offsets(t_table, t_ids, t_sp, t_skip)
        s_off = _special_offsets(s_table, s_ids, s_sp, s_skip)
        t_keys = list(zip(t_off.tolist(), t_table.role[t_ids[t_sp]].tolist(), strict=True))
        s_keys = list(zip(s_off.tolist(), s_table.role[s_ids[s_sp]].tolist(), strict=True))
        ti, si = _match_specials(t_keys, s_keys)
        t_matched[t_sp[ti]] = True
        s_matched[s_sp[si]] = True

    t_side = _side(t_table, t_ids, t_matched, mode, t_skip)
    s_side = _side(s_table, s_ids, s_matched, mode, s_skip)
    common = np.intersect1d(t_side.candidates, s_side.candidates, assume_unique=True)

    # Safety net: stop at the first byte where the two sides spell different text.
    n = min(t_bytes.size, s_bytes.size)
    diff = np.flatnonzero(t_bytes[:n] != s_bytes[:n])
    mismatch = 0
    if diff.size:
        limit = int(diff[0])
        mismatch = n - limit
        common = common[common // _SPECIAL_UNIT <= limit]

    def assign(side: _Side) -> np.ndarray:
        chunk = np.searchsorted(common, side.ends, side="left")
        chunk[~side.nonempty | (chunk >= common.size)] = -1
        return chunk

    aligned = int(common[-1] // _SPECIAL_UNIT) if common.size else 0
    return assign(t_side), assign(s_side), int(common.size), {"aligned_bytes": aligned, "mismatch_bytes": mismatch}


@dataclass
class Alignment:
    """Chunk assignment of a batch. teacher_chunks [B, T_t], student_chunks [B, T_s]: chunk index per token (-1 =
    none, padding included); chunk_mask [B, C]: chunk exists. ``stats``: summed ``align_pair`` stats."""

    teacher_chunks: torch.Tensor
    student_chunks: torch.Tensor
    chunk_mask: torch.Tensor
    stats: dict = field(default_factory=dict)

    @property
    def num_chunks(self) -> int:
        return self.chunk_mask.shape[1]

    def matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean token-to-chunk matrices: teacher [B, T_t, C], student [B, T_s, C]."""
        return chunk_matrix(self.teacher_chunks, self.num_chunks), chunk_matrix(self.student_chunks, self.num_chunks)


def chunk_matrix(chunks: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """chunk index per token [B, T] (-1 = none) -> boolean matrix [B, T, C]."""
    b, t = chunks.shape
    out = torch.zeros(b, t, num_chunks + 1, dtype=torch.bool)
    idx = torch.where(chunks < 0, num_chunks, chunks)
    out.scatter_(2, idx.unsqueeze(-1), True)
    return out[..., :num_chunks]


def align_batch(t_ids: torch.Tensor, t_mask: torch.Tensor, s_ids: torch.Tensor, s_mask: torch.Tensor,
                t_table: TokenTable, s_table: TokenTable, mode: str = "unconstrained",
                min_chunks: int = 1) -> Alignment:
    """Align a batch. t_ids / t_mask [B, T_t] and s_ids / s_mask [B, T_s] (ids in each tokenizer's own
    vocabulary; mask 1 = real token, any padding side). C = the most chunks of any row (at least ``min_chunks``)."""
    if t_ids.shape[0] != s_ids.shape[0]:
        raise ValueError(f"teacher batch {tuple(t_ids.shape)} and student batch {tuple(s_ids.shape)} differ in size")
    rows, stats = [], {"aligned_bytes": 0, "mismatch_bytes": 0}
    t_np, s_np = t_ids.cpu().numpy(), s_ids.cpu().numpy()
    t_keep, s_keep = t_mask.cpu().numpy().astype(bool), s_mask.cpu().numpy().astype(bool)
    for b in range(t_np.shape[0]):
        tc, sc, n, st = align_pair(t_np[b][t_keep[b]], s_np[b][s_keep[b]], t_table, s_table, mode)
        rows.append((tc, sc, n))
        for k in stats:
            stats[k] += st[k]
    c = max([min_chunks] + [n for _, _, n in rows])
    t_chunks = torch.full(t_ids.shape, -1, dtype=torch.long)
    s_chunks = torch.full(s_ids.shape, -1, dtype=torch.long)
    mask = torch.zeros(t_ids.shape[0], c, dtype=torch.bool)
    for b, (tc, sc, n) in enumerate(rows):
        t_chunks[b, torch.from_numpy(t_keep[b])] = torch.from_numpy(tc)
        s_chunks[b, torch.from_numpy(s_keep[b])] = torch.from_numpy(sc)
        mask[b, :n] = True
    return Alignment(t_chunks, s_chunks, mask, stats)
