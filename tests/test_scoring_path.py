"""One scoring path: training validation and zett-eval give the same bits per byte on the same text and windows."""

from __future__ import annotations

import math

import pytest
import torch

from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 4,
    "In 1919 the translator revised the novel; it was printed again in 2005. Élève, naïve café.",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n" * 2,
]


@pytest.mark.parametrize("block,stride", [(16, None), (12, 5), (512, None)])
def test_validation_and_zett_eval_agree(block, stride):
    from zett.eval.runner import ScoreSettings, score_record
    from zett.models import ZettHypernet
    from zett.training.collator import FixedTokenizerCollator
    from zett.training.losses import CausalLMLoss
    from zett.training.module import ZettTrainingModule
    from zett.transfer import transfer

    base_tok = train_tokenizer(vocab_size=300)
    target = train_tokenizer(SAMPLE_TEXTS[:5] * 4, vocab_size=280)
    base = tiny_llama(base_tok)
    hn = ZettHypernet.from_base_model(base, hidden_size=16, num_layers=1, num_heads=2)
    torch.manual_seed(0)
    with torch.no_grad():  # a hypernetwork that is not plain FVT
        for p in hn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    module = ZettTrainingModule(base, hn, {"clm": CausalLMLoss()}, objective="clm",
                                scheduler={"learning_rates": [1e-3], "warmup_steps": [1], "total_steps": 10})
    module.eval()

    # training validation: the validation collator + validation_step's sums (what val/<name>/bpb is made of)
    batch = FixedTokenizerCollator(target, base_tok, block_size=block, stride=stride)(TEXTS)
    with torch.no_grad():
        module.validation_step(batch, 0)
    nll, _, n_bytes = (float(x) for x in module._val_sums[0])
    val_bpb = nll / math.log(2) / n_bytes

    # zett-eval: the same hypernetwork through zett.transfer, scored by the function zett-eval uses
    model, tok = transfer(base, target, method="hypernet", hypernet=hn, base_tokenizer=base_tok, progress=False)
    rec = score_record(model, tok, TEXTS, ScoreSettings(max_length=block, stride=stride))
    assert n_bytes == rec["n_bytes"] == sum(len(t.encode()) for t in TEXTS)
    assert val_bpb == pytest.approx(rec["bits_per_byte"], rel=1e-5)
