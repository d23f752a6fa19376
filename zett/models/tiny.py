"""The tiny random base model behind ``base_model=tiny-random`` / ``experiment=debug``, and its building blocks.

Tiny random models and in-memory tokenizers (no network, seconds): every code path runs, nothing is learned.

    tok = train_tokenizer(texts, vocab_size=300)          # byte-level BPE with <s>, </s>, <pad>, <unk>
    model = tiny_llama(tok)                                # LlamaForCausalLM, 2 layers, hidden 32, tied
    bert_tok = train_tokenizer(texts, 300, kind="wordpiece"); bert = tiny_bert(bert_tok)   # BertForMaskedLM
    model, tok = tiny_random_base(seed=0)                  # what base_model=tiny-random loads

``zett.testing`` re-exports these for tests, notebooks and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable

SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Zero-shot tokenizer transfer predicts embeddings for any vocabulary.",
    "In 1919 the translator revised the novel; it was printed again in 2005.",
    "for i in range(10):\n\tprint(i ** 2)  # squares\n",
    "Élève, naïve café — über straße; 東京 and Москва are cities.",
    "Hello, world! How are you doing today? I'm fine, thanks.",
    "import os\nimport sys\n\nclass Foo:\n    pass\n",
] * 4


def train_tokenizer(texts: Iterable[str] = SAMPLE_TEXTS, vocab_size: int = 300, kind: str = "bpe"):
    """Train a small tokenizer in memory. ``kind``: ``bpe`` (byte-level, GPT-2 style), ``unigram``
    (SentencePiece-style Metaspace) or ``wordpiece`` (BERT-style, lowercase, with [CLS]/[SEP]/[MASK])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if kind == "bpe":
        specials = ["<s>", "</s>", "<pad>", "<unk>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       pad_token="<pad>", unk_token="<unk>")
    if kind == "unigram":
        specials = ["<unk>", "<s>", "</s>", "<pad>"]
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                          show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       pad_token="<pad>", unk_token="<unk>")
    if kind == "wordpiece":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
        tok.train_from_iterator(texts, trainer)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    raise ValueError(f"unknown tokenizer kind {kind!r}; use bpe, unigram or wordpiece")


def tiny_llama(tokenizer=None, vocab_size: int | None = None, hidden_size: int = 32, layers: int = 2,
               tie: bool = True, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` sized for unit tests (float32, eval mode)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab_size = vocab_size or len(tokenizer)
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=tie,
        bos_token_id=getattr(tokenizer, "bos_token_id", None), eos_token_id=getattr(tokenizer, "eos_token_id", None),
        pad_token_id=getattr(tokenizer, "pad_token_id", None),
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def tiny_bert(tokenizer=None, vocab_size: int | None = None, hidden_size: int = 32, layers: int = 2, seed: int = 0):
    """A randomly initialised ``BertForMaskedLM`` (tied, with an LM-head bias) sized for unit tests."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    vocab_size = vocab_size or len(tokenizer)
    cfg = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=512, pad_token_id=getattr(tokenizer, "pad_token_id", 0) or 0,
    )
    torch.manual_seed(seed)
    return BertForMaskedLM(cfg).eval()


def tiny_random_base(vocab_size: int = 300, hidden_size: int = 32, layers: int = 2, tie: bool = True,
                     corpus: str | None = None, seed: int = 0):
    """A tiny random Llama and a byte-level BPE tokenizer trained in memory (on ``corpus``'s train split or
    the built-in sample texts)."""
    texts = SAMPLE_TEXTS
    if corpus:
        from zett.assets import load_corpus

        texts = [t[:20000] for t in load_corpus(corpus, "train")["text"][:200]]
    tok = train_tokenizer(texts, vocab_size=vocab_size, kind="bpe")
    model = tiny_llama(tok, hidden_size=hidden_size, layers=layers, tie=tie, seed=seed)
    return model, tok
