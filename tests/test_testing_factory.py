"""The fixture factory: tiny random models and tokenizers trained in memory."""

import torch

from zett.testing import SAMPLE_TEXTS, tiny_bert, tiny_llama, train_tokenizer


def test_tokenizers_trained_in_memory_round_trip():
    for kind in ("bpe", "unigram"):
        tok = train_tokenizer(kind=kind, vocab_size=200)
        text = SAMPLE_TEXTS[0]
        assert tok.decode(tok(text, add_special_tokens=False).input_ids).strip() == text
    wp = train_tokenizer(kind="wordpiece", vocab_size=200)
    ids = wp("Hello world").input_ids
    assert ids[0] == wp.cls_token_id and ids[-1] == wp.sep_token_id


def test_tiny_models_run_and_are_deterministic(bpe_tokenizer, wordpiece_tokenizer):
    x = torch.tensor([[1, 5, 7, 9]])
    a, b = tiny_llama(bpe_tokenizer), tiny_llama(bpe_tokenizer)
    assert torch.equal(a(x).logits, b(x).logits)
    assert a(x).logits.shape == (1, 4, len(bpe_tokenizer))
    assert a.get_input_embeddings().weight is a.get_output_embeddings().weight
    untied = tiny_llama(bpe_tokenizer, tie=False)
    assert untied.get_input_embeddings().weight is not untied.get_output_embeddings().weight
    bert = tiny_bert(wordpiece_tokenizer)
    assert bert(x).logits.shape == (1, 4, len(wordpiece_tokenizer))
    assert bert.cls.predictions.bias is not None
