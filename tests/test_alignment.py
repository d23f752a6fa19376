"""Byte-level alignment of two tokenizations (zett.training.alignment) on hand-made and real token sequences."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zett.training.alignment import align_batch, align_pair, chunk_matrix, table_from_bytes, token_table

SPECIALS = {"<s>": "bos", "</s>": "eos", "<|im_start|>": "chat:<|im_start|>", "<|im_end|>": "eos"}


class Vocab:
    """A hand-made vocabulary: token strings (str or bytes) -> ids, specials by name."""

    def __init__(self, tokens):
        self.tokens = list(dict.fromkeys(tokens))
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        vocab = [None if t in SPECIALS else (t if isinstance(t, bytes) else t.encode()) for t in self.tokens]
        roles = {i: SPECIALS[t] for i, t in enumerate(self.tokens) if t in SPECIALS}
        self.table = table_from_bytes(vocab, roles)

    def encode(self, pieces):
        return np.array([self.ids[p] for p in pieces], dtype=np.int64)


def chunks_of(pieces, chunk_ids):
    """Group token pieces by chunk index -> list of lists (in chunk order); -1 dropped."""
    out = {}
    for p, c in zip(pieces, chunk_ids, strict=True):
        if c >= 0:
            out.setdefault(int(c), []).append(p)
    return [out[k] for k in sorted(out)]


def align(t_pieces, s_pieces, mode="unconstrained"):
    tv, sv = Vocab(t_pieces), Vocab(s_pieces)
    tc, sc, n, stats = align_pair(tv.encode(t_pieces), sv.encode(s_pieces), tv.table, sv.table, mode)
    return chunks_of(t_pieces, tc), chunks_of(s_pieces, sc), n, stats


def test_simple_chunks_are_minimal_byte_identical_spans():
    t, s, n, stats = align(["Hel", "lo", " world", "!"], ["Hello", " wor", "ld", "!"])
    assert t == [["Hel", "lo"], [" world"], ["!"]]
    assert s == [["Hello"], [" wor", "ld"], ["!"]]
    assert n == 3 and stats == {"aligned_bytes": 12, "mismatch_bytes": 0}


def test_multibyte_character_split_across_tokens():
    # "café ok": é = C3 A9, split differently on the two sides (byte-fallback style single bytes on one side)
    t_pieces = ["caf", b"\xc3", b"\xa9", " ok"]
    s_pieces = [b"caf\xc3", b"\xa9 ok"]
    t, s, n, _ = align(t_pieces, s_pieces)
    assert t == [["caf", b"\xc3"], [b"\xa9", " ok"]]
    assert s == [[b"caf\xc3"], [b"\xa9 ok"]]
    # word granularity: the whole text is one chunk (no token starts with whitespace on both sides)
    t, s, n, _ = align(t_pieces, s_pieces, mode="space")
    assert n == 1 and t == [t_pieces] and s == [s_pieces]


def test_byte_fallback_tokens_of_a_four_byte_character():
    emoji = "😀".encode()  # F0 9F 98 80
    t_pieces = [" hi", " "] + [bytes([b]) for b in emoji] + ["!"]
    s_pieces = [" hi", " " + "😀", "!"]
    t, s, n, _ = align(t_pieces, s_pieces)
    assert t == [[" hi"], [" "] + [bytes([b]) for b in emoji], ["!"]]
    assert s == [[" hi"], [" 😀"], ["!"]]


def test_whitespace_runs_and_space_granularity():
    # four spaces split 3+1 vs 2+2
    t, s, n, _ = align(["a", "   ", " b"], ["a", "  ", "  b"])
    assert t == [["a"], ["   ", " b"]] and s == [["a"], ["  ", "  b"]]
    t, s, n, _ = align(["a", "   ", " b"], ["a", "  ", "  b"], mode="space")
    assert t == [["a"], ["   ", " b"]]
    # identical tokenizations: unconstrained keeps every token, space merges within words
    pieces = ["foo", "bar", " x", "\n", "\ty"]
    assert align(pieces, pieces)[2] == 5
    t, s, n, _ = align(pieces, pieces, mode="space")
    assert t == [["foo", "bar"], [" x"], ["\n"], ["\ty"]] and s == t


def test_space_mode_needs_whitespace_on_both_sides():
    # teacher boundary before "bar" is not a word boundary; the student's " ba" starts with a space
    t, s, n, _ = align(["x", " foo", "bar", " baz"], ["x", " foo", "bar", " ba", "z"], mode="space")
    assert t == [["x"], [" foo", "bar"], [" baz"]]
    assert s == [["x"], [" foo", "bar"], [" ba", "z"]]


def test_special_tokens_aligned_by_role():
    t_pieces = ["<s>", "<|im_start|>", "user", "\n", "hi", "<|im_end|>"]
    s_pieces = ["<|im_start|>", "user\n", "hi", "</s>"]  # no bos; eos role spelled by a different token
    t, s, n, _ = align(t_pieces, s_pieces)
    assert t == [["<|im_start|>"], ["user", "\n"], ["hi"], ["<|im_end|>"]]  # unmatched <s> is in no chunk
    assert s == [["<|im_start|>"], ["user\n"], ["hi"], ["</s>"]]
    # space mode: boundaries next to specials are always allowed
    t, s, n, _ = align(t_pieces, s_pieces, mode="space")
    assert t == [["<|im_start|>"], ["user", "\n", "hi"], ["<|im_end|>"]]


def test_special_token_present_on_one_side_in_the_middle():
    t, s, n, _ = align(["ab", "<|im_start|>", "cd"], ["a", "bcd"])
    assert t == [["ab", "cd"]] and s == [["a", "bcd"]]


def test_truncation_keeps_only_chunks_inside_both():
    t, s, n, stats = align(["Hello", " world", ",", " how"], ["Hel", "lo", " wor"])
    assert t == [["Hello"]] and s == [["Hel", "lo"]]
    assert stats["aligned_bytes"] == 5


def test_text_mismatch_ends_the_aligned_region():
    # the teacher dropped a byte ("c"); everything from there is unaligned even where lengths line up again
    t, s, n, stats = align(["a", "b", "dd", "e"], ["a", "b", "c", "d", "e"])
    assert t == [["a"], ["b"]] and s == [["a"], ["b"]]
    assert stats["mismatch_bytes"] == 3


def test_sentencepiece_prefix_space_is_ignored():
    t, s, n, _ = align([" Hello", " world"], ["Hel", "lo", " wor", "ld"])
    assert t == [[" Hello"], [" world"]] and s == [["Hel", "lo"], [" wor", "ld"]]
    t, s, n, _ = align(["<s>", " Hi"], ["<s>", "H", "i"])
    assert t == [["<s>"], [" Hi"]] and s == [["<s>"], ["H", "i"]]


def test_bad_inputs_raise_clear_errors():
    v = Vocab(["a", "b"])
    with pytest.raises(ValueError, match="teacher token ids"):
        align_pair(np.array([5]), np.array([0]), v.table, v.table)
    with pytest.raises(ValueError, match="alignment mode"):
        align_pair(np.array([0]), np.array([0]), v.table, v.table, mode="words")


def test_batch_with_padding_on_either_side_and_matrices():
    tv = Vocab(["<pad>", "Hel", "lo", " you"])
    sv = Vocab(["<pad>", "Hello", " y", "ou"])
    t_ids = torch.tensor([[1, 2, 3], [0, 1, 2]])  # row 1 left-padded
    t_mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    s_ids = torch.tensor([[1, 2, 3, 0], [1, 0, 0, 0]])  # right-padded
    s_mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    al = align_batch(t_ids, t_mask, s_ids, s_mask, tv.table, sv.table)
    assert al.teacher_chunks.tolist() == [[0, 0, 1], [-1, 0, 0]]
    assert al.student_chunks.tolist() == [[0, 1, 1, -1], [0, -1, -1, -1]]
    assert al.chunk_mask.tolist() == [[True, True], [True, False]]
    a_t, a_s = al.matrices()
    assert a_t.shape == (2, 3, 2) and a_s.shape == (2, 4, 2) and a_t.dtype == torch.bool
    assert a_t[0].int().tolist() == [[1, 0], [1, 0], [0, 1]]
    assert a_s[1].int().tolist() == [[1, 0], [0, 0], [0, 0], [0, 0]]
    assert torch.equal(chunk_matrix(al.student_chunks, 2), a_s)


def _check_alignment(t_tok, s_tok, text, mode):
    t_ids = np.array(t_tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    s_ids = np.array(s_tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    tt, stt = token_table(t_tok), token_table(s_tok)
    tc, sc, n, stats = align_pair(t_ids, s_ids, tt, stt, mode)
    assert stats["mismatch_bytes"] == 0
    spelled = []
    for c in range(n):
        tb = b"".join(tt.data[tt.offsets[i]:tt.offsets[i + 1]].tobytes() for i in t_ids[tc == c])
        sb = b"".join(stt.data[stt.offsets[i]:stt.offsets[i + 1]].tobytes() for i in s_ids[sc == c])
        if c == 0:  # a SentencePiece prefix space is spelled by one side only
            tb, sb = tb.removeprefix(b" ") if not sb.startswith(b" ") else tb, \
                sb.removeprefix(b" ") if not tb.startswith(b" ") else sb
        assert tb == sb and len(tb) > 0
        spelled.append(tb)
    # chunks are contiguous runs in order, and together spell the whole (unnormalised) text
    for chunk in (tc, sc):
        kept = chunk[chunk >= 0]
        assert np.all(np.diff(kept) >= 0) and np.all(np.diff(kept) <= 1)
    assert b"".join(spelled).lstrip(b" ") == text.encode().lstrip(b" ")
    return tc, sc, n


TEXTS = st.lists(st.sampled_from(list("ab cdé\n\t😀_.") + ["東京", "  "]), min_size=1, max_size=25).map("".join)


@settings(max_examples=40, deadline=None)
@given(TEXTS)
def test_property_in_memory_tokenizers(bpe_tokenizer, text):
    """Any text: every chunk spells identical bytes; unconstrained chunks are minimal (no shared interior
    boundary); space chunks are unions of unconstrained ones."""
    from zett.testing import train_tokenizer

    other = _other_tokenizer(train_tokenizer)
    tc, sc, n = _check_alignment(bpe_tokenizer, other, text, "unconstrained")
    tc2, sc2, n2 = _check_alignment(bpe_tokenizer, other, text, "space")
    assert n2 <= n
    # each space chunk is a union of whole unconstrained chunks
    for c in range(n2):
        members = set(tc[tc2 == c].tolist())
        assert members == set(tc[np.isin(tc, list(members))].tolist())


_OTHER = {}


def _other_tokenizer(train_tokenizer):
    if "bpe" not in _OTHER:
        texts = ["aé b cd éé 東京 😀", "ab_cd. a\tb\n", "  cd  é"] * 10
        _OTHER["bpe"] = train_tokenizer(texts, vocab_size=290, kind="bpe")
    return _OTHER["bpe"]


def test_real_tokenizers_smollm2_gpt2_and_spm():
    """SmolLM2 vs GPT-2 (byte-level both) and vs a SentencePiece tokenizer with byte fallback and a prefix
    space: chunks spell the same bytes, and the whole text is covered."""
    from zett.tokenizers import load_tokenizer

    smol, gpt2 = load_tokenizer("smollm2-135m"), load_tokenizer("gpt2")
    text = "def f(x):\n    return x  # café 東京 😀\n\n\tprint('Ünïcödé')   done"
    for mode in ("unconstrained", "space"):
        _check_alignment(smol, gpt2, text, mode)
    spm = load_tokenizer("llama2-spm")
    tc, sc, n = _check_alignment(smol, spm, text, "unconstrained")
    s_ids = spm(text, add_special_tokens=False)["input_ids"]
    assert any(spm.convert_ids_to_tokens(i).startswith("<0x") for i in s_ids)  # byte fallback was exercised
