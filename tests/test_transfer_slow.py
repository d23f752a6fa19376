"""zett.transfer with the real SmolLM2-135M (slow tier)."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import zett.transfer
from zett import assets
from zett.models import adapter
from zett.tokenizers import load_tokenizer
from zett.transfer import save_transferred

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(assets.path("smollm2-135m"), dtype=torch.float32).eval()


def test_fvt_to_its_own_tokenizer_is_the_identity(smollm2):
    model, tok = zett.transfer(smollm2, "smollm2-135m", method="fvt", progress=False)
    assert model.zett_transfer_info.added_special_tokens == []
    assert torch.equal(adapter.input_embeddings(model), adapter.input_embeddings(smollm2))
    text = assets.load_corpus("botchan", "test")["text"][0][:1500]
    base_tok = load_tokenizer("smollm2-135m")
    ids = torch.tensor([base_tok(text)["input_ids"][:256]])
    assert tok(text)["input_ids"][:256] == ids[0].tolist()
    with torch.no_grad():
        expected = smollm2(input_ids=ids).logits
        got = model(input_ids=ids).logits
    assert (got - expected).abs().max().item() < 1e-4
    assert model.config.bos_token_id == 1 and model.config.eos_token_id == 2


def test_smollm2_to_gpt2_directory_loads_without_zett(smollm2, tmp_path):
    model, tok = zett.transfer(smollm2, "gpt2", method="fvt", progress=False)
    out = save_transferred(model, tok, tmp_path / "smollm2-gpt2")
    inputs = open(str(assets.file("gpt2")) + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    target = load_tokenizer("gpt2")
    expected = [target(t, add_special_tokens=False)["input_ids"] for t in inputs]
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    code = textwrap.dedent(f"""
        import json, sys, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(out)!r}).eval()
        tok = AutoTokenizer.from_pretrained({str(out)!r})
        inputs = json.load(open({str(tmp_path / 'inputs.json')!r}))
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in inputs]
        prompt = tok.apply_chat_template([{{"role": "user", "content": "What is the capital of France?"}}],
                                         tokenize=False, add_generation_prompt=True)
        x = tok(prompt, return_tensors="pt", add_special_tokens=False)
        gen = model.generate(**x, max_new_tokens=8, do_sample=False)
        print(json.dumps({{"ids": ids, "vocab": model.config.vocab_size, "prompt": prompt,
                          "prompt_ids": x["input_ids"][0].tolist(), "new": gen[0, x["input_ids"].shape[1]:].tolist(),
                          "eos": model.generation_config.eos_token_id,
                          "zett": any(m.startswith("zett") for m in sys.modules)}}))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert not got["zett"]
    assert got["ids"] == expected
    vocab = tok.get_vocab()
    assert got["vocab"] == len(tok) == 50257 + 2
    assert got["prompt"].startswith("<|im_start|>system\n")
    assert got["prompt_ids"][0] == vocab["<|im_start|>"] and vocab["<|im_end|>"] in got["prompt_ids"]
    assert got["eos"] == vocab["<|im_end|>"]
    assert len(got["new"]) >= 1
