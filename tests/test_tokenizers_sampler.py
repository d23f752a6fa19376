"""TokenizerSampler: reproducibility, required contents, sizes, checkpoint resume and a lossless result."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zett.testing import SAMPLE_TEXTS
from zett.tokenizers import TokenizerSampler, byte_vocab
from zett.tokenizers.bytes import byte_to_char
from zett.tokenizers.substrings import substring_counts, whitespace_pieces

TEXTS = [t * 3 for t in SAMPLE_TEXTS]
BATCHES = [TEXTS[k:k + 8] for k in range(0, len(TEXTS), 8)]


def make(bpe_tokenizer, seed=0, **kwargs):
    kwargs.setdefault("vocab_size", 700)
    sampler = TokenizerSampler(bpe_tokenizer, seed=seed, queue_size=4, **kwargs)
    sampler.warm_up(TEXTS, chunk_size=8)
    return sampler


def vocab_of(tok) -> dict[str, int]:
    return tok.backend_tokenizer.get_vocab()


def test_substring_counts_by_hand():
    counts = substring_counts(["abcdef ab"], stride=4, max_len=3)
    # pretokens "abcdef", "Ġab"; starts 0 and 4 in "abcdef", 0 in "Ġab"; weight = length in bytes
    assert counts == {"a": 1, "ab": 2, "abc": 3, "e": 1, "ef": 2, "Ġ": 1, "Ġa": 2, "Ġab": 3}
    assert substring_counts(["ab ab"], stride=1, max_len=2)["b"] == 2
    assert len(whitespace_pieces(15)) == 135 and len(set(whitespace_pieces(15))) == 135


def test_queue_counts_equal_the_reference_counting(bpe_tokenizer):
    sampler = TokenizerSampler(bpe_tokenizer, vocab_size=700, queue_size=2)
    sampler.warm_up(TEXTS[:8], chunk_size=4)  # two batches through the memoised, vectorised path
    assert sampler.queue_totals() == substring_counts(TEXTS[:8], stride=4, max_len=15)
    sampler.warm_up(TEXTS[8:12])  # the oldest batch drops out of the queue
    assert sampler.queue_totals() == substring_counts(TEXTS[4:12], stride=4, max_len=15)


def test_same_seed_same_tokenizers_other_seed_differs(bpe_tokenizer):
    a, b, c = make(bpe_tokenizer, 0), make(bpe_tokenizer, 0), make(bpe_tokenizer, 1)
    for batch in BATCHES[:2]:
        va, vb, vc = (vocab_of(s.sample(batch)) for s in (a, b, c))
        assert va == vb
        assert va != vc


def test_contents_and_size(bpe_tokenizer):
    sampler = make(bpe_tokenizer)
    tok = sampler.sample(BATCHES[0])
    vocab = vocab_of(tok)
    assert len(tok) == 700 and len(vocab) == 700
    assert set(byte_to_char()) <= set(vocab)
    assert set(whitespace_pieces(15)) <= set(vocab)
    for i, s in enumerate(["<s>", "</s>", "<pad>", "<unk>"]):  # base specials keep their ids
        assert vocab[s] == i
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert tok.backend_tokenizer.get_added_tokens_decoder()[1].special
    # frequent material becomes whole pieces
    pieces = tok.tokenize(" quick brown fox")
    assert len(pieces) < len(" quick brown fox")


def test_vocab_size_distribution(bpe_tokenizer):
    sampler = make(bpe_tokenizer, vocab_size=800, vocab_size_std=200, vocab_size_min=600, vocab_size_max=900)
    sizes = {len(sampler.sample(BATCHES[k % len(BATCHES)])) for k in range(6)}
    assert all(600 <= n <= 900 for n in sizes) and len(sizes) > 1


def test_too_small_vocab_is_a_clear_error(bpe_tokenizer):
    with pytest.raises(ValueError, match="at least 396"):
        TokenizerSampler(bpe_tokenizer, vocab_size=300)


def test_state_dict_round_trip_continues_identically(bpe_tokenizer):
    a = make(bpe_tokenizer, 0)
    a.sample(BATCHES[0])
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)  # must survive a Lightning checkpoint (weights_only load)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b = TokenizerSampler(bpe_tokenizer, seed=123, queue_size=4, vocab_size=700)
    b.load_state_dict(state)
    for batch in (BATCHES[1], BATCHES[2], BATCHES[0]):
        assert vocab_of(a.sample(batch)) == vocab_of(b.sample(batch))


def test_state_dict_keeps_only_the_queued_substrings(bpe_tokenizer):
    a = make(bpe_tokenizer, 0)
    other = [f"zebra {i} quagga {i * 7} okapi {i * 13}, the giraffe number {i} eats {i} leaves" for i in range(40)]
    for k in range(0, 40, 8):  # five new batches: the warm-up texts leave the queue (queue_size=4)
        a.sample(other[k:k + 8])
    state = a.state_dict()
    live = a.queue_totals()
    assert len(state["strings"]) == len(live) < len(a._strings)  # the index still holds the departed ones
    assert set(state["strings"]) == set(live)
    assert all(ids.dtype == w.dtype == torch.int32 for ids, w in state["queue"])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    b = TokenizerSampler(bpe_tokenizer, seed=123, queue_size=4, vocab_size=700)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    assert b.queue_totals() == live and b.n_batches == a.n_batches
    # the same queue, random state and substring order: the same tokenizer from the queue alone
    assert vocab_of(a.sample([], push=False)) == vocab_of(b.sample([], push=False))


def test_validation_sampling_leaves_the_queue_alone(bpe_tokenizer):
    sampler = make(bpe_tokenizer)
    before = sampler.queue_totals()
    sampler.sample(["completely new validation text about zebras"], push=False)
    assert sampler.queue_totals() == before
    sampler.sample(["completely new training text about zebras"])
    assert sampler.queue_totals() != before


def test_load_state_dict_with_other_settings_fails(bpe_tokenizer):
    state = make(bpe_tokenizer).state_dict()
    other = TokenizerSampler(bpe_tokenizer, vocab_size=700, stride=2)
    with pytest.raises(ValueError, match="saved with"):
        other.load_state_dict(state)


@pytest.fixture(scope="module")
def sampled(bpe_tokenizer):
    tok = make(bpe_tokenizer).sample(BATCHES[1])
    tok._zett_bv = byte_vocab(tok)
    return tok


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_sampled_tokenizer_is_lossless(sampled, text):
    assume(not any(s in text for s in ("<s>", "</s>", "<pad>", "<unk>")))
    ids = sampled.encode(text, add_special_tokens=False)
    assert sampled.decode(ids) == text
    assert b"".join(sampled._zett_bv[i] for i in ids) == text.encode()


def test_prefix_space_option_round_trips(bpe_tokenizer):
    sampler = make(bpe_tokenizer, add_prefix_space=True)
    tok = sampler.sample(BATCHES[0])
    text = "Hello world\n  and more"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids)[0].startswith("Ġ")
    assert tok.decode(ids) == text
