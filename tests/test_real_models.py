"""The real packaged base model, loaded offline (slow tier)."""

import random
import subprocess
import sys
import time

import pytest
import torch

from zett import assets
from zett.eval.metrics import score_texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = assets.path("smollm2-135m")
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(p), time.perf_counter() - t0


def test_smollm2_is_a_real_model(smollm2):
    model, tok, _ = smollm2
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert len(tok) == 49152


def test_smollm2_predicts_held_out_botchan_far_better_than_shuffled_text(smollm2):
    model, tok, _ = smollm2
    text = assets.load_corpus("botchan", "test")["text"][0][:6000]
    words = text.split(" ")
    random.Random(0).shuffle(words)
    real = score_texts(model, tok, [text], max_length=512).bits_per_byte
    shuffled = score_texts(model, tok, [" ".join(words)], max_length=512).bits_per_byte
    assert real < 1.5
    assert shuffled > real + 0.5


def test_asset_path_loads_with_plain_transformers_offline():
    code = (
        "import os, time, torch; os.environ['HF_HUB_OFFLINE']='1'\n"
        "from transformers import AutoModelForCausalLM\n"
        f"t=time.perf_counter(); m=AutoModelForCausalLM.from_pretrained({str(assets.path('smollm2-135m'))!r})\n"
        "print(type(m).__name__, round(time.perf_counter()-t, 2))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    name, seconds = out.stdout.split()
    assert name == "LlamaForCausalLM"
