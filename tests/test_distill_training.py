"""Distillation inside the training system: collator teacher batches, StepContext, loss balancing, zett-train."""

from __future__ import annotations

import pytest
import torch

from zett.testing import SAMPLE_TEXTS


@pytest.fixture(scope="module")
def base():
    from zett.testing import tiny_llama, train_tokenizer

    tok = train_tokenizer(vocab_size=300, kind="bpe")
    return tiny_llama(tok), tok


def _module(model, tok, losses, balance="fixed"):
    from zett.models import ZettHypernet
    from zett.training.module import ZettTrainingModule

    hypernet = ZettHypernet.from_base_model(model, hidden_size=16, num_layers=1, num_heads=2)
    return ZettTrainingModule(model, hypernet, losses, balance=balance, base_tokenizer=tok,
                              scheduler={"learning_rates": [1e-3], "warmup_steps": [1], "total_steps": 10})


def _terms():
    from zett.training.distill import AlignedKLLoss, ALMLoss, LatentLoss

    return {"alm": ALMLoss(mode="merge_by_space_prob+append_space", threshold=0.02),
            "alm_space": ALMLoss(chunks="space", mode="append_space"),
            "kl_aligned": AlignedKLLoss(), "latents": LatentLoss()}


def test_collator_adds_teacher_view_and_alignment(base):
    from zett.training.collator import SampledTokenizerCollator, TeacherAligner

    model, tok = base
    teacher = TeacherAligner(tok, ("unconstrained", "space"), block_size=20)
    col = SampledTokenizerCollator(tok, _sampler_factory, block_size=16, n_subsample=200,
                                   seed=1, warmup_texts={"d": SAMPLE_TEXTS}, teacher=teacher)
    batch = col({"texts": SAMPLE_TEXTS[:3], "domain": "d"})
    b, t = batch["input_ids"].shape
    assert batch["teacher_input_ids"].shape[0] == b and batch["teacher_input_ids"].shape[1] <= 20
    assert batch["student_space"].shape == batch["special"].shape and batch["student_space"].dtype == torch.bool
    for mode in ("unconstrained", "space"):
        al = batch["alignment"][mode]
        c = al["mask"].shape[1]
        assert al["teacher"].shape == (*batch["teacher_input_ids"].shape, c) and al["student"].shape == (b, t, c)
        # every real chunk has tokens on both sides; every token is in at most one chunk
        assert torch.all(al["teacher"].any(1)[al["mask"]]) and torch.all(al["student"].any(1)[al["mask"]])
        assert int(al["teacher"].sum(-1).max()) <= 1
    assert batch["alignment"]["space"]["mask"].sum() < batch["alignment"]["unconstrained"]["mask"].sum()
    assert int(batch["alignment_bytes"][0]) > 50 and int(batch["alignment_bytes"][1]) == 0
    with pytest.raises(ValueError, match="objective=clm"):
        SampledTokenizerCollator(tok, _sampler_factory, objective="mlm", teacher=teacher)
    with pytest.raises(ValueError, match="alignment modes"):
        TeacherAligner(tok, ("words",))


def _sampler_factory(tok, seed=0):
    from zett.tokenizers import TokenizerSampler

    return TokenizerSampler(tok, vocab_size=600, queue_size=2, seed=seed)


def test_student_is_teacher_gives_zero_losses_and_gradients(base):
    """The base tokenizer as the student with the untrained residual hypernetwork (= the base embeddings): every
    distillation term is at its minimum (0) and the hypernetwork's gradient vanishes; the base gets none."""
    from zett.training.collator import FixedTokenizerCollator, TeacherAligner
    from zett.training.context import StepContext

    model, tok = base
    module = _module(model, tok, _terms())
    col = FixedTokenizerCollator(tok, tok, block_size=24, teacher=TeacherAligner(tok, ("unconstrained", "space"), 24))
    ctx = StepContext(module, col(SAMPLE_TEXTS[:3]), 0)
    total = 0
    for name, term in module.losses.items():
        value = term(ctx)
        assert float(value.detach()) == pytest.approx(0.0, abs=1e-6), name
        total = total + value
    assert module.losses["alm"].last_stats["chunks"] > 10
    total.backward()
    grads = [p.grad.abs().max().item() for p in module.hypernet.parameters() if p.grad is not None]
    assert grads and max(grads) < 1e-5
    assert all(p.grad is None for p in model.parameters())
    # the teacher really is the base model on its own embeddings: its token log-probs match model(ids)
    lp, _ = ctx.teacher_logprobs()
    ids, mask = ctx.batch["teacher_input_ids"], ctx.batch["teacher_attention_mask"]
    with torch.no_grad():
        ref = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits, -1)
    ref_lp = ref[:, :-1].gather(2, ids[:, 1:, None])[..., 0] * mask[:, 1:]
    torch.testing.assert_close(lp[:, 1:], ref_lp, atol=1e-4, rtol=1e-4)


def test_sampled_student_trains_with_gradmag(base):
    from zett.training.collator import SampledTokenizerCollator, TeacherAligner
    from zett.training.context import StepContext
    from zett.training.losses import CausalLMLoss

    model, tok = base
    losses = {"clm": CausalLMLoss(), **_terms()}
    del losses["alm_space"]  # covered by the test above; every balanced term costs a backward pass
    module = _module(model, tok, losses, balance="gradmag")
    col = SampledTokenizerCollator(tok, _sampler_factory, block_size=24, n_subsample=None, seed=0,
                                   warmup_texts={"d": SAMPLE_TEXTS},
                                   teacher=TeacherAligner(tok, ("unconstrained", "space"), 24))
    batch = col({"texts": SAMPLE_TEXTS[:4], "domain": "d"})
    ctx = StepContext(module, batch, 0)
    values = {n: t(ctx) for n, t in module.losses.items()}
    for name, v in values.items():
        assert torch.isfinite(v) and float(v) > 0, name
    logs = {}
    total = module._combine(list(values), list(values.values()), logs)
    weights = torch.stack([logs[f"train/weight/{n}"] for n in values])
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-5) and torch.all(weights > 0)
    # balanced: every weighted term has the same gradient norm at the hypernetwork's last layer
    params = module.last_layer_parameters()
    norms = []
    for n, v in values.items():
        g = torch.autograd.grad(v, params, retain_graph=True, allow_unused=True)
        norms.append(float(logs[f"train/weight/{n}"]) * float(torch.sqrt(sum((x ** 2).sum() for x in g
                                                                               if x is not None))))
    assert max(norms) == pytest.approx(min(norms), rel=1e-3)
    total.backward()
    assert module.hypernet.input_head.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_missing_alignment_and_bad_balance_are_clear_errors(base):
    from zett.training.collator import FixedTokenizerCollator
    from zett.training.context import StepContext
    from zett.training.distill import ALMLoss

    model, tok = base
    with pytest.raises(ValueError, match="loss.balance"):
        _module(model, tok, {"alm": ALMLoss()}, balance="pcgrad")
    module = _module(model, tok, {"alm": ALMLoss()})
    ctx = StepContext(module, FixedTokenizerCollator(tok, tok, block_size=8)(SAMPLE_TEXTS[:2]), 0)
    with pytest.raises(KeyError, match="TeacherAligner"):
        module.losses["alm"](ctx)


def compose_cfg(*overrides: str):
    from hydra import compose, initialize_config_dir

    from zett.training import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=list(overrides))


def test_zett_train_debug_with_clm_alm(tmp_path):
    """``zett-train experiment=debug loss=clm_alm`` end to end (3 steps, no validation). The random tiny model spreads its
    next-token mass over 300 tokens, so no boundary reaches the default 0.1 space probability: threshold 0 here."""
    import csv

    from zett.training import train

    cfg = compose_cfg("experiment=debug", "loss=clm_alm", "loss.terms.alm.threshold=0.0", "trainer.max_steps=3",
                      "data.validation.pairs=null", "data.validation.tokenizers=[]", f"run_dir={tmp_path}")
    summary = train(cfg)
    assert summary["global_step"] == 3
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    steps = [r for r in rows if r.get("train/alm")]
    assert len(steps) == 3
    for r in steps:
        assert float(r["train/alm"]) > 0 and float(r["train/alm_chunks"]) > 10
        assert float(r["train/weight/alm"]) + float(r["train/weight/clm"]) == pytest.approx(1.0, abs=1e-4)
    assert summary["hypernet"]


def test_term_override_without_target_is_a_clear_error(tmp_path):
    from zett.training import train

    cfg = compose_cfg("experiment=debug", "loss=clm", "+loss.terms.lexical.weight=0.5", f"run_dir={tmp_path}")
    with pytest.raises(ValueError, match="loss.terms.lexical has no _target_"):
        train(cfg)
