"""Vocabulary subsampling keeps the softmax's normaliser unbiased (sampled softmax with a log-Q correction)."""

import torch

from zett.training.vocab import select_vocab


def test_offsets_mark_only_uniformly_sampled_rows():
    v = 1000
    lengths = torch.randint(1, 4, (v,))
    special = torch.full((v,), -1)
    special[:3] = 0
    used = torch.tensor([10, 11, 500])
    sel = select_vocab(lengths, special, used, n_subsample=103, bucket=True, generator=torch.Generator().manual_seed(0))
    assert sel.ids.numel() == 103
    forced = torch.isin(sel.ids, torch.tensor([0, 1, 2, 10, 11, 500]))
    assert torch.all(sel.logit_offset[forced] == 0)
    expected = torch.tensor((v - 6) / 97).log()
    assert torch.allclose(sel.logit_offset[~forced], expected)
    assert select_vocab(lengths, special, used, n_subsample=None).logit_offset is None


def test_corrected_subset_normaliser_is_unbiased():
    v = 4000
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(v, generator=g) * 2
    used = torch.arange(20)
    full = torch.logsumexp(logits, 0).exp()
    draws = []
    for _ in range(400):
        sel = select_vocab(torch.ones(v, dtype=torch.long), torch.full((v,), -1), used, n_subsample=200,
                           bucket=False, generator=g)
        draws.append(torch.logsumexp(logits[sel.ids] + sel.logit_offset, 0).exp())
    estimate = torch.stack(draws).mean()
    uncorrected = torch.logsumexp(logits[sel.ids], 0).exp()
    assert abs(estimate / full - 1) < 0.05
    assert uncorrected < 0.2 * full  # without the correction the subset badly underestimates the normaliser
