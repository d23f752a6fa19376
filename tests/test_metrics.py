"""Bits per byte against hand computations."""

import math
from types import SimpleNamespace

import pytest
import torch

from zett.eval.metrics import _windows, score_texts


class UnigramLM(torch.nn.Module):
    """Context-free model: every position predicts the same distribution, so any window gives the same NLL."""

    def __init__(self, vocab_size: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.logits = torch.nn.Parameter(torch.randn(vocab_size, generator=g))

    def forward(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        return SimpleNamespace(logits=self.logits.expand(b, t, -1))


@pytest.mark.parametrize("max_length,stride", [(512, 256), (4, 1), (5, 3)])
def test_bits_per_byte_equals_hand_computation(bpe_tokenizer, max_length, stride):
    model = UnigramLM(len(bpe_tokenizer))
    texts = ["Hello, world! élève 東京", "def add(a, b):\n    return a + b\n"]
    logp2 = torch.log_softmax(model.logits.detach(), -1) / math.log(2)
    bits = n_bytes = 0
    for t in texts:
        ids = bpe_tokenizer(t, add_special_tokens=False).input_ids
        bits += -sum(logp2[i].item() for i in ids)  # every token scored once, after the BOS context token
        n_bytes += len(t.encode())
    s = score_texts(model, bpe_tokenizer, texts, max_length=max_length, stride=stride, batch_size=3)
    assert s.n_bytes == n_bytes
    assert s.n_tokens == sum(len(bpe_tokenizer(t, add_special_tokens=False).input_ids) for t in texts)
    assert s.bits_per_byte == pytest.approx(bits / n_bytes, rel=1e-5)
    assert s.bytes_per_token == pytest.approx(n_bytes / s.n_text_tokens)


def test_original_model_bits_per_byte_equals_its_own_loss(bpe_tokenizer, tiny_llama):
    text = "The quick brown fox jumps over the lazy dog. " * 3
    ids = [bpe_tokenizer.bos_token_id] + bpe_tokenizer(text, add_special_tokens=False).input_ids
    x = torch.tensor([ids])
    loss = tiny_llama(input_ids=x, labels=x).loss.item()  # mean nats over len(ids)-1 predictions
    expected = loss * (len(ids) - 1) / math.log(2) / len(text.encode())
    got = score_texts(tiny_llama, bpe_tokenizer, [text], max_length=512).bits_per_byte
    assert got == pytest.approx(expected, rel=1e-5)


def test_windows_score_every_position_once():
    for n in range(2, 40):
        for max_length, stride in [(8, 4), (8, 7), (3, 1), (64, 32)]:
            w = _windows(n, max_length, stride)
            scored = [p for (_, end, first) in w for p in range(first, end)]
            assert scored == list(range(1, n))
            assert all(end - start <= max_length for start, end, _ in w)
            assert all(first - start >= min(max_length - stride, first) or start == 0 for start, _, first in w)


def test_prefix_none_drops_first_token_bytes(bpe_tokenizer):
    model = UnigramLM(len(bpe_tokenizer))
    text = "Hello world"
    s = score_texts(model, bpe_tokenizer, [text], prefix="none")
    first = bpe_tokenizer.decode(bpe_tokenizer(text, add_special_tokens=False).input_ids[:1])
    assert s.n_bytes == len(text) - len(first)


def test_byte_class_breakdown_sums_to_the_total_and_matches_hand_shares(bpe_tokenizer):
    from zett.eval.metrics import BYTE_CLASSES, byte_class, score_documents
    from zett.tokenizers import byte_vocab

    model = UnigramLM(len(bpe_tokenizer))
    texts = ["In 1919 the price was 12,345 yen; élève 東京!", "x = 42\n\ty = 7 + x\n"]
    s, d = score_documents(model, bpe_tokenizer, texts, max_length=8, stride=5, batch_size=2)
    assert sum(d.class_bits.values()) == pytest.approx(s.nll_bits, rel=1e-9)
    assert sum(d.nll_bits) == pytest.approx(s.nll_bits) and d.n_bytes == [len(t.encode()) for t in texts]

    logp2 = torch.log_softmax(model.logits.detach(), -1) / math.log(2)
    vocab = byte_vocab(bpe_tokenizer)
    bits = dict.fromkeys(BYTE_CLASSES, 0.0)
    nbytes = dict.fromkeys(BYTE_CLASSES, 0)
    digit_tokens = 0
    for t in texts:
        for i in bpe_tokenizer(t, add_special_tokens=False).input_ids:
            b = vocab[i]
            for x in b:  # each byte takes an equal share of its token's bits
                bits[BYTE_CLASSES[byte_class(x)]] += -logp2[i].item() / len(b)
                nbytes[BYTE_CLASSES[byte_class(x)]] += 1
            digit_tokens += any(48 <= x <= 57 for x in b)
    for c in BYTE_CLASSES:
        assert d.class_bits[c] == pytest.approx(bits[c], rel=1e-6, abs=1e-9), c
        assert d.class_bytes[c] == nbytes[c], c
    assert nbytes["digits"] == sum(ch.isdigit() for t in texts for ch in t if ch.isascii())
    assert nbytes["non_ascii"] == sum(len(ch.encode()) for t in texts for ch in t if not ch.isascii())
    assert d.digit_bytes == nbytes["digits"] and d.digit_tokens == digit_tokens


def test_byte_classes():
    from zett.eval.metrics import BYTE_CLASSES, byte_class

    assert [BYTE_CLASSES[byte_class(b)] for b in b"aZ0 \n,~\x01"] == [
        "letters", "letters", "digits", "whitespace", "whitespace", "punctuation", "punctuation", "punctuation"]
    assert {BYTE_CLASSES[byte_class(b)] for b in "é東".encode()} == {"non_ascii"}
