"""byte_vocab and special_token_roles: hand-checked spellings plus the lossless property on random Unicode text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zett import assets
from zett.tokenizers import byte_vocab, load_tokenizer, role_ids, special_token_roles, tokenizer_style
from zett.tokenizers.bytes import byte_level_to_bytes, byte_to_char, bytes_to_byte_level, missing_bytes


def _need(name: str):
    assets.path(name)  # fetched on first use (make test prefetches them)
    return load_tokenizer(name)


def concat_bytes(tok, text: str) -> tuple[bytes, bytes]:
    """(bytes of the encoded ids per byte_vocab, the normalised text's bytes)."""
    vocab = byte_vocab(tok) if not hasattr(tok, "_zett_bv") else tok._zett_bv
    ids = tok.encode(text, add_special_tokens=False)
    normalizer = tok.backend_tokenizer.normalizer
    normalised = normalizer.normalize_str(text) if normalizer is not None else text
    return b"".join(vocab[i] for i in ids), normalised.encode()


def no_special_literals(tok, text: str) -> None:
    """Inside a property test: skip texts holding a special token's literal (it becomes that special token,
    which has no bytes, by design)."""
    assume(not any(t.content in text for t in tok.backend_tokenizer.get_added_tokens_decoder().values()
                   if t.special))


def test_byte_level_table_is_gpt2s():
    table = byte_to_char()
    assert len(set(table)) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("\t")] == "ĉ" and table[ord("a")] == "a"
    data = bytes(range(256))
    assert byte_level_to_bytes(bytes_to_byte_level(data)) == data


def test_byte_level_bpe_spelling(bpe_tokenizer):
    vocab = byte_vocab(bpe_tokenizer)
    assert len(vocab) == len(bpe_tokenizer)
    assert vocab[:4] == [None] * 4  # <s> </s> <pad> <unk>
    ids = bpe_tokenizer.backend_tokenizer.get_vocab()
    assert vocab[ids["Ġ"]] == b" " and vocab[ids["Ċ"]] == b"\n"
    assert vocab[ids["Ã"]] == b"\xc3" and vocab[ids["Ā"]] == b"\x00"  # a lead byte alone; byte 0
    merged = next(t for t in ids if t.startswith("Ġ") and len(t) > 3)
    assert vocab[ids[merged]] == b" " + merged[1:].encode()


def test_wordpiece_spelling(wordpiece_tokenizer):
    vocab = byte_vocab(wordpiece_tokenizer)
    ids = wordpiece_tokenizer.backend_tokenizer.get_vocab()
    word_initial = next(t for t in ids if t.isalpha() and len(t) > 2)
    continuation = next(t for t in ids if t.startswith("##") and len(t) > 3)
    assert vocab[ids[word_initial]] == b" " + word_initial.encode()
    assert vocab[ids[continuation]] == continuation[2:].encode()
    assert vocab[ids["[CLS]"]] is None and vocab[ids["[MASK]"]] is None


def test_sentencepiece_byte_fallback_and_metaspace():
    tok = _need("llama2")  # phi-3 GGUF: Llama-2 SPM with byte fallback and 64 added tokens
    style = tokenizer_style(tok.backend_tokenizer)
    assert style.kind == "metaspace" and style.byte_fallback
    vocab = byte_vocab(tok)
    ids = tok.backend_tokenizer.get_vocab()
    assert vocab[ids["<0x0A>"]] == b"\n" and vocab[ids["<0xE6>"]] == b"\xe6"
    assert vocab[ids["▁the"]] == b" the"
    assert vocab[tok.bos_token_id] is None and vocab[tok.eos_token_id] is None
    text = "Hello world,\n  naïve café 東京 🦙!"
    got, _ = concat_bytes(tok, text)
    assert got == b" " + text.encode()  # the Prepend("▁") normaliser's space


def test_added_non_special_tokens_are_their_content(bpe_tokenizer):
    from zett.testing import train_tokenizer

    tok = train_tokenizer(vocab_size=300)
    tok.add_tokens(["<custom marker>"])
    i = tok.convert_tokens_to_ids("<custom marker>")
    assert byte_vocab(tok)[i] == b"<custom marker>"


def test_special_token_roles(bpe_tokenizer, wordpiece_tokenizer):
    assert special_token_roles(bpe_tokenizer) == {0: "bos", 1: "eos", 2: "pad", 3: "unk"}
    assert special_token_roles(wordpiece_tokenizer) == {0: "pad", 1: "unk", 2: "cls", 3: "sep", 4: "mask"}


@pytest.mark.slow
def test_missing_bytes():
    assert missing_bytes(_need("gpt2")) == []
    smol = _need("smollm2-135m")
    missing = missing_bytes(smol)
    assert len(missing) == 21 and 0x04 in missing and 0xFF in missing and ord("a") not in missing
    assert smol.encode("a\x04b", add_special_tokens=False) == [smol.convert_tokens_to_ids("a"), smol.convert_tokens_to_ids("b")]


@pytest.mark.slow
def test_roles_of_shared_and_chat_tokens():
    gpt2 = _need("gpt2")
    assert special_token_roles(gpt2) == {50256: "eos"}  # bos = eos: the eos role wins
    assert role_ids(gpt2)["bos"] == 50256
    smol = _need("smollm2-135m")
    roles = special_token_roles(smol)
    assert roles[2] == "eos" and roles[1] == "bos" and roles[0] == "unk"  # <|im_end|> is eos and pad
    assert roles[3] == "chat:<repo_name>"
    assert role_ids(smol)["pad"] == 2


# -- the lossless property ---------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def gpt2_with_vocab():
    tok = _need("gpt2")
    tok._zett_bv = byte_vocab(tok)
    return tok


@PROPERTY
@given(text=TEXT)
def test_lossless_bytes_trained_bpe(bpe_tokenizer, text):
    no_special_literals(bpe_tokenizer, text)
    got, expected = concat_bytes(bpe_tokenizer, text)
    assert got == expected


@PROPERTY
@given(text=TEXT)
def test_lossless_bytes_gpt2(gpt2_with_vocab, text):
    no_special_literals(gpt2_with_vocab, text)
    got, expected = concat_bytes(gpt2_with_vocab, text)
    assert got == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2", "llama3", "starcoder", "deepseek-coder"])
def test_lossless_bytes_real_byte_level_tokenizers(name):
    tok = _need(name)
    tok._zett_bv = byte_vocab(tok)
    missing = set(missing_bytes(tok))

    @settings(max_examples=40, deadline=None)
    @given(text=TEXT)
    def check(text):
        no_special_literals(tok, text)
        got, expected = concat_bytes(tok, text)
        # A byte-level vocabulary without some byte chars drops those bytes (SmolLM2 lacks 21 of them).
        assert got == bytes(b for b in expected if b not in missing)

    check()
