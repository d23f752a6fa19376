"""Tiny random models and in-memory tokenizers for unit tests, notebooks and benchmarks (no network, seconds).

    tok = train_tokenizer(texts, vocab_size=300)          # byte-level BPE with <s>, </s>, <pad>, <unk>
    model = tiny_llama(tok)                                # LlamaForCausalLM, 2 layers, hidden 32, tied
    bert_tok = train_tokenizer(texts, 300, kind="wordpiece"); bert = tiny_bert(bert_tok)   # BertForMaskedLM

They live in ``zett.models.tiny`` (the ``tiny-random`` base model is built from them); this module re-exports them.
"""

from zett.models.tiny import SAMPLE_TEXTS, tiny_bert, tiny_llama, tiny_random_base, train_tokenizer

__all__ = ["SAMPLE_TEXTS", "tiny_bert", "tiny_llama", "tiny_random_base", "train_tokenizer"]
