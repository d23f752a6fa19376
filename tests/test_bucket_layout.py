"""Fixed bucket shapes (``data.bucket_chunks``): every hypernetwork call of a step has one row count, fixed by the
vocabulary size, and the layout gives the same loss and gradients as one call over all rows padded to max_pieces."""

from __future__ import annotations

import functools

import pytest
import torch

from zett.testing import SAMPLE_TEXTS
from zett.training.vocab import buckets_by_length, fixed_row_count

MAX_PIECES = 4  # small, so that some sampled tokens are truncated and the overflow (FVT) path runs
HYPERNET = {"num_layers": 2, "max_pieces": MAX_PIECES}



def _collator(tok, chunks, n_subsample=None):
    from zett.tokenizers import TokenizerSampler
    from zett.training.collator import SampledTokenizerCollator

    return SampledTokenizerCollator(tok, functools.partial(TokenizerSampler, vocab_size=450, queue_size=2),
                                    block_size=24, max_pieces=MAX_PIECES, n_subsample=n_subsample, bucket=True,
                                    seed=0, warmup_texts={"d": SAMPLE_TEXTS}, bucket_chunks=chunks)


def test_fixed_layout_has_one_row_count_and_covers_every_row():
    lengths = torch.tensor([1] * 50 + [2] * 30 + [3] * 17 + [7] * 3)  # sorted, S = 100
    assert fixed_row_count(100, 4, 8) == 32 and fixed_row_count(100, 4, 64) == 64 and fixed_row_count(1, 8, 64) == 64
    spans = buckets_by_length(lengths, True, chunks=4, row_multiple=8).tolist()
    assert spans == [[0, 32, 1], [32, 64, 2], [64, 96, 3], [96, 128, 7]]  # last one runs past S: padding
    for start, end, width in spans:
        assert bool((lengths[start:end] <= width).all()) and width == int(lengths[start:min(end, 100)].max())
    # the default layout: one bucket per piece count, exact row counts
    assert buckets_by_length(lengths, True).tolist() == [[0, 50, 1], [50, 80, 2], [80, 97, 3], [97, 100, 7]]
    assert buckets_by_length(lengths, False, chunks=4).tolist() == [[0, 100, 7]]


def test_fixed_layout_repeats_its_shapes_across_steps(tiny_llama_bpe):
    _, tok = tiny_llama_bpe
    col = _collator(tok, chunks=4, n_subsample=256)
    rows, widths = set(), []
    for i in range(4):
        batch = col({"texts": SAMPLE_TEXTS[i: i + 4], "domain": "d"})
        s = batch["surface_ids"].shape[0]
        spans = batch["bucket_spans"]
        rows |= {end - start for start, end, _ in spans}
        widths.append([w for _, _, w in spans])
        assert spans[0][0] == 0 and spans[-1][1] >= s and all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        e = batch["overflow_ids"].shape[1]
        assert e & (e - 1) == 0  # overflow width rounded to a power of two (0 included)
    assert rows == {fixed_row_count(256, 4)}  # one row count, step after step
    assert all(1 <= w <= MAX_PIECES for ws in widths for w in ws)


def _loss_and_grads(module, batch):
    module.zero_grad(set_to_none=True)
    loss = module.training_step(dict(batch), 0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.hypernet.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def test_fixed_and_length_buckets_give_the_padded_layouts_loss_and_gradients(tiny_llama_bpe, step_module):
    model, tok = tiny_llama_bpe
    module = step_module(model, hypernet=HYPERNET, perturb=0.05)
    fixed = _collator(tok, chunks=3)({"texts": SAMPLE_TEXTS[:4], "domain": "d"})
    by_length = _collator(tok, chunks=0)({"texts": SAMPLE_TEXTS[:4], "domain": "d"})
    s = fixed["surface_ids"].shape[0]
    assert fixed["bucket_spans"][-1][1] > s            # the last bucket is padded
    assert len(by_length["bucket_spans"]) > 1
    assert int(fixed["overflow_mask"].sum()) > 0        # truncated tokens: the FVT mean reads their overflow
    assert torch.equal(fixed["input_ids"], by_length["input_ids"])  # same rows, same order
    # the reference: one call over every row, padded to max_pieces
    width = fixed["surface_ids"].shape[1]
    pad = MAX_PIECES - width
    padded = dict(fixed, bucket_spans=[(0, s, MAX_PIECES)], buckets=None,
                  surface_ids=torch.nn.functional.pad(fixed["surface_ids"], (0, pad)),
                  surface_mask=torch.nn.functional.pad(fixed["surface_mask"], (0, pad)))
    loss_p, grads_p = _loss_and_grads(module, padded)
    assert len(grads_p) > 10
    for batch in (fixed, by_length):
        loss, grads = _loss_and_grads(module, batch)
        assert loss == pytest.approx(loss_p, rel=1e-5, abs=1e-5)
        assert grads.keys() == grads_p.keys()
        for name in grads:
            torch.testing.assert_close(grads[name], grads_p[name], atol=1e-5, rtol=1e-5, msg=name)


def test_negative_bucket_chunks_is_refused(tiny_llama_bpe):
    _, tok = tiny_llama_bpe
    with pytest.raises(ValueError, match="data.bucket_chunks must be >= 0"):
        _collator(tok, chunks=-1)


def test_compiled_hypernet_on_the_fixed_layout_gives_the_plain_loss(tiny_llama_bpe, step_module):
    model, tok = tiny_llama_bpe
    plain = step_module(model, hypernet=HYPERNET, perturb=0.05)
    # what compile_hypernet="eager" sets up (dynamo traces, no kernels generated)
    compiled = step_module(model, hypernet=HYPERNET, perturb=0.05)
    compiled._compiled["hypernet"] = torch.compile(compiled.hypernet, dynamic=None, backend="eager")
    col = _collator(tok, chunks=3, n_subsample=250)
    for i in range(2):  # two steps: the second reuses the first's shapes
        batch = col({"texts": SAMPLE_TEXTS[i: i + 4], "domain": "d"})
        a, b = plain.training_step(dict(batch), 0), compiled.training_step(dict(batch), 0)
        torch.testing.assert_close(a, b)


def test_source_mean_under_compile_leaves_the_id_cache_alone():
    """A compiled step must not read or write the id-keyed cache: dynamo would guard on a dict entry that can vanish
    when its tensor is freed (CI failed with ``InternalTorchDynamoError: KeyError`` on such a guard)."""
    from zett.models import pieces

    source = torch.randn(7, 4)
    before = dict(pieces._SOURCE_MEANS)
    compiled = torch.compile(lambda x: pieces.source_mean(x) + 1.0, backend="eager")
    torch.testing.assert_close(compiled(source), source.mean(0) + 1.0)
    assert pieces._SOURCE_MEANS == before
    torch.testing.assert_close(pieces.source_mean(source), source.mean(0))  # eager calls still cache
    assert id(source) in pieces._SOURCE_MEANS
