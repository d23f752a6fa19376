"""FOCUS baseline: sparsemax, overlap copies, convex combinations of overlapping tokens, determinism."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer
from zett.tokenizers import byte_vocab
from zett.transfer.focus import focus_transfer, overlap_ids, sparsemax, train_aux_embeddings

EXTRA = [
    "The translator and the teacher walked to the school; the students laughed at the new teacher.",
    "def multiply(x, y):\n    return x * y\n\nprint(multiply(3, 4))\n",
    "A tokenizer splits text into tokens; a language model predicts the next token.",
    "Everyone in the town knew the story of the teacher from Tokyo and the boys of the school.",
]
FOCUS_TEXTS = (SAMPLE_TEXTS + EXTRA) * 6


@pytest.fixture(scope="module")
def target_tokenizer():
    # a different vocabulary over related text: some tokens overlap the base byte-for-byte, some do not
    return train_tokenizer(EXTRA * 3 + SAMPLE_TEXTS[:8], vocab_size=360, kind="bpe")


@pytest.fixture(scope="module")
def base_tokenizer():
    return train_tokenizer(vocab_size=300, kind="bpe")


def _run(base_tokenizer, target_tokenizer, seed=0, tie=True, **kw):
    model = tiny_llama(base_tokenizer, tie=tie)
    kw.setdefault("dim", 16)
    kw.setdefault("epochs", 3)
    kw.setdefault("min_count", 2)
    return model, focus_transfer(model, base_tokenizer, target_tokenizer, FOCUS_TEXTS, seed=seed, **kw)


def test_sparsemax_hand_example():
    p = sparsemax(torch.tensor([1.0, 0.5, -1.0]))
    # sorted z = 1, .5, -1: support k=2 (1 + 2*.5 > 1.5, 1 - 3 < .5), tau = (1.5 - 1) / 2 = .25
    assert torch.allclose(p, torch.tensor([0.75, 0.25, 0.0]))
    assert torch.equal(sparsemax(torch.tensor([5.0, 0.0, 0.0])), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(sparsemax(torch.zeros(4)), torch.full((4,), 0.25))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=1, max_size=40))
def test_sparsemax_is_a_sparse_distribution(values):
    z = torch.tensor(values, dtype=torch.float64)
    p = sparsemax(z)
    assert float(p.min()) >= 0
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)
    assert p[z.argmax()] > 0  # the largest entry is always in the support
    # projection onto the simplex: p_i > 0 exactly where z_i > tau, and p = z - tau there
    support = p > 0
    tau = (z[support] - p[support]).mean()
    assert torch.allclose(z[support] - p[support], tau.expand(int(support.sum())), atol=1e-9)
    assert bool((z[~support] <= tau + 1e-9).all())


def test_sparsemax_along_a_dimension():
    z = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0))
    p = sparsemax(z, dim=1)
    assert torch.allclose(p.sum(1), torch.ones(3, 7))
    assert torch.allclose(p[:, :, 2], sparsemax(z[:, :, 2], dim=-1))


def test_overlap_is_exact_byte_match(base_tokenizer, target_tokenizer):
    from zett.tokenizers import byte_vocab

    ov = overlap_ids(base_tokenizer, target_tokenizer)
    tb, bb = byte_vocab(target_tokenizer), byte_vocab(base_tokenizer)
    assert len(ov) == len(tb)
    hits = (ov >= 0).nonzero().squeeze(1).tolist()
    assert 0 < len(hits) < len(tb)
    for t in hits:
        assert tb[t] == bb[int(ov[t])]
    base_set = {b for b in bb if b is not None}
    for t in (ov < 0).nonzero().squeeze(1).tolist():
        assert tb[t] is None or tb[t] not in base_set


def test_overlap_rows_copied_exactly_and_new_rows_are_convex_combinations(base_tokenizer, target_tokenizer):
    model, r = _run(base_tokenizer, target_tokenizer)
    e_base = model.get_input_embeddings().weight.detach()
    plan, e = r.plan, r.input_embeddings
    assert e.shape == (len(target_tokenizer), e_base.shape[1])
    assert r.output_embeddings is None  # tied base
    copied = (plan.copy >= 0).nonzero().squeeze(1)
    assert len(copied) > 0
    assert torch.equal(e[copied], e_base[plan.copy[copied]])
    # FOCUS proper placed some tokens, and they are sparse convex combinations of the overlapping rows
    assert len(plan.combined) > 0 and plan.stats["combined"] == len(plan.combined)
    w = plan.weights.to_dense()
    assert w.shape == (len(plan.combined), len(plan.overlap_target))
    assert float(w.min()) >= 0
    assert torch.allclose(w.sum(1), torch.ones(len(plan.combined)), atol=1e-5)
    assert bool((plan.copy[plan.overlap_target] >= 0).all())
    # the anchors' rows in the *new* matrix are their copied base rows, so E_new[t] = w @ E_new[anchors]
    assert torch.allclose(e[plan.combined], w @ e[plan.overlap_target], atol=1e-6)
    assert plan.stats["mean_support"] < len(plan.overlap_target)  # sparse, not a dense average
    # every target row is accounted for exactly once
    parts = torch.cat([copied, plan.combined, plan.fallback]).sort().values
    assert torch.equal(parts, torch.arange(len(target_tokenizer)))


def test_special_tokens_copy_their_role_counterparts(base_tokenizer, target_tokenizer):
    model, r = _run(base_tokenizer, target_tokenizer)
    e_base = model.get_input_embeddings().weight.detach()
    for role in ("bos", "eos", "pad", "unk"):
        t = getattr(target_tokenizer, f"{role}_token_id")
        b = getattr(base_tokenizer, f"{role}_token_id")
        assert torch.equal(r.input_embeddings[t], e_base[b]), role


def test_fallback_rows_are_fvt(base_tokenizer, target_tokenizer):
    from zett.models.pieces import fvt_mean
    from zett.tokenizers import surface_forms

    model, r = _run(base_tokenizer, target_tokenizer, min_count=1000)  # nothing is frequent enough: no aux vectors
    plan = r.plan
    assert len(plan.combined) == 0 and len(plan.fallback) > 0
    sf = surface_forms(target_tokenizer, base_tokenizer)
    fvt = fvt_mean(model.get_input_embeddings().weight.detach(), sf.ids, sf.mask, torch.float32, sf.overflow_ids,
                   sf.overflow_mask)
    assert torch.allclose(r.input_embeddings[plan.fallback], fvt[plan.fallback])


def test_deterministic_with_a_seed(base_tokenizer, target_tokenizer):
    _, a = _run(base_tokenizer, target_tokenizer, seed=3)
    _, b = _run(base_tokenizer, target_tokenizer, seed=3)
    _, c = _run(base_tokenizer, target_tokenizer, seed=4)
    assert torch.equal(a.aux.vectors, b.aux.vectors)
    assert torch.equal(a.input_embeddings, b.input_embeddings)
    assert not torch.equal(a.aux.vectors, c.aux.vectors)


def test_untied_model_gets_output_rows_with_the_same_weights(base_tokenizer, target_tokenizer):
    model, r = _run(base_tokenizer, target_tokenizer, tie=False)
    e_out_base = model.get_output_embeddings().weight.detach()
    plan = r.plan
    assert r.output_embeddings is not None and r.output_embeddings.shape == r.input_embeddings.shape
    copied = (plan.copy >= 0).nonzero().squeeze(1)
    assert torch.equal(r.output_embeddings[copied], e_out_base[plan.copy[copied]])
    w = plan.weights.to_dense()
    assert torch.allclose(r.output_embeddings[plan.combined], w @ r.output_embeddings[plan.overlap_target], atol=1e-6)


def test_aux_embeddings_learn_cooccurrence():
    # two disjoint "languages": tokens 0-9 only co-occur with each other, 10-19 likewise
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, 10, (200,), generator=gen).tolist() for _ in range(20)]
    seqs += [torch.randint(10, 20, (200,), generator=gen).tolist() for _ in range(20)]
    aux = train_aux_embeddings(seqs, 20, dim=8, epochs=5, window=3, subsample=0, batch_size=256, seed=0)
    assert bool(aux.known.all())
    v = torch.nn.functional.normalize(aux.vectors, dim=-1)
    sims = v @ v.T
    same = torch.block_diag(torch.ones(10, 10), torch.ones(10, 10)).bool() & ~torch.eye(20, dtype=torch.bool)
    diff = ~torch.block_diag(torch.ones(10, 10), torch.ones(10, 10)).bool()
    assert float(sims[same].mean()) > float(sims[diff].mean()) + 0.3


def test_no_text_raises_a_clear_error(base_tokenizer, target_tokenizer):
    with pytest.raises(ValueError, match="texts="):
        focus_transfer(tiny_llama(base_tokenizer), base_tokenizer, target_tokenizer, [])


def test_transfer_dispatches_to_focus(base_tokenizer, target_tokenizer):
    from zett.transfer.api import transfer

    model = tiny_llama(base_tokenizer)
    before = model.get_input_embeddings().weight.detach().clone()
    new, tok = transfer(model, target_tokenizer, method="focus", base_tokenizer=base_tokenizer,
                        texts=FOCUS_TEXTS, dim=16, epochs=2, min_count=2, progress=False)
    assert new.get_input_embeddings().weight.shape[0] == len(tok)
    assert torch.equal(model.get_input_embeddings().weight, before)  # the base model is left alone
    _, direct = _run(base_tokenizer, target_tokenizer, epochs=2)
    assert torch.allclose(new.get_input_embeddings().weight[: len(target_tokenizer)], direct.input_embeddings)


def test_masked_lm_with_bias(wordpiece_tokenizer):
    from zett.testing import tiny_bert

    target = train_tokenizer(EXTRA * 3 + SAMPLE_TEXTS[:8], vocab_size=320, kind="wordpiece")
    model = tiny_bert(wordpiece_tokenizer)
    r = focus_transfer(model, wordpiece_tokenizer, target, FOCUS_TEXTS, dim=16, epochs=2, min_count=2)
    bias = model.cls.predictions.decoder.bias.detach()
    assert r.bias is not None and r.bias.shape == (len(target),)
    assert r.output_embeddings is None  # BERT ties its decoder to the word embeddings
    copied = (r.plan.copy >= 0).nonzero().squeeze(1)
    assert torch.equal(r.bias[copied], bias[r.plan.copy[copied]])
    if len(r.plan.combined):
        w = r.plan.weights.to_dense()
        assert torch.allclose(r.bias[r.plan.combined], w @ r.bias[r.plan.overlap_target], atol=1e-6)


def test_overlap_prefers_a_regular_base_token_over_its_byte_fallback_piece():
    """Llama-2 has ``<0x2E>`` (byte fallback, barely trained) before ``.``: FOCUS copies ``.``'s row, not the piece's,
    like the lexical and OMP anchors (one lookup: ``zett.tokenizers.bytes.base_id_by_bytes``)."""
    from zett import assets
    from zett.tokenizers import load_tokenizer

    assets.path("llama2")  # make test prefetches it
    base = load_tokenizer("llama2")
    vocab = base.backend_tokenizer.get_vocab()
    assert vocab["<0x2E>"] < vocab["."]
    target = train_tokenizer(vocab_size=300)  # byte-level BPE: has "." and " the"-style tokens
    ov = overlap_ids(base, target)
    dot = target.convert_tokens_to_ids(".")
    assert ov[dot].item() == vocab["."]
    fallback = {vocab[f"<0x{b:02X}>"] for b in range(256)}
    regular = {b for i, b in enumerate(byte_vocab(base)) if b and i not in fallback}
    tb = byte_vocab(target)
    to_fallback = [t for t, b in enumerate(ov.tolist()) if b in fallback]
    assert to_fallback and all(tb[t] not in regular for t in to_fallback)  # only bytes with no regular token
