"""zett.transfer with tiny models: methods, special tokens, fine-tuned variants, saving, errors."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import zett
import zett.transfer
from zett import assets
from zett.models import HypernetMismatchError, ZettHypernet, adapter
from zett.testing import tiny_bert, tiny_llama, train_tokenizer
from zett.tokenizers import byte_vocab
from zett.transfer import TransferError, save_transferred

TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"


@pytest.fixture(scope="module")
def base_tok():
    tok = train_tokenizer(vocab_size=300)
    tok.chat_template = TEMPLATE
    return tok


@pytest.fixture(scope="module")
def target_tok():
    return train_tokenizer(vocab_size=400, kind="unigram")


@pytest.fixture(scope="module")
def llama(base_tok):
    return tiny_llama(base_tok)


@pytest.fixture(scope="module")
def untied(base_tok):
    return tiny_llama(base_tok, tie=False, seed=2)


def _golden_inputs(name="gpt2"):
    return open(str(assets.file(name)) + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")


def test_package_is_callable():
    assert callable(zett.transfer) and zett.transfer.transfer is not None
    import types

    assert isinstance(zett.transfer, types.ModuleType)


@pytest.mark.parametrize("which", ["llama", "untied"])
def test_untrained_hypernet_equals_fvt(which, request, base_tok, target_tok):
    base = request.getfixturevalue(which)
    fvt_model, fvt_tok = zett.transfer(base, target_tok, method="fvt", base_tokenizer=base_tok, progress=False)
    hn = ZettHypernet.from_base_model(base)
    hn_model, hn_tok = zett.transfer(base, target_tok, method="hypernet", hypernet=hn, base_tokenizer=base_tok,
                                     progress=False, chunk_size=16)
    assert fvt_tok.get_vocab() == hn_tok.get_vocab()
    assert torch.equal(adapter.input_embeddings(hn_model), adapter.input_embeddings(fvt_model))
    assert torch.equal(adapter.output_embeddings(hn_model), adapter.output_embeddings(fvt_model))
    assert adapter.is_tied(hn_model) == adapter.is_tied(base)
    # the base model passed in is untouched (a copy was transferred)
    assert adapter.input_embeddings(base).shape[0] == len(base_tok)


def test_bert_with_bias_untrained_hypernet_equals_fvt(wordpiece_tokenizer, target_tok):
    bert = tiny_bert(wordpiece_tokenizer)
    with torch.no_grad():
        adapter.output_bias(bert).normal_()
    fvt_model, _ = zett.transfer(bert, target_tok, method="fvt", base_tokenizer=wordpiece_tokenizer,
                                 progress=False)
    hn = ZettHypernet.from_base_model(bert)
    hn_model, _ = zett.transfer(bert, target_tok, method="hypernet", hypernet=hn,
                                base_tokenizer=wordpiece_tokenizer, progress=False)
    assert torch.equal(adapter.input_embeddings(hn_model), adapter.input_embeddings(fvt_model))
    assert torch.equal(adapter.output_bias(hn_model), adapter.output_bias(fvt_model))
    assert adapter.output_bias(hn_model).shape == (len(target_tok),)


def test_trained_hypernet_is_chunk_size_independent(untied, base_tok, target_tok):
    hn = ZettHypernet.from_base_model(untied)
    with torch.no_grad():
        for p in hn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    a, _ = zett.transfer(untied, target_tok, "hypernet", hn, base_tokenizer=base_tok, progress=False, chunk_size=5)
    b, _ = zett.transfer(untied, target_tok, "hypernet", hn, base_tokenizer=base_tok, progress=False)
    # equal up to float rounding only: the CPU matmul picks other kernels for chunks of fewer than ~8 rows
    # (tests/test_models_hypernet.py checks bit-exact chunk independence at the model level)
    torch.testing.assert_close(adapter.output_embeddings(a), adapter.output_embeddings(b), atol=1e-7, rtol=1e-6)
    fvt, _ = zett.transfer(untied, target_tok, "fvt", base_tokenizer=base_tok, progress=False)
    assert not torch.allclose(adapter.input_embeddings(a), adapter.input_embeddings(fvt))


def test_fvt_rows_are_means_of_base_pieces(llama, base_tok, target_tok):
    from zett.tokenizers import surface_forms

    model, tok = zett.transfer(llama, target_tok, "fvt", base_tokenizer=base_tok, progress=False)
    sf = surface_forms(tok, base_tok)
    e_base, e_new = adapter.input_embeddings(llama), adapter.input_embeddings(model)
    checked = 0
    for i in range(len(tok)):
        if sf.special[i] >= 0:
            assert torch.equal(e_new[i], e_base[sf.special[i]])
            continue
        pieces = sf.ids[i][sf.mask[i]]
        pieces = pieces[pieces < len(base_tok)]
        if len(pieces):
            torch.testing.assert_close(e_new[i], e_base[pieces].mean(0), atol=1e-7, rtol=1e-6)
            checked += 1
    assert checked > len(tok) // 2


def test_special_tokens_by_role_and_chat_template_tokens(llama, base_tok, wordpiece_tokenizer):
    model, tok = zett.transfer(llama, wordpiece_tokenizer, "fvt", base_tokenizer=base_tok, progress=False)
    info = model.zett_transfer_info
    assert info.added_special_tokens == ["<s>", "</s>"]
    vocab, base_vocab = tok.get_vocab(), base_tok.get_vocab()
    e_base, e_new = adapter.input_embeddings(llama), adapter.input_embeddings(model)
    for content in ("<s>", "</s>"):
        assert torch.equal(e_new[vocab[content]], e_base[base_vocab[content]])
    # role mapping: the target's [PAD] / [UNK] get the base <pad> / <unk> rows
    assert torch.equal(e_new[vocab["[PAD]"]], e_base[base_vocab["<pad>"]])
    assert torch.equal(e_new[vocab["[UNK]"]], e_base[base_vocab["<unk>"]])
    # ordinary text tokenizes exactly as with the target; the chat template still renders and uses <s> </s>
    text = "Hello world, the quick brown fox."
    assert tok(text)["input_ids"] == wordpiece_tokenizer(text)["input_ids"]
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert rendered == "<s>user\nhi</s>\n"
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert ids[0] == vocab["<s>"] and vocab["</s>"] in ids
    # config ids remapped to the new vocabulary, by content first
    assert model.config.bos_token_id == vocab["<s>"] and model.config.eos_token_id == vocab["</s>"]
    assert model.config.vocab_size == len(tok)


def test_lexical_copies_exact_matches_and_is_seeded(untied, base_tok, target_tok):
    m1, tok = zett.transfer(untied, target_tok, "lexical", base_tokenizer=base_tok, progress=False, seed=1)
    m2, _ = zett.transfer(untied, target_tok, "lexical", base_tokenizer=base_tok, progress=False, seed=1)
    m3, _ = zett.transfer(untied, target_tok, "lexical", base_tokenizer=base_tok, progress=False, seed=2)
    assert torch.equal(adapter.input_embeddings(m1), adapter.input_embeddings(m2))
    assert not torch.equal(adapter.input_embeddings(m1), adapter.input_embeddings(m3))
    base_index = {b: i for i, b in reversed(list(enumerate(byte_vocab(base_tok)))) if b is not None}
    copied = 0
    for i, b in enumerate(byte_vocab(tok)):
        if b is not None and b in base_index:
            assert torch.equal(adapter.output_embeddings(m1)[i], adapter.output_embeddings(untied)[base_index[b]])
            copied += 1
    assert copied == m1.zett_transfer_info.n_copied > 10


def test_random_matches_base_statistics(base_tok):
    big = tiny_llama(base_tok, hidden_size=16)
    target = train_tokenizer(vocab_size=2000, kind="unigram", texts=[t * 3 for t in _golden_inputs()])
    model, tok = zett.transfer(big, target, "random", base_tokenizer=base_tok, progress=False)
    new, old = adapter.input_embeddings(model).detach(), adapter.input_embeddings(big).detach()
    assert new.shape == (len(tok), 16)
    assert (new.mean(0) - old.mean(0)).abs().max() < 3 * old.std() / len(tok) ** 0.5 * 2
    torch.testing.assert_close(new.std(0), old.std(0), rtol=0.15, atol=1e-3)


def test_saved_directory_loads_without_zett(untied, base_tok, tmp_path):
    model, tok = zett.transfer(untied, "gpt2", "fvt", base_tokenizer=base_tok, progress=False)
    out = save_transferred(model, tok, tmp_path / "out")
    inputs = _golden_inputs("gpt2")
    expected = [tok(t, add_special_tokens=False)["input_ids"] for t in inputs]
    target = zett.tokenizers.load_tokenizer("gpt2")
    assert expected == [target(t, add_special_tokens=False)["input_ids"] for t in inputs]
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    code = textwrap.dedent(f"""
        import json, sys, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
        model = AutoModelForCausalLM.from_pretrained({str(out)!r})
        tok = AutoTokenizer.from_pretrained({str(out)!r})
        inputs = json.load(open({str(tmp_path / 'inputs.json')!r}))
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in inputs]
        x = torch.tensor([tok("Hello world")["input_ids"]])
        logits = model(input_ids=x).logits
        chat = tok.apply_chat_template([{{"role": "user", "content": "hi"}}], tokenize=False)
        gen = GenerationConfig.from_pretrained({str(out)!r})
        print(json.dumps({{"ids": ids, "vocab": model.config.vocab_size, "logits": list(logits.shape),
                          "tied": model.config.tie_word_embeddings, "chat": chat, "eos": gen.eos_token_id,
                          "zett": any(m.startswith("zett") for m in sys.modules)}}))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert not got["zett"]
    assert got["ids"] == expected
    assert got["vocab"] == len(tok) == 50257 + 2 and got["logits"] == [1, 2, len(tok)]
    assert got["tied"] is False
    assert got["chat"] == "<s>user\nhi</s>\n" and got["eos"] == tok.get_vocab()["</s>"]
    record = json.loads((out / "zett_transfer.json").read_text())
    assert record["method"] == "fvt" and record["added_special_tokens"] == ["<s>", "</s>"]


def test_bert_saved_and_reloaded_as_masked_lm(wordpiece_tokenizer, target_tok, tmp_path):
    from transformers import AutoModelForMaskedLM

    bert = tiny_bert(wordpiece_tokenizer)
    model, tok = zett.transfer(bert, target_tok, "fvt", base_tokenizer=wordpiece_tokenizer, progress=False)
    save_transferred(model, tok, tmp_path)
    again = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(adapter.output_bias(again), adapter.output_bias(model))
    assert again.config.vocab_size == len(tok) and adapter.is_tied(again)


def test_models_and_tokenizers_from_paths(llama, base_tok, target_tok, tmp_path):
    llama.save_pretrained(tmp_path / "base")
    base_tok.save_pretrained(tmp_path / "base")
    target_tok.save_pretrained(tmp_path / "target")
    model, tok = zett.transfer(str(tmp_path / "base"), str(tmp_path / "target"), "fvt", progress=False)
    ref, _ = zett.transfer(llama, target_tok, "fvt", base_tokenizer=base_tok, progress=False)
    assert torch.equal(adapter.input_embeddings(model), adapter.input_embeddings(ref))
    assert tok.chat_template == TEMPLATE


def test_finetuned_variant_gets_base_predictions_and_keeps_its_template(llama, base_tok, target_tok, tmp_path):
    ft = tiny_llama(base_tok, seed=5)       # same vocabulary, different weights everywhere
    ft_tok = train_tokenizer(vocab_size=300)
    ft_tok.chat_template = TEMPLATE.replace("\n{{ m['content'] }}", ": {{ m['content'] }}")
    ft.save_pretrained(tmp_path / "ft")
    ft_tok.save_pretrained(tmp_path / "ft")
    model, tok = zett.transfer(llama, target_tok, "fvt", base_tokenizer=base_tok, progress=False,
                               finetuned_model=str(tmp_path / "ft"))
    ref, _ = zett.transfer(llama, target_tok, "fvt", base_tokenizer=base_tok, progress=False)
    special = [i for i in range(len(tok)) if i in tok.all_special_ids]
    normal = torch.tensor([i for i in range(len(tok)) if i not in special])
    assert torch.equal(adapter.input_embeddings(model)[normal], adapter.input_embeddings(ref)[normal])
    # the body is the fine-tuned model's, and so is the chat template
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, ft.model.layers[0].mlp.up_proj.weight)
    assert tok.chat_template == ft_tok.chat_template
    other = tiny_llama(train_tokenizer(vocab_size=280))
    other.save_pretrained(tmp_path / "other")
    train_tokenizer(vocab_size=280).save_pretrained(tmp_path / "other")
    with pytest.raises(TransferError, match="was not fine-tuned from base model"):
        zett.transfer(llama, target_tok, "fvt", base_tokenizer=base_tok, finetuned_model=str(tmp_path / "other"))


def test_focus_dispatch(llama, base_tok, target_tok):
    with pytest.raises(TransferError, match="needs texts="):
        zett.transfer(llama, target_tok, "focus", base_tokenizer=base_tok, progress=False)
    from zett.testing import SAMPLE_TEXTS

    model, tok = zett.transfer(llama, target_tok, "focus", base_tokenizer=base_tok, progress=False,
                               texts=SAMPLE_TEXTS, epochs=1)
    assert adapter.input_embeddings(model).shape == (len(tok), 32)
    assert torch.isfinite(adapter.input_embeddings(model)).all()


def test_user_errors_are_clear(llama, base_tok, target_tok, tmp_path, bpe_tokenizer):
    with pytest.raises(TransferError, match="unknown transfer method 'magic'; use one of fvt, hypernet"):
        zett.transfer(llama, target_tok, "magic", base_tokenizer=base_tok)
    with pytest.raises(TransferError, match="no shipped hypernetwork fits the base model"):
        zett.transfer(llama, target_tok, "hypernet", base_tokenizer=base_tok)  # no hypernet named, none shipped fits
    with pytest.raises(TransferError, match="hypernetwork '.*nowhere' not found"):
        zett.transfer(llama, target_tok, "hypernet", str(tmp_path / "nowhere"), base_tokenizer=base_tok)
    with pytest.raises(TransferError, match="cannot find model '.*missing-model'"):
        zett.transfer(str(tmp_path / "missing-model"), target_tok)
    with pytest.raises(TransferError, match="cannot load tokenizer"):
        zett.transfer(llama, str(tmp_path / "no-tokenizer"), base_tokenizer=base_tok)
    with pytest.raises(TransferError, match="unexpected argument"):
        zett.transfer(llama, target_tok, "fvt", base_tokenizer=base_tok, texts=["x"])
    other = ZettHypernet.from_base_model(tiny_llama(bpe_tokenizer, seed=9))
    other.save_pretrained(tmp_path / "hn")
    with pytest.raises(HypernetMismatchError, match="built for .* but the base model given is"):
        zett.transfer(llama, target_tok, "hypernet", str(tmp_path / "hn"), base_tokenizer=base_tok)


def test_length_chunks_cover_every_token_once_without_padding():
    from zett.transfer.predict import length_chunks

    lengths = torch.tensor([3, 1, 1, 2, 7, 0, 3, 3, 1, 2, 2, 2, 2])
    mask = torch.arange(7)[None] < lengths[:, None]
    chunks = length_chunks(mask, chunk_size=3)
    assert sorted(torch.cat(chunks).tolist()) == list(range(len(lengths)))
    assert all(len(c) <= 3 and len(set(lengths[c].tolist())) == 1 for c in chunks)
    assert len(chunks) == 6            # lengths 0, 1, 2 (5 tokens: 3 + 2), 3, 7


@pytest.mark.parametrize("method", ["fvt", "hypernet", "lexical"])
def test_byte_fallback_twins_get_the_mean_row(method, untied, base_tok):
    """A ``<0xNN>`` piece whose byte is also a regular token is never emitted (``.`` wins over ``<0x2E>``); every
    method gives it the mean base row instead of a copy of its twin's row, which would split the twin's probability.
    """
    from zett.models.pieces import source_mean
    from zett.tokenizers import load_tokenizer
    from zett.tokenizers.bytes import byte_fallback_ids, shadowed_byte_fallback_ids

    assets.path("llama2")  # Llama-2 SentencePiece with <0x00>..<0xFF> (make test prefetches it)
    target = load_tokenizer("llama2")
    vocab = target.backend_tokenizer.get_vocab()
    twins = shadowed_byte_fallback_ids(target)
    assert vocab["<0x2E>"] in twins and vocab["<0x41>"] in twins
    assert vocab["<0xE6>"] not in twins and vocab["."] not in twins   # no single-byte token for 0xE6
    assert set(twins) < byte_fallback_ids(target) and 90 < len(twins) < 256
    # never emitted, even for every ASCII character; the other fallback pieces are
    text = "".join(map(chr, range(9, 127))) + " Hello, world.\n\tdef f(x): return x ** 2  # 🦙 ☃ ✓ 東京"
    emitted = set(target(text, add_special_tokens=False)["input_ids"])
    assert not emitted & set(twins) and emitted & (byte_fallback_ids(target) - set(twins))

    kwargs = {"hypernet": ZettHypernet.from_base_model(untied, max_pieces=7)} if method == "hypernet" else {}
    model, tok = zett.transfer(untied, target, method, base_tokenizer=base_tok, progress=False, **kwargs)
    assert model.zett_transfer_info.n_unemitted_byte_pieces == len(twins)
    mean = source_mean(adapter.source_embeddings(untied))
    d = mean.shape[0] // 2
    e_in, e_out = adapter.input_embeddings(model), adapter.output_embeddings(model)
    torch.testing.assert_close(e_in[twins], mean[:d].expand(len(twins), d))
    torch.testing.assert_close(e_out[twins], mean[d:].expand(len(twins), d))
    # the regular twin keeps its own row (a base token with the same bytes for FVT, hypernet and lexical copy)
    dot = vocab["."]
    assert not torch.allclose(e_out[dot], mean[d:])
    if method == "fvt":
        base_dot = base_tok.convert_tokens_to_ids(".")
        torch.testing.assert_close(e_out[dot], adapter.output_embeddings(untied)[base_dot])
