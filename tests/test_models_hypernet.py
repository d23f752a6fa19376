"""ZettHypernet: FVT equivalence at init, chunk independence, save/load, compatibility checks, variants."""

import pytest
import torch
from transformers import AutoConfig, AutoModel

from zett.models import HypernetMismatchError, ZettHypernet, ZettHypernetConfig, adapter
from zett.models.pieces import fvt_mean
from zett.testing import tiny_bert, tiny_llama


def _surface(n_base: int, n_tokens: int = 64, max_pieces: int = 7, seed: int = 0):
    """Random right-padded surface forms with some byte-fallback pieces and a few empty rows."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_pieces + 1, (n_tokens,), generator=gen)
    lengths[:3] = 0
    mask = torch.arange(max_pieces)[None] < lengths[:, None]
    ids = torch.randint(0, n_base, (n_tokens, max_pieces), generator=gen)
    fallback = torch.rand(n_tokens, max_pieces, generator=gen) < 0.15
    ids = torch.where(fallback, n_base + torch.randint(0, 256, ids.shape, generator=gen), ids)
    ids[5, :2] = n_base + torch.tensor([65, 66])          # only byte pieces
    mask[5] = torch.arange(max_pieces) < 2
    return torch.where(mask, ids, torch.zeros_like(ids)), mask


def _perturb(hn, seed=1):
    """Give every weight (zero-initialised heads included) random values, like a trained hypernetwork."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in hn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return hn


@pytest.fixture(scope="module")
def llama(bpe_tokenizer):
    return tiny_llama(bpe_tokenizer)


@pytest.fixture(scope="module")
def untied_llama(bpe_tokenizer):
    return tiny_llama(bpe_tokenizer, tie=False, seed=3)


@pytest.mark.parametrize("which", ["llama", "untied_llama"])
def test_untrained_hypernet_is_exactly_fvt(which, request):
    base = request.getfixturevalue(which)
    hn = ZettHypernet.from_base_model(base)
    source = adapter.source_embeddings(base)
    n_base, d = source.shape[0], base.config.hidden_size
    ids, mask = _surface(n_base)
    special = torch.full((ids.shape[0],), -1)
    special[7], special[9] = 1, 2
    with torch.no_grad():
        out = hn(ids, mask, source, special)
    expected = fvt_mean(source, ids, mask)
    expected[7], expected[9] = source[1], source[2]
    assert torch.equal(out.input_embeddings, expected[:, :d])
    assert torch.equal(out.output_embeddings, expected[:, d:] if source.shape[1] == 2 * d else expected)
    assert (out.output_embeddings is out.input_embeddings) == adapter.is_tied(base)
    # a token that is one base piece gets exactly that piece's row; byte-only and empty tokens the mean row
    single = torch.tensor([[17, 0, 0]]), torch.tensor([[True, False, False]])
    with torch.no_grad():
        assert torch.equal(hn(*single, source).input_embeddings[0], source[17, :d])
    assert torch.equal(out.input_embeddings[5], source.mean(0)[:d])
    assert torch.equal(out.input_embeddings[0], source.mean(0)[:d])


@pytest.mark.parametrize("residual", [True, False])
def test_tokens_are_predicted_independently(llama, residual):
    hn = _perturb(ZettHypernet.from_base_model(llama, residual=residual))
    source = adapter.source_embeddings(llama)
    ids, mask = _surface(source.shape[0], n_tokens=96)
    with torch.no_grad():
        full = hn(ids, mask, source).input_embeddings
        parts = torch.cat([hn(ids[:40], mask[:40], source).input_embeddings,
                           hn(ids[40:], mask[40:], source).input_embeddings])
        shuffled = torch.randperm(96, generator=torch.Generator().manual_seed(0))
        permuted = hn(ids[shuffled], mask[shuffled], source).input_embeddings
    assert torch.equal(full, parts)
    assert torch.equal(full[shuffled], permuted)
    assert not torch.allclose(full, fvt_mean(source, ids, mask))        # the perturbed heads do contribute


def test_padding_width_does_not_change_predictions(llama):
    hn = _perturb(ZettHypernet.from_base_model(llama))
    source = adapter.source_embeddings(llama)
    ids, mask = _surface(source.shape[0], n_tokens=32, max_pieces=3)
    wide_ids = torch.nn.functional.pad(ids, (0, 4))
    wide_mask = torch.nn.functional.pad(mask, (0, 4))
    with torch.no_grad():
        assert torch.equal(hn(ids, mask, source).input_embeddings, hn(wide_ids, wide_mask, source).input_embeddings)


def test_save_and_load_round_trip_bit_exact(untied_llama, tmp_path):
    hn = _perturb(ZettHypernet.from_base_model(untied_llama))
    hn.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = ZettHypernet.from_pretrained(tmp_path)
    via_auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(via_auto, ZettHypernet)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ZettHypernetConfig)
    before, after = hn.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    source = adapter.source_embeddings(untied_llama)
    ids, mask = _surface(source.shape[0])
    with torch.no_grad():
        a, b = hn(ids, mask, source), loaded(ids, mask, source)
    assert torch.equal(a.input_embeddings, b.input_embeddings)
    assert torch.equal(a.output_embeddings, b.output_embeddings)
    assert loaded.config.base_fingerprint == hn.config.base_fingerprint
    loaded.check_compatible(untied_llama)


def test_hypernet_for_another_base_is_refused(llama, bpe_tokenizer):
    hn = ZettHypernet.from_base_model(llama)
    hn.check_compatible(llama)
    hn.check_compatible(tiny_llama(bpe_tokenizer).to(torch.bfloat16).float())   # dtype round trip is fine
    other = tiny_llama(bpe_tokenizer, seed=7)                                     # same shapes, other weights
    with pytest.raises(HypernetMismatchError, match="built for LlamaForCausalLM .*embedding matrices differ"):
        hn.check_compatible(other)
    wider = tiny_llama(bpe_tokenizer, hidden_size=64)
    with pytest.raises(HypernetMismatchError, match="hidden_size 32 != 64"):
        hn.check_compatible(wider)
    untied = tiny_llama(bpe_tokenizer, tie=False)
    with pytest.raises(HypernetMismatchError, match="tied True != False"):
        hn.check_compatible(untied)
    with pytest.raises(HypernetMismatchError, match=r"needs \[300, 32\]"):
        hn(torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.bool),
           adapter.source_embeddings(untied))


def test_bad_surface_forms_have_clear_errors(llama):
    hn = ZettHypernet.from_base_model(llama, max_pieces=4)
    source = adapter.source_embeddings(llama)
    with pytest.raises(ValueError, match="at most 4"):
        hn(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.bool), source)
    with pytest.raises(ValueError, match="surface ids must lie in"):
        hn(torch.full((2, 2), 300 + 256), torch.ones(2, 2, dtype=torch.bool), source)


def test_default_widths_and_overrides(llama):
    hn = ZettHypernet.from_base_model(llama)
    c = hn.config
    assert (c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.max_pieces) == (32, 64, 3, 1, 7)
    assert c.residual and c.pooling == "mean" and not c.predict_bias
    small = ZettHypernet.from_base_model(llama, hidden_size=16, num_layers=1, num_heads=2)
    assert (small.config.hidden_size, small.config.intermediate_size, len(small.layers)) == (16, 32, 1)
    assert small.config.num_heads == 2
    with pytest.raises(TypeError, match="unknown hypernetwork option"):
        ZettHypernet.from_base_model(llama, hiden_size=3)
    # frozen rescalers are buffers: an optimizer over parameters() never touches them
    names = {n for n, _ in hn.named_parameters()}
    assert not any("scaler" in n for n in names) and "fallback_embeddings" in names


def test_original_variant_is_calibrated_on_anchor_tokens(untied_llama):
    hn = ZettHypernet.from_base_model(untied_llama, residual=False)
    assert hn.config.pooling == "first"
    source = adapter.source_embeddings(untied_llama)
    d = untied_llama.config.hidden_size
    ids = torch.arange(source.shape[0])[:, None]
    with torch.no_grad():
        out = hn(ids, torch.ones_like(ids, dtype=torch.bool), source)
    for pred, true in ((out.input_embeddings, source[:, :d]), (out.output_embeddings, source[:, d:])):
        torch.testing.assert_close(pred.mean(0), true.mean(0), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pred.std(0), true.std(0), atol=1e-5, rtol=1e-3)
    # the in_scaler maps source rows to mean 0 and std initializer_range per dimension
    scaled = hn.in_scaler(source)
    assert scaled.mean(0).abs().max() < 1e-6
    torch.testing.assert_close(scaled.std(0), torch.full((2 * d,), 0.02), atol=1e-6, rtol=1e-4)


def test_fallback_rows_feed_the_encoder(llama):
    hn = _perturb(ZettHypernet.from_base_model(llama, residual=False))
    source = adapter.source_embeddings(llama)
    ids = torch.tensor([[300 + 65, 300 + 66], [300 + 65, 300 + 67]])
    with torch.no_grad():
        out = hn(ids, torch.ones_like(ids, dtype=torch.bool), source).input_embeddings
    assert not torch.allclose(out[0], out[1])


def test_bert_bias_head(wordpiece_tokenizer):
    bert = tiny_bert(wordpiece_tokenizer)
    with torch.no_grad():
        adapter.output_bias(bert).normal_()
    hn = ZettHypernet.from_base_model(bert)
    assert hn.config.predict_bias and hn.config.base_has_bias
    source, bias = adapter.source_embeddings(bert), adapter.output_bias(bert).detach()
    ids, mask = _surface(source.shape[0])
    special = torch.full((ids.shape[0],), -1)
    special[4] = 2
    with torch.no_grad():
        with_bias = hn(ids, mask, source, special, source_bias=bias)
        without = hn(ids, mask, source)
    expected = fvt_mean(bias[:, None], ids, mask)[:, 0]
    expected[4] = bias[2]
    assert torch.equal(with_bias.bias, expected)
    # without the base bias the untrained head predicts the base bias mean for every token
    torch.testing.assert_close(without.bias, torch.full((ids.shape[0],), float(bias.mean())))


def test_gradients_reach_the_heads_and_training_moves_off_fvt(llama):
    hn = ZettHypernet.from_base_model(llama)
    source = adapter.source_embeddings(llama)
    ids, mask = _surface(source.shape[0], n_tokens=32)
    out = hn(ids, mask, source)
    out.input_embeddings.pow(2).sum().backward()
    assert hn.input_head.proj.weight.grad.abs().sum() > 0
    opt = torch.optim.SGD(hn.parameters(), lr=1.0)
    opt.step()
    with torch.no_grad():
        moved = hn(ids, mask, source).input_embeddings
    assert not torch.equal(moved, fvt_mean(source, ids, mask))


def test_flop_count_matches_cost_model():
    hn = ZettHypernet(ZettHypernetConfig(hidden_size=576, base_hidden_size=576, base_vocab_size=10))
    # ~8 d^2 per layer for 3 layers plus the input projection and block: ~16-19 MFLOP per piece (ARCHITECTURE.md)
    assert 16e6 < hn.num_flops_per_piece() < 20e6
