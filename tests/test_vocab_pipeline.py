"""The vectorised vocabulary pipeline equals the per-token reference it replaced.

Sampler (``_pieces`` / ``_build``), surface forms (persistent piece store, numpy assembly) and prefix encoding of
sampled tokenizers are checked token for token against straightforward Python versions of the old code.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from zett.testing import SAMPLE_TEXTS
from zett.tokenizers import TokenizerSampler, byte_vocab, surface_forms
from zett.tokenizers.bytes import byte_level_to_bytes
from zett.tokenizers.sampler import _NEG
from zett.tokenizers.surface import decomposer
from zett.training.collator import encode_texts, encode_texts_prefix

TEXTS = [t * 3 for t in SAMPLE_TEXTS]


def make(tokenizer, seed=0, **kwargs):
    kwargs.setdefault("vocab_size", 700)
    sampler = TokenizerSampler(tokenizer, seed=seed, queue_size=4, **kwargs)
    sampler.warm_up(TEXTS, chunk_size=8)
    return sampler


# -- the old per-token code, kept here as the reference --------------------------------------------------------

def reference_pieces(self, n_total):
    n = len(self._strings)
    total = self._total[:n]
    live = np.flatnonzero(total > 0)
    score_sum = float(total[live].sum())
    min_log_prob = math.log(total[live].min() / score_sum)
    noise = 0.0
    if self.noise_mean > 0:
        noise = float(self._rng.lognormal(math.log(self.noise_mean), self.noise_std))
    cand = live[self._candidate[live]]
    p = total[cand] / score_sum
    if noise > 0:
        p = p + self._rng.normal(0.0, noise, size=len(cand))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), _NEG)
    special_text = {s for _, s in self.specials}
    k = n_total - len(self.fixed) - len(self.specials)
    take = min(len(cand), k + len(special_text))
    top = np.argpartition(-score, take - 1)[:take] if take < len(cand) else np.arange(len(cand))
    top = top[np.lexsort((cand[top], -score[top]))]
    chosen = [(self._strings[int(cand[i])], float(score[i])) for i in top]
    chosen = [c for c in chosen if c[0] not in special_text][:k]
    chosen += [(f"<|zett_unused_{j}|>", _NEG) for j in range(k - len(chosen))]
    fixed = [(c, min_log_prob) for c in self.fixed[:256]] + [(w, 0.0) for w in self.fixed[256:]]
    return fixed + chosen


def reference_vocab(self, pieces, n_total):
    vocab = [None] * n_total
    floor = min((s for _, s in pieces), default=_NEG)
    late = []
    for i, s in self.specials:
        if i < n_total:
            vocab[i] = (s, floor)
        else:
            late.append(s)
    free = iter(range(n_total - 1, -1, -1))
    for s in late:
        j = next(j for j in free if vocab[j] is None)
        vocab[j] = (s, floor)
    it = iter(pieces)
    for j in range(n_total):
        if vocab[j] is None:
            vocab[j] = next(it)
    return vocab


def reference_surface(target, base, max_pieces, n_base_rows=None):
    from zett.tokenizers.surface import _special_rows

    dec = decomposer(base)
    n_base_rows = dec.n if n_base_rows is None else n_base_rows
    tokens = byte_vocab(target)
    special = _special_rows(target, dec, len(tokens))
    added = target.backend_tokenizer.get_added_tokens_decoder()
    rows = []
    for i, data in enumerate(tokens):
        if special[i] >= 0:
            rows.append([int(special[i])])
        elif data is not None:
            rows.append(dec.decompose(data))
        elif i in added:
            rows.append(dec.decompose(added[i].content.encode()))
        else:
            content = target.convert_ids_to_tokens(i)
            rows.append(dec.decompose(content.encode()) if content else [dec.empty_id])
    rows = [[p - dec.n + n_base_rows if p >= dec.n else p for p in r] for r in rows]
    width = max(max(map(len, rows)), max_pieces)
    full = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        full[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = True
    return full, mask, special


def unigram_vocab(tok):
    return json.loads(tok.backend_tokenizer.to_str())["model"]["vocab"]


# -- tests -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vocab_size", [700, 520])
def test_sampled_vocabulary_equals_the_reference(bpe_tokenizer, vocab_size):
    fast, ref = make(bpe_tokenizer, vocab_size=vocab_size), make(bpe_tokenizer, vocab_size=vocab_size)
    for k in range(3):
        batch = TEXTS[4 * k:4 * k + 8]
        tok = fast.sample(batch)
        ref._push(ref._batch_entry(batch))
        n_total = ref._draw_vocab_size()
        expected = reference_vocab(ref, reference_pieces(ref, n_total), n_total)
        got = unigram_vocab(tok)
        assert len(got) == len(expected) == vocab_size
        assert [p for p, _ in got] == [p for p, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=1e-12)


def test_late_specials_take_the_last_free_slots(bpe_tokenizer):
    sampler = make(bpe_tokenizer)
    n_total = 600
    sampler.specials = [*sampler.specials, (5000, "<|late_a|>"), (5001, "<|late_b|>")]
    pieces = [(f"p{j}", -float(j)) for j in range(n_total - len(sampler.specials))]
    tok = sampler._build(pieces, n_total)
    expected = reference_vocab(sampler, pieces, n_total)
    assert [p for p, _ in unigram_vocab(tok)] == [p for p, _ in expected]
    assert expected[-1][0] == "<|late_a|>" and expected[-2][0] == "<|late_b|>"


def test_byte_level_attribute_matches_byte_vocab(bpe_tokenizer):
    tok = make(bpe_tokenizer).sample(TEXTS[:8])
    via_attr = [None if s is None else byte_level_to_bytes(s) for s in tok.zett_byte_level]
    assert via_attr == byte_vocab(tok)


@pytest.mark.parametrize("max_pieces,extra_rows", [(7, 0), (2, 0), (3, 13)])
def test_surface_forms_equal_the_per_token_reference(bpe_tokenizer, wordpiece_tokenizer, max_pieces, extra_rows):
    sampler = make(bpe_tokenizer)
    targets = [sampler.sample(TEXTS[8 * k:8 * k + 8]) for k in range(2)] + [wordpiece_tokenizer]
    for base in (bpe_tokenizer, wordpiece_tokenizer):
        n_rows = len(base) + extra_rows
        for target in targets:
            full, mask, special = reference_surface(target, base, max_pieces, n_rows)
            for byte_level in (None, getattr(target, "zett_byte_level", None)):
                sf = surface_forms(target, base, max_pieces, n_rows, byte_level=byte_level)
                assert torch.equal(sf.special, torch.from_numpy(special))
                assert torch.equal(sf.ids, full[:, :max_pieces]) and torch.equal(sf.mask, mask[:, :max_pieces])
                e = sf.overflow_ids.shape[1]
                assert full.shape[1] == max(max_pieces + e, max_pieces)
                assert torch.equal(sf.overflow_ids, full[:, max_pieces:])
                assert torch.equal(sf.overflow_mask, mask[:, max_pieces:])
                assert sf.n_truncated == int((mask.sum(1) > max_pieces).sum())


@pytest.mark.parametrize("block_size", [4, 16, 128])
def test_prefix_encoding_equals_whole_text_encoding(bpe_tokenizer, block_size):
    sampler = make(bpe_tokenizer, vocab_size=900)
    tok = sampler.sample(TEXTS[:8])
    special = sampler.specials[0][1]
    odd = ["", "x", " " * 300 + "a", "a" * 700, "日本語のテキスト" * 60, "\n\n\t  " * 100 + "end",
           ("word " * 40) + special + ("tail " * 80), "ab" * 9 + special * 30, "é" * 2000]
    texts = [t[:n] for t, n in itertools.product(TEXTS[:6], (0, 7, 19, 33, 64, 100, 257, 700, 5000))] + odd
    for k in range(0, len(texts), 16):
        chunk = texts[k:k + 16]
        ids, mask = encode_texts_prefix(tok, chunk, block_size)
        ref_ids, ref_mask = encode_texts(tok, chunk, block_size)
        assert torch.equal(mask, ref_mask)
        assert torch.equal(ids, ref_ids), chunk


def test_prefix_encoding_with_a_special_token_across_the_cut(bpe_tokenizer):
    """A special token cut in half by the prefix reads as plain text there: the margin must keep it out."""
    sampler = make(bpe_tokenizer, vocab_size=900)
    tok = sampler.sample(TEXTS[:8])
    special = max((s for _, s in sampler.specials), key=len)
    texts = [t[:o] + special + " more words" * 50 for t in TEXTS[:4] for o in range(0, 70)]
    for block_size in range(2, 16):
        ids, mask = encode_texts_prefix(tok, texts, block_size)
        ref_ids, ref_mask = encode_texts(tok, texts, block_size)
        assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)


def test_reuse_serves_k_batches_and_keeps_counting(bpe_tokenizer):
    plain, reused = make(bpe_tokenizer), make(bpe_tokenizer, reuse=3)
    batches = [TEXTS[4 * k:4 * k + 8] for k in range(7)]
    toks = [reused.sample(b) for b in batches]
    for b in batches:
        plain.sample(b)
    assert toks[0] is toks[1] is toks[2] and toks[3] is toks[4] is toks[5] and toks[6] is not toks[5]
    assert toks[3] is not toks[0]
    assert reused.queue_totals() == plain.queue_totals()  # every batch's counts reach the queue
    with pytest.raises(ValueError, match="reuse"):
        TokenizerSampler(bpe_tokenizer, reuse=0)


def test_collator_with_reuse_equals_fresh_decomposition(bpe_tokenizer):
    from functools import partial

    from zett.training.collator import SampledTokenizerCollator

    col = SampledTokenizerCollator(bpe_tokenizer, partial(TokenizerSampler, vocab_size=700, queue_size=4, reuse=2),
                                   block_size=32, warmup_texts={"d": TEXTS})
    for k in range(4):
        texts = TEXTS[4 * k:4 * k + 8]
        batch = col({"texts": texts, "domain": "d"})
        tok = col.sampler("d")._current
        sf = surface_forms(tok, bpe_tokenizer, 7)
        ids, _ = encode_texts(tok, texts, 32)
        order = torch.argsort(sf.mask.sum(1), stable=True)
        width = batch["surface_ids"].shape[1]
        assert torch.equal(batch["surface_ids"], sf.ids[order, :width])
        assert torch.equal(order[batch["input_ids"]], ids)  # rows of the selection map back to the token ids


def test_datamodule_worker_defaults(monkeypatch):
    import os

    from zett.training.data import DataConfigError
    from zett.training.datamodule import ZettDataModule, default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert default_workers() == 3
    dm = ZettDataModule(sources=[{"path": "x.txt"}], num_workers=None)
    assert (dm.num_workers, dm.val_num_workers) == (3, 2)
    assert dm.pin_memory == torch.cuda.is_available()
    assert ZettDataModule(sources=[{"path": "x.txt"}], num_workers=0).val_num_workers == 0
    with pytest.raises(DataConfigError, match="data.num_workers"):
        ZettDataModule(sources=[{"path": "x.txt"}], num_workers=-1)
