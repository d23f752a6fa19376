"""The base-model adapter: read, reproduce logits from hidden states, install new vocabularies, per family."""

import pytest
import torch
import transformers as tr
from torch import nn

from zett.models import UnsupportedModelError, adapter

V, D = 120, 32


def _small(cls_cfg, cls_model, **kw):
    torch.manual_seed(0)
    return cls_model(cls_cfg(**kw)).eval()


FAMILIES = {
    "llama-tied": lambda: _small(tr.LlamaConfig, tr.LlamaForCausalLM, vocab_size=V, hidden_size=D, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 tie_word_embeddings=True),
    "llama-untied": lambda: _small(tr.LlamaConfig, tr.LlamaForCausalLM, vocab_size=V, hidden_size=D,
                                   intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, tie_word_embeddings=False),
    "qwen2": lambda: _small(tr.Qwen2Config, tr.Qwen2ForCausalLM, vocab_size=V, hidden_size=D, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            tie_word_embeddings=False),
    "gemma3": lambda: _small(tr.Gemma3TextConfig, tr.Gemma3ForCausalLM, vocab_size=V, hidden_size=D,
                             intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             head_dim=8, final_logit_softcapping=30.0),
    "gpt2": lambda: _small(tr.GPT2Config, tr.GPT2LMHeadModel, vocab_size=V, n_embd=D, n_layer=2, n_head=4,
                           n_positions=64),
    "gpt-neox": lambda: _small(tr.GPTNeoXConfig, tr.GPTNeoXForCausalLM, vocab_size=V, hidden_size=D,
                               intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               tie_word_embeddings=False),
    "bert": lambda: _small(tr.BertConfig, tr.BertForMaskedLM, vocab_size=V, hidden_size=D, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4),
    "roberta": lambda: _small(tr.RobertaConfig, tr.RobertaForMaskedLM, vocab_size=V, hidden_size=D,
                              intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=70),
    "distilbert": lambda: _small(tr.DistilBertConfig, tr.DistilBertForMaskedLM, vocab_size=V, dim=D, hidden_dim=64,
                                 n_layers=2, n_heads=4),
}
TIED = {"llama-tied": True, "llama-untied": False, "qwen2": False, "gemma3": True, "gpt2": True,
        "gpt-neox": False, "bert": True, "roberta": True, "distilbert": True}
HAS_BIAS = {"bert", "roberta", "distilbert"}


def _randomise_bias(model):
    bias = adapter.output_bias(model)
    if bias is not None:
        with torch.no_grad():
            bias.normal_()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hidden_states_reproduce_logits(family):
    model = FAMILIES[family]()
    _randomise_bias(model)
    assert adapter.is_tied(model) is TIED[family]
    assert (adapter.output_bias(model) is not None) is (family in HAS_BIAS)
    ids = torch.randint(3, V, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        hidden = adapter.hidden_states(model, adapter.input_embeddings(model)[ids], mask)
        got = adapter.logits(model, hidden, adapter.output_embeddings(model), adapter.output_bias(model))
    assert hidden.shape == (2, 9, D)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_install_new_vocabulary(family):
    model = FAMILIES[family]()
    n_new = 77
    gen = torch.Generator().manual_seed(1)
    new_in = torch.randn(n_new, D, generator=gen)
    new_out = None if TIED[family] else torch.randn(n_new, D, generator=gen)
    new_bias = torch.randn(n_new, generator=gen) if family in HAS_BIAS else None
    adapter.install(model, new_in.clone(), None if new_out is None else new_out.clone(), new_bias)

    assert model.config.vocab_size == n_new
    assert torch.equal(adapter.input_embeddings(model), new_in)
    assert torch.equal(adapter.output_embeddings(model), new_in if new_out is None else new_out)
    assert adapter.is_tied(model) is TIED[family]
    if new_bias is not None:
        assert torch.equal(adapter.output_bias(model), new_bias)
    ids = torch.randint(0, n_new, (1, 6))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        hidden = adapter.hidden_states(model, new_in[ids])
        expected = adapter.logits(model, hidden, new_in if new_out is None else new_out, new_bias)
    assert logits.shape == (1, 6, n_new)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_install_tied_model_stays_tied_after_save(tmp_path):
    model = FAMILIES["llama-tied"]()
    adapter.install(model, torch.randn(50, D))
    model.save_pretrained(tmp_path)
    again = tr.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert again.config.vocab_size == 50 and adapter.is_tied(again)
    assert torch.equal(adapter.input_embeddings(again), adapter.input_embeddings(model))


def test_source_embeddings_shapes():
    tied, untied = FAMILIES["llama-tied"](), FAMILIES["llama-untied"]()
    assert adapter.source_embeddings(tied).shape == (V, D)
    src = adapter.source_embeddings(untied)
    assert src.shape == (V, 2 * D) and not src.requires_grad
    assert torch.equal(src[:, D:], adapter.output_embeddings(untied))


def test_headless_encoder_counts_as_tied():
    model = _small(tr.BertConfig, tr.BertModel, vocab_size=V, hidden_size=D, intermediate_size=64,
                   num_hidden_layers=2, num_attention_heads=4)
    assert adapter.is_tied(model) and adapter.output_bias(model) is None
    adapter.install(model, torch.randn(40, D))
    assert model.config.vocab_size == 40 and model.get_input_embeddings().weight.shape == (40, D)


def test_install_rejects_wrong_inputs():
    untied = FAMILIES["llama-untied"]()
    with pytest.raises(ValueError, match="untied output embeddings"):
        adapter.install(untied, torch.randn(10, D))
    with pytest.raises(ValueError, match="width"):
        adapter.install(untied, torch.randn(10, D + 1), torch.randn(10, D + 1))
    with pytest.raises(ValueError, match="no LM-head bias"):
        adapter.install(FAMILIES["llama-tied"](), torch.randn(10, D), bias=torch.zeros(10))


def test_unsupported_model_has_clear_error():
    class NoEmbeddings(nn.Module):
        config = tr.LlamaConfig()

        def get_input_embeddings(self):
            return None

    with pytest.raises(UnsupportedModelError, match="NoEmbeddings.*no input embedding matrix"):
        adapter.input_embeddings(NoEmbeddings())
