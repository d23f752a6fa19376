"""surface_forms on hand-built base/target vocabularies whose decompositions can be checked by hand."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from zett.tokenizers import load_tokenizer, surface_forms
from zett.tokenizers.bytes import byte_to_char

BL = byte_to_char()  # byte -> byte-level char


def _fast(backend, **names):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, **names)


def make_base(drop_bytes: tuple[int, ...] = ()):
    """Byte-level BPE base: 4 specials, the byte chars (minus ``drop_bytes``), merges th, the, Ġthe."""
    specials = ["<|begin|>", "<|end|>", "<|unk|>", "<|im_start|>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        if b not in drop_bytes:
            vocab[BL[b]] = len(vocab)
    merges = [("t", "h"), ("th", "e"), ("Ġ", "the")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    backend = Tokenizer(models.BPE(vocab, merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    return _fast(backend, bos_token="<|begin|>", eos_token="<|end|>", unk_token="<|unk|>",
                 additional_special_tokens=["<|im_start|>"])


def make_target(pieces: list[str], specials: dict[str, str] | None = None):
    """Byte-level WordLevel target over ``pieces`` (byte-level spelled), with named special tokens first."""
    specials = specials or {}
    vocab = {s: i for i, s in enumerate(specials.values())}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token=next(iter(specials.values()), None)))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(specials.values()))
    return _fast(backend, **{f"{role}_token": s for role, s in specials.items()})


def test_in_vocab_multi_piece_and_padding():
    base = make_base()
    bv = base.backend_tokenizer.get_vocab()
    target = make_target(["Ġthe", "Ġthethe", "xy"])
    sf = surface_forms(target, base, max_pieces=4)
    assert sf.ids.shape == (3, 4) and sf.mask.dtype == torch.bool and sf.n_base == len(base)
    assert sf.ids[0].tolist() == [bv["Ġthe"], 0, 0, 0] and sf.lengths[0] == 1  # its own id, one piece
    assert sf.ids[1].tolist() == [bv["Ġthe"], bv["the"], 0, 0] and sf.lengths[1] == 2
    assert sf.ids[2].tolist() == [bv["x"], bv["y"], 0, 0]
    assert sf.special.tolist() == [-1, -1, -1] and sf.n_truncated == 0


def test_missing_byte_becomes_fallback_id():
    base = make_base(drop_bytes=(0xE6,))
    bv = base.backend_tokenizer.get_vocab()
    target = make_target(["a" + BL[0xE6] + "b", BL[0xE6]])
    sf = surface_forms(target, base)
    n = len(base)
    assert sf.ids[0, :3].tolist() == [bv["a"], n + 0xE6, bv["b"]] and sf.lengths[0] == 3
    assert sf.ids[1, 0].item() == n + 0xE6 and sf.lengths[1] == 1


def test_truncation_keeps_first_pieces_and_counts():
    base = make_base()
    bv = base.backend_tokenizer.get_vocab()
    target = make_target(["abcdefghij", "abc", "Ġthethethethethe"])
    sf = surface_forms(target, base, max_pieces=4)
    assert sf.ids[0].tolist() == [bv[c] for c in "abcd"] and sf.mask[0].all()
    assert sf.lengths.tolist() == [4, 3, 4]
    assert sf.n_truncated == 2  # 10 and 5 pieces


def test_specials_map_by_role_and_unmatched_ones_are_spelled_out():
    base = make_base()
    bv = base.backend_tokenizer.get_vocab()
    target = make_target(["hi"], specials={"bos": "<s>", "eos": "</s>", "pad": "<pad>", "mask": "<mask>"})
    target.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    sf = surface_forms(target, base)
    tv = target.backend_tokenizer.get_vocab()
    special = sf.special.tolist()
    assert special[tv["<s>"]] == bv["<|begin|>"]
    assert special[tv["</s>"]] == bv["<|end|>"]
    assert special[tv["<pad>"]] == bv["<|end|>"]  # no base pad: eos stands in
    assert special[tv["<|im_start|>"]] == bv["<|im_start|>"]  # same chat token by content
    assert special[tv["hi"]] == -1
    assert sf.ids[tv["<s>"]].tolist()[:2] == [bv["<|begin|>"], 0] and sf.lengths[tv["<s>"]] == 1
    mask_row = tv["<mask>"]  # no base counterpart: its literal text
    assert special[mask_row] == -1
    assert sf.ids[mask_row, :sf.lengths[mask_row]].tolist() == [bv[c] for c in "<mask>"][:7]


def test_metaspace_and_wordpiece_bases(bpe_tokenizer, wordpiece_tokenizer):
    from zett.testing import train_tokenizer
    from zett.tokenizers import bytes_to_byte_level

    unigram = train_tokenizer(vocab_size=300, kind="unigram")
    uv = unigram.backend_tokenizer.get_vocab()
    word = next(t for t in uv if t.startswith("▁") and len(t) > 3)
    # make_target takes byte-level spellings: a piece like "##ße" must be spelled from its UTF-8 bytes
    target = make_target([bytes_to_byte_level(b" " + word[1:].encode())])
    sf = surface_forms(target, unigram)
    assert sf.ids[0, 0].item() == uv[word] and sf.lengths[0] == 1  # " x" is spelled "▁x"

    wv = wordpiece_tokenizer.backend_tokenizer.get_vocab()
    cont = next(t for t in wv if t.startswith("##") and len(t) > 3)
    initial = next(t for t in wv if t.isalpha() and len(t) > 3)
    target = make_target([bytes_to_byte_level(cont[2:].encode()), bytes_to_byte_level(b" " + initial.encode())])
    sf = surface_forms(target, wordpiece_tokenizer)
    assert sf.ids[0, 0].item() == wv[cont] and sf.lengths[0] == 1  # a continuation spells "##x"
    assert sf.ids[1, 0].item() == wv[initial] and sf.lengths[1] == 1


def test_every_row_has_a_piece_on_trained_tokenizers(bpe_tokenizer, wordpiece_tokenizer):
    sf = surface_forms(wordpiece_tokenizer, bpe_tokenizer)
    assert (sf.lengths >= 1).all()
    assert (sf.ids < sf.n_base + 256).all() and (sf.ids[~sf.mask] == 0).all()
    roles = {"[PAD]": "<pad>", "[UNK]": "<unk>", "[CLS]": "<s>", "[SEP]": "</s>"}  # cls->bos, sep->eos
    for t, b in roles.items():
        assert sf.special[wordpiece_tokenizer.convert_tokens_to_ids(t)] == bpe_tokenizer.convert_tokens_to_ids(b)


def test_identity_transfer_is_one_piece_each(bpe_tokenizer):
    sf = surface_forms(bpe_tokenizer, bpe_tokenizer)
    n = len(bpe_tokenizer)
    assert sf.lengths.tolist() == [1] * n
    assert sf.ids[:, 0].tolist() == list(range(n))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma4", "xlm-r"])
def test_262k_vocab_against_smollm2(name):
    base = load_tokenizer("smollm2-135m")
    target = load_tokenizer(name)
    sf = surface_forms(target, base)
    n_target = len(target)
    assert sf.ids.shape == (n_target, 7) and n_target >= 250_000
    assert (sf.lengths >= 1).all() and (sf.ids < len(base) + 256).all()
    assert 0 < sf.n_truncated < n_target // 4  # non-Latin scripts spell out byte by byte in an English base
    bv = base.backend_tokenizer.get_vocab()
    specials = {role: sf.special[getattr(target, f"{role}_token_id")].item() for role in ("bos", "eos", "pad")}
    assert specials == {"bos": bv["<|im_start|>"], "eos": bv["<|im_end|>"], "pad": bv["<|im_end|>"]}
    the = target.convert_tokens_to_ids("▁the")
    assert sf.ids[the, 0].item() == bv["Ġthe"] and sf.lengths[the] == 1


def test_truncated_tokens_keep_their_remaining_pieces_as_overflow():
    base = make_base()
    bv = base.backend_tokenizer.get_vocab()
    target = make_target(["abcdefghij", "abc", "Ġthethethethethe"])
    sf = surface_forms(target, base, max_pieces=4)
    assert sf.overflow_ids.shape == (3, 6)  # the longest form has 10 pieces
    assert sf.overflow_mask.sum(1).tolist() == [6, 0, 1]
    assert sf.overflow_ids[0].tolist() == [bv[c] for c in "efghij"]
    assert sf.overflow_ids[2, 0].item() == bv["the"]
    full = surface_forms(target, base, max_pieces=16)
    assert full.n_truncated == 0 and full.overflow_ids.shape == (3, 0)
    joined = torch.cat([sf.ids, sf.overflow_ids], 1)[:, :10]
    assert torch.equal(joined, full.ids[:, :10])


def test_byte_fallback_ids_follow_the_model_rows_not_the_tokenizer_length():
    base = make_base(drop_bytes=(0xE6,))
    n = len(base)
    target = make_target(["a" + BL[0xE6], BL[0xE6]])
    sf = surface_forms(target, base, n_base_rows=n + 64)  # a padded embedding matrix (Qwen2-style)
    assert sf.n_base == n + 64
    assert sf.ids[0, :2].tolist() == [base.backend_tokenizer.get_vocab()["a"], n + 64 + 0xE6]
    assert sf.ids[1, 0].item() == n + 64 + 0xE6
    with pytest.raises(ValueError, match="embedding rows"):
        surface_forms(target, base, n_base_rows=n - 1)


def test_every_wordpiece_continuation_is_one_piece(wordpiece_tokenizer):
    """Each ``##x`` of a WordPiece base spells the continuation bytes ``x`` alone, non-ASCII ones (``##ße``) too.
    (The test above picks one token from an unordered vocabulary; this one checks them all.)"""
    from zett.tokenizers import bytes_to_byte_level

    wv = wordpiece_tokenizer.backend_tokenizer.get_vocab()
    conts = sorted(t for t in wv if t.startswith("##") and len(t) > 2)
    assert any(not t.isascii() for t in conts)
    sf = surface_forms(make_target([bytes_to_byte_level(t[2:].encode()) for t in conts]), wordpiece_tokenizer)
    assert sf.lengths.tolist() == [1] * len(conts)
    assert sf.ids[:, 0].tolist() == [wv[t] for t in conts]
