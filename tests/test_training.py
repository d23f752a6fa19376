"""Unit tests of the training system (tiny random models, tokenizers trained in memory; seconds)."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zett.training.chunked_ce import IGNORE_INDEX, chunked_cross_entropy
from zett.training.data import (
    DataConfigError,
    TextBatchStream,
    TextSource,
    load_sources,
    mixing_probabilities,
)
from zett.training.optim import build_optimizer, param_groups
from zett.training.schedule import JoinedWarmupCosine
from zett.training.vocab import select_vocab

# ----------------------------------------------------------------------------------------- chunked cross-entropy


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_cross_entropy_matches_full_softmax(with_bias, chunk):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(10, 8, generator=g, requires_grad=True)
    w = torch.randn(13, 8, generator=g, requires_grad=True)
    b = torch.randn(13, generator=g, requires_grad=True) if with_bias else None
    t = torch.randint(13, (10,), generator=g)
    t[[2, 7]] = IGNORE_INDEX
    nll = chunked_cross_entropy(h, w, t, b, chunk_size=chunk)
    weights = torch.linspace(0.5, 2.0, 10)
    (nll * weights).sum().backward()
    grads = [h.grad.clone(), w.grad.clone()] + ([b.grad.clone()] if with_bias else [])

    for x in [h, w] + ([b] if with_bias else []):
        x.grad = None
    logits = h @ w.T + (b if with_bias else 0)
    ref = F.cross_entropy(logits, t, reduction="none", ignore_index=IGNORE_INDEX)
    (ref * weights).sum().backward()
    torch.testing.assert_close(nll, ref)
    assert nll[2] == 0 and nll[7] == 0
    for got, x in zip(grads, [h, w] + ([b] if with_bias else []), strict=True):
        torch.testing.assert_close(got, x.grad)


def test_chunked_cross_entropy_bf16_hidden_and_bad_shapes():
    h = torch.randn(6, 4).bfloat16().requires_grad_()
    w = torch.randn(5, 4, requires_grad=True)
    t = torch.tensor([0, 1, 2, 3, 4, 0])
    nll = chunked_cross_entropy(h, w, t, max_chunk_elements=10)  # 2 rows per chunk
    ref = F.cross_entropy(h.float() @ w.T, t, reduction="none")
    torch.testing.assert_close(nll, ref)
    nll.sum().backward()
    assert h.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    with pytest.raises(ValueError, match="must be"):
        chunked_cross_entropy(torch.randn(3, 4), torch.randn(5, 3), t[:3])

# ----------------------------------------------------------------------------------------- schedule and optimizer


def test_schedule_two_phase_with_identity_warmup():
    s = JoinedWarmupCosine([3e-4, 6e-5], [100, 200], total_steps=1000, alpha=0.1)
    assert s(0) == pytest.approx(3e-4 / 100)
    assert s(99) == pytest.approx(3e-4)            # end of the identity warm-up
    assert s(100) == pytest.approx(6e-5 / 100)     # the main phase warms up again from ~0
    assert s(199) == pytest.approx(6e-5)
    assert s(200) == pytest.approx(6e-5)           # cosine starts at the last peak
    assert s(600) == pytest.approx(6e-5 * (0.1 + 0.9 * 0.5))
    assert s(1000) == pytest.approx(6e-6) and s(5000) == pytest.approx(6e-6)
    values = [s(i) for i in range(200, 1001)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_schedule_quirk_and_errors():
    # the original's no_identity configs: two rates, one boundary -> warm up to 3e-4, then cosine from 6e-5
    s = JoinedWarmupCosine([3e-4, 6e-5], [10], total_steps=110)
    assert s(9) == pytest.approx(3e-4) and s(10) == pytest.approx(6e-5)
    assert JoinedWarmupCosine([1e-3], [], total_steps=10)(0) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="increasing"):
        JoinedWarmupCosine([1e-3, 1e-4], [10, 5], 100)
    with pytest.raises(ValueError, match="boundary"):
        JoinedWarmupCosine([1e-3], [10, 20, 30], 100)


def test_optimizer_weight_decay_mask_and_frozen_params():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            self.embed_norm = torch.nn.LayerNorm(4)
            self.position_embeddings = torch.nn.Embedding(3, 4)
            self.in_scaler = torch.nn.Linear(4, 4)
            self.frozen = torch.nn.Linear(4, 4)
            self.frozen.requires_grad_(False)

    net = Net()
    groups = param_groups(net, 0.01)
    names = {id(p): n for n, p in net.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    undecayed = {names[id(p)] for p in groups[1]["params"]}
    assert decayed == {"proj.weight", "position_embeddings.weight"}
    assert undecayed == {"proj.bias", "embed_norm.weight", "embed_norm.bias", "in_scaler.weight", "in_scaler.bias"}
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    opt = build_optimizer(net, 0.01, (0.9, 0.95))
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["lr"] == 1.0

# ----------------------------------------------------------------------------------------- vocabulary selection


def test_select_vocab_subsample_keeps_batch_tokens_and_specials_and_buckets():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 6, (100,), generator=g)
    special = torch.full((100,), -1)
    special[[0, 1]] = torch.tensor([5, 6])
    used = torch.tensor([3, 50, 99, 50])
    sel = select_vocab(lengths, special, used, n_subsample=20, bucket=True, generator=g)
    assert sel.ids.numel() == 20 and len(set(sel.ids.tolist())) == 20
    assert {0, 1, 3, 50, 99} <= set(sel.ids.tolist())
    assert torch.equal(sel.ids[sel.remap[used]], used)
    ls = lengths[sel.ids]
    assert torch.all(ls[1:] >= ls[:-1])                                   # sorted by piece count
    for start, end, width in sel.buckets.tolist():
        assert torch.all(ls[start:end] == width)
    assert sel.buckets[0, 0] == 0 and sel.buckets[-1, 1] == 20
    full = select_vocab(lengths, special, used, n_subsample=None, bucket=False)
    assert torch.equal(full.ids, torch.arange(100)) and full.buckets.tolist() == [[0, 100, 5]]

# ----------------------------------------------------------------------------------------- data


def _source(name, texts, weight=1.0):
    import datasets

    return TextSource(name, datasets.Dataset.from_dict({"text": texts}), "text", weight, sum(map(len, texts)))


def test_mixing_probabilities_weights_and_size_alpha():
    a, b = _source("a", ["x" * 100]), _source("b", ["y" * 10000], weight=2.0)
    assert mixing_probabilities([a, b], 0.0) == pytest.approx([1 / 3, 2 / 3])
    p = mixing_probabilities([a, b], 0.5)
    assert p == pytest.approx(np.array([10.0, 200.0]) / 210.0)
    with pytest.raises(DataConfigError, match="positive"):
        mixing_probabilities([_source("c", ["z"], weight=0.0)], 0.0)


def test_text_stream_is_deterministic_monolingual_and_rank_specific():
    a = _source("prose", [f"document {i} " * 40 for i in range(20)])
    b = _source("code", [f"def f{i}():\n    return {i}\n" * 5 for i in range(20)])
    p = mixing_probabilities([a, b])

    def first(rank, seed=0, n=4):
        it = iter(TextBatchStream([a, b], p, batch_size=3, span_chars=50, seed=seed, rank=rank, world_size=2))
        return [next(it) for _ in range(n)]

    one, again, other_rank, other_seed = first(0), first(0), first(1), first(0, seed=1)
    assert one == again
    assert one != other_rank and one != other_seed
    for batch in one:
        assert len(batch["texts"]) == 3 and all(len(t) == 50 for t in batch["texts"])
        marker = "document" if batch["domain"] == "prose" else "return"
        assert all(marker in t or marker[:3] in t for t in batch["texts"])
    assert {b["domain"] for b in first(0, n=30)} == {"prose", "code"}


def test_local_file_sources_and_errors(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join(json.dumps({"body": f"text number {i}"}) for i in range(5)))
    [src] = load_sources({"path": str(f), "text_column": "body", "name": "mine"})
    assert src.name == "mine" and len(src.dataset) == 5 and src.size > 0
    with pytest.raises(DataConfigError, match="no column 'text'"):
        load_sources({"path": str(f)})
    with pytest.raises(DataConfigError, match="matches no"):
        load_sources({"path": str(tmp_path / "missing*.jsonl")})
    with pytest.raises(DataConfigError, match="needs one of"):
        load_sources({"weight": 1})
    (tmp_path / "a.txt").write_text("first document\nwith two lines")
    [txt] = load_sources({"path": str(tmp_path / "*.txt")})
    assert txt.dataset[0]["text"].startswith("first document\nwith")

# ----------------------------------------------------------------------------------------- collator and module


@pytest.fixture(scope="module")
def base():
    from zett.testing import tiny_llama, train_tokenizer

    tok = train_tokenizer(vocab_size=300, kind="bpe")
    return tiny_llama(tok), tok


def _sampler_factory(vocab_size=450):
    from zett.tokenizers import TokenizerSampler

    return functools.partial(TokenizerSampler, vocab_size=vocab_size, queue_size=2)


def test_sampled_collator_batch_is_consistent(base):
    from zett.testing import SAMPLE_TEXTS
    from zett.training.collator import SampledTokenizerCollator

    model, tok = base
    col = SampledTokenizerCollator(tok, _sampler_factory(), block_size=16, max_pieces=7, n_subsample=420,
                                   bucket=True, seed=3, warmup_texts={"d": SAMPLE_TEXTS[:8]})
    batch = col({"texts": SAMPLE_TEXTS[:4], "domain": "d"})
    s, width = batch["surface_ids"].shape
    assert s >= 420 - 1 and width <= 7 and batch["surface_mask"].shape == (s, width)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] <= 16 and int(batch["input_ids"].max()) < s
    keep = batch["labels"] != IGNORE_INDEX
    assert torch.equal(batch["labels"][keep], batch["input_ids"][keep])   # CLM labels are unshifted inputs
    assert torch.all(batch["attention_mask"][keep] == 1)
    assert batch["special"].shape == (s,) and int((batch["special"] >= 0).sum()) >= 1
    widths = batch["surface_mask"].sum(1)
    for start, end, w in batch["buckets"].tolist():
        assert torch.all(widths[start:end] <= w)
    # a second collator with the same seed produces the same batch (per-worker samplers are seeded)
    col2 = SampledTokenizerCollator(tok, _sampler_factory(), block_size=16, n_subsample=420, seed=3,
                                    warmup_texts={"d": SAMPLE_TEXTS[:8]})
    batch2 = col2({"texts": SAMPLE_TEXTS[:4], "domain": "d"})
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    assert torch.equal(batch["surface_ids"], batch2["surface_ids"])
    assert set(col.sampler_states()) == {"0:0:d"}


def _module(model, losses=None, objective="clm", **hn):
    from zett.models import ZettHypernet
    from zett.training.losses import CausalLMLoss, LexicalLoss
    from zett.training.module import ZettTrainingModule

    hypernet = ZettHypernet.from_base_model(model, hidden_size=16, num_layers=1, num_heads=2, **hn)
    losses = losses or {"clm": CausalLMLoss(), "lexical": LexicalLoss(0.5)}
    return ZettTrainingModule(model, hypernet, losses, objective=objective,
                              scheduler={"learning_rates": [1e-3], "warmup_steps": [1], "total_steps": 10})


def test_untrained_residual_hypernet_on_base_vocab_reproduces_base_loss(base):
    """FVT of a token onto itself is its own embedding: with the base tokenizer as the target, the module's
    loss must equal the base model's own cross-entropy; lexical and identity losses are then exactly zero."""
    from zett.testing import SAMPLE_TEXTS
    from zett.training.collator import FixedTokenizerCollator
    from zett.training.context import StepContext
    from zett.training.losses import IdentityLoss, LexicalLoss

    model, tok = base
    module = _module(model)
    col = FixedTokenizerCollator(tok, tok, block_size=24, max_pieces=7, bucket=True)
    batch = col(SAMPLE_TEXTS[:3])
    ctx = StepContext(module, batch, 0)
    nll, count = ctx.token_nll()
    # validation windows and scores texts as zett-eval does (BOS context, 24-token windows, stride 12)
    from zett.eval.metrics import score_texts

    ref = score_texts(model, tok, SAMPLE_TEXTS[:3], max_length=24)
    assert int(count) == ref.n_tokens
    assert float(nll.detach().sum()) / math.log(2) == pytest.approx(ref.nll_bits, rel=1e-4)
    assert float(LexicalLoss()(ctx)) == pytest.approx(0.0, abs=1e-8)
    assert float(IdentityLoss(n_subsample=64)(ctx)) == pytest.approx(0.0, abs=1e-8)
    # bits per byte counts every UTF-8 byte of the texts
    assert int(batch["n_bytes"]) == ref.n_bytes == sum(len(t.encode()) for t in SAMPLE_TEXTS[:3])


def test_bucketed_prediction_equals_padded_prediction(base):
    from zett.testing import SAMPLE_TEXTS
    from zett.training.collator import FixedTokenizerCollator

    model, tok = base
    module = _module(model)
    torch.manual_seed(0)
    with torch.no_grad():  # make the correction non-zero so the encoder's output matters
        for p in module.hypernet.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    target = _sampler_factory()(tok, seed=1)
    target.warm_up(SAMPLE_TEXTS)
    sampled = target.sample(SAMPLE_TEXTS[:4])
    col = FixedTokenizerCollator(sampled, tok, block_size=16, max_pieces=7, bucket=True)
    b = col(SAMPLE_TEXTS[:2])
    assert len(b["buckets"]) > 1
    with torch.no_grad():
        bucketed = module.predict(b["surface_ids"], b["surface_mask"], b["special"], b["buckets"])
        padded = module.predict(b["surface_ids"], b["surface_mask"], b["special"], None)
    torch.testing.assert_close(bucketed[0], padded[0], atol=1e-5, rtol=1e-5)


def test_training_step_gets_gradients_and_loss_falls(base):
    from zett.testing import SAMPLE_TEXTS
    from zett.training.collator import SampledTokenizerCollator
    from zett.training.context import StepContext

    model, tok = base
    module = _module(model)
    col = SampledTokenizerCollator(tok, _sampler_factory(), block_size=24, n_subsample=None, seed=0,
                                   warmup_texts={"d": SAMPLE_TEXTS})
    batch = col({"texts": SAMPLE_TEXTS[:4], "domain": "d"})
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        ctx = StepContext(module, batch, 5)
        loss = sum(t.weight * t(ctx) for t in module.losses.values())
        opt.zero_grad()
        loss.backward()
        losses.append(float(loss))
        opt.step()
    assert all(p.grad is None for p in model.parameters())               # the base stays frozen
    assert losses[-1] < losses[0] - 0.05, losses


def test_mlm_objective_with_bert_base(wordpiece_tokenizer, tiny_bert):
    from zett.testing import SAMPLE_TEXTS
    from zett.training.collator import SampledTokenizerCollator
    from zett.training.context import StepContext
    from zett.training.losses import LexicalLoss, MaskedLMLoss

    module = _module(tiny_bert, {"mlm": MaskedLMLoss(), "lexical": LexicalLoss(0.5)}, objective="mlm")
    col = SampledTokenizerCollator(wordpiece_tokenizer, _sampler_factory(500), block_size=32, objective="mlm",
                                   mlm_probability=0.3, seed=0, warmup_texts={"d": SAMPLE_TEXTS})
    batch = col({"texts": SAMPLE_TEXTS[:6], "domain": "d"})
    masked = batch["labels"] != IGNORE_INDEX
    assert 0 < int(masked.sum()) < int(batch["attention_mask"].sum())
    ctx = StepContext(module, batch, 0)
    loss = module.losses["mlm"](ctx)
    assert math.isfinite(float(loss)) and float(loss) > 0
    loss.backward()
    assert module.hypernet.input_head.proj.weight.grad.abs().sum() > 0


def test_nan_loss_raises_clear_error(base):
    from zett.training.losses import LossTerm

    class Broken(LossTerm):
        def forward(self, ctx):
            return ctx.zero() * float("nan")

    model, _ = base
    module = _module(model, {"broken": Broken()})

    class _T:
        world_size, global_step = 1, 0
    module._trainer = _T()
    with pytest.raises(FloatingPointError, match="lower scheduler.learning_rates"):
        module.training_step({"input_ids": torch.zeros(1, 2, dtype=torch.long)}, 0)


def test_frozen_base_first_moved_inside_inference_mode_still_trains(bpe_tokenizer):
    """trainer.validate (inference mode) may be the first to move the base to its device/dtype; training after it
    must still backpropagate through the base (regression: 'Inference tensors cannot be saved for backward')."""
    from zett.testing import SAMPLE_TEXTS, tiny_llama
    from zett.training.collator import FixedTokenizerCollator
    from zett.training.context import StepContext

    module = _module(tiny_llama(bpe_tokenizer))
    module.base_dtype = "bfloat16"  # forces a real move, as on GPU
    batch = FixedTokenizerCollator(bpe_tokenizer, bpe_tokenizer, block_size=16)(SAMPLE_TEXTS[:2])
    with torch.inference_mode():
        StepContext(module, batch, 0).token_nll()
    assert next(module.base_model.parameters()).dtype == torch.bfloat16
    nll, count = StepContext(module, batch, 0).token_nll()
    (nll.sum() / count).backward()
    assert module.hypernet.input_head.proj.weight.grad is not None


def test_datamodule_workers_have_own_samplers_and_report_state(bpe_tokenizer):
    import datasets

    from zett.testing import SAMPLE_TEXTS
    from zett.training.datamodule import ZettDataModule
    from zett.training.sampler_state import unpack

    ds = datasets.Dataset.from_dict({"text": SAMPLE_TEXTS})
    dm = ZettDataModule(sources=[{"dataset": ds, "name": "toy"}], batch_size=2, span_chars=60, block_size=16,
                        num_workers=2, sampler_warmup_texts=4, state_every=1, base_tokenizer=bpe_tokenizer,
                        sampler_factory=_sampler_factory())
    dm.setup("fit")
    assert dm.val_names == [] and dm.val_dataloader() == []
    it = iter(dm.train_dataloader())
    batches = [next(it) for _ in range(4)]
    del it
    assert all("sampler_state" not in b for b in batches)   # the state goes through files, not batches
    keys = {"0:0:toy", "0:1:toy"}                             # rank 0, workers 0 and 1, domain toy
    assert batches[0]["input_ids"].shape[0] == 2
    assert not torch.equal(batches[0]["surface_ids"], batches[1]["surface_ids"])  # different workers
    packed = dm.state_dict()["sampler_states"]  # one substring table for all samplers (sampler_state.pack)
    state = unpack(packed)
    assert set(state) == keys
    dm.load_state_dict({"sampler_states": packed})
    assert dm.collator is None and set(dm._sampler_states) == keys
    assert all(dm._sampler_states[k]["strings"] == state[k]["strings"] for k in keys)


# ------------------------------------------------------------------------------------- activation checkpointing
def test_activation_checkpointing_gives_the_same_gradients_and_recomputes_layers():
    from zett.models import adapter
    from zett.testing import tiny_llama
    from zett.training.base import enable_activation_checkpointing

    def grads(checkpointing: bool):
        model = tiny_llama(vocab_size=64, hidden_size=32, layers=3, seed=0).eval().requires_grad_(False)
        for layer in model.model.layers:
            layer.self_attn.attention_dropout = 0.5  # must stay off: the base is in eval mode
        if checkpointing:
            assert enable_activation_checkpointing(model) == 3
        calls = []
        layer0 = model.model.layers[0]
        # pre-hook on the first submodule: torch stops a recomputation early, once it has what backward needs
        hook = layer0.self_attn.register_forward_pre_hook(lambda *_: calls.append(1))
        embeds = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
        mask = torch.ones(2, 7, dtype=torch.long)
        adapter.hidden_states(model, embeds, mask).pow(2).mean().backward()
        hook.remove()
        assert not any(m.training for m in layer0.modules() if m is not layer0)
        assert all(p.grad is None for p in model.parameters())  # the base stays frozen
        return embeds.grad, len(calls)

    g_plain, calls_plain = grads(False)
    g_ckpt, calls_ckpt = grads(True)
    assert calls_plain == 1 and calls_ckpt == 2  # the layer ran again in backward
    torch.testing.assert_close(g_ckpt, g_plain, rtol=1e-5, atol=1e-7)


def test_activation_checkpointing_unsupported_model_is_a_clear_error():
    from zett.training.base import BaseModelError, enable_activation_checkpointing

    class NoCheckpointing(torch.nn.Module):
        supports_gradient_checkpointing = False

    with pytest.raises(BaseModelError, match="activation_checkpointing=false"):
        enable_activation_checkpointing(NoCheckpointing())
