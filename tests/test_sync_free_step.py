"""The training step never waits for the device: no host syncs in a steady-state step (counted on the CPU by
``zett.training.syncs``), the non-finite check deferred to check intervals, bucketed == padded layouts."""

from __future__ import annotations

import functools

import pytest
import torch

from zett.testing import SAMPLE_TEXTS
from zett.training.syncs import count_host_syncs


def _batch(tok, bucket=True, n_subsample=None, seed=0, chunks=0):
    from zett.tokenizers import TokenizerSampler
    from zett.training.collator import SampledTokenizerCollator

    col = SampledTokenizerCollator(tok, functools.partial(TokenizerSampler, vocab_size=450, queue_size=2),
                                   block_size=24, n_subsample=n_subsample, bucket=bucket, seed=seed,
                                   warmup_texts={"d": SAMPLE_TEXTS}, bucket_chunks=chunks)
    return col({"texts": SAMPLE_TEXTS[:4], "domain": "d"})


@pytest.mark.parametrize(("n_subsample", "chunks"), [(None, 0), (400, 0), (250, 3)])
def test_steady_state_step_has_no_host_sync(tiny_llama_bpe, step_module, n_subsample, chunks):
    """Per piece-count buckets (chunks 0) and the fixed layout (``data.bucket_chunks``, whose last bucket is padded
    in the step)."""
    model, tok = tiny_llama_bpe
    module = step_module(model)
    batch = _batch(tok, n_subsample=n_subsample, chunks=chunks)
    assert len(batch["bucket_spans"]) > 1  # several buckets: the per-bucket slicing is exercised
    if chunks:
        assert batch["bucket_spans"][-1][1] > batch["surface_ids"].shape[0]  # the padding path runs
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3, foreach=False)

    def step():
        loss = module.training_step(dict(batch), 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: places the frozen base, creates the non-finite flag
    with count_host_syncs() as syncs:
        step()
    assert syncs.within("/zett/") == 0, dict(syncs.by_site)


def test_counter_sees_the_syncs_it_should():
    x = torch.arange(6)
    with count_host_syncs() as syncs:
        int(x.sum()), bool(x.any()), x.tolist(), x[x > 2], x.nonzero(), torch.equal(x, x)
        x[:2], x[torch.tensor([0, 1])]  # plain and integer indexing are no syncs
    assert syncs.total == 6 and syncs.within("test_sync_free_step.py") == 6
    int(x.sum())  # the originals are back after the block
    assert syncs.total == 6


def test_non_finite_loss_raises_at_the_next_check_not_before(tiny_llama_bpe, step_module):
    from zett.training.losses import LossTerm

    class Broken(LossTerm):
        def forward(self, ctx):
            return ctx.zero() * float("nan")

    model, tok = tiny_llama_bpe
    module = step_module(model, nonfinite_check_every=3)
    module.losses["broken"] = Broken()
    batch = _batch(tok)
    for step in (0, 1):  # no check yet: the steps run on without reading the flag
        module._trainer.global_step = step
        module.training_step(dict(batch), 0)
    module._trainer.global_step = 2
    with pytest.raises(FloatingPointError, match=r"rank 0: nan at step 0.*lower scheduler.learning_rates"):
        module.training_step(dict(batch), 0)
    with pytest.raises(ValueError, match="nonfinite_check_every"):
        step_module(model, nonfinite_check_every=0)


def test_bucketed_layout_gives_the_same_loss_and_gradients_as_padded(tiny_llama_bpe, step_module):
    model, tok = tiny_llama_bpe
    results = []
    for bucket in (True, False):
        module = step_module(model)
        with torch.no_grad():  # a non-zero correction, so the encoder's output matters
            g = torch.Generator().manual_seed(0)
            for p in module.hypernet.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
        batch = _batch(tok, bucket=bucket)
        assert (len(batch["bucket_spans"]) > 1) == bucket
        loss = module.training_step(dict(batch), 0)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in module.hypernet.named_parameters() if p.grad is not None}
        results.append((float(loss), grads))
    (loss_b, grads_b), (loss_p, grads_p) = results
    assert loss_b == pytest.approx(loss_p, rel=1e-5)
    assert grads_b.keys() == grads_p.keys() and len(grads_b) > 5
    for name in grads_b:
        torch.testing.assert_close(grads_b[name], grads_p[name], atol=1e-6, rtol=1e-4, msg=name)


def test_chunked_ce_bf16_matmuls_track_float32_and_keep_float32_statistics():
    from zett.training.chunked_ce import chunked_cross_entropy

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 16, generator=g, requires_grad=True)
    weight = torch.randn(300, 16, generator=g, requires_grad=True)
    bias = torch.randn(300, generator=g, requires_grad=True)
    targets = torch.randint(300, (50,), generator=g)
    targets[::7] = -100
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        nll = chunked_cross_entropy(hidden, weight, targets, bias, chunk_size=13, matmul_dtype=dtype)
        grads = torch.autograd.grad(nll.sum(), (hidden, weight, bias))
        assert nll.dtype == torch.float32 and all(x.dtype == torch.float32 for x in grads)
        out[dtype] = (nll.detach(), grads)
    ref = torch.nn.functional.cross_entropy(hidden @ weight.T + bias, targets, reduction="none")
    torch.testing.assert_close(out[torch.float32][0], ref.detach(), atol=1e-5, rtol=1e-5)
    # bf16 products: ~3 significant digits, nothing worse
    torch.testing.assert_close(out[torch.bfloat16][0], out[torch.float32][0], atol=0.1, rtol=0.02)
    for a, b in zip(out[torch.bfloat16][1], out[torch.float32][1], strict=True):
        assert (a - b).norm() / b.norm() < 0.02
    assert (out[torch.bfloat16][0] != out[torch.float32][0]).any()  # the bf16 path really ran


def test_fsdp_wrap_policy_makes_each_encoder_layer_and_head_a_unit(tiny_llama_bpe):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from zett.models import ZettHypernet
    from zett.training import CONFIG_DIR
    from zett.training.fsdp import hypernet_wrap_policy

    model, _ = tiny_llama_bpe
    hn = ZettHypernet.from_base_model(model, hidden_size=16, num_layers=3, num_heads=2)
    policy = hypernet_wrap_policy()
    units = [m for m in hn.modules() if policy(m, recurse=False, nonwrapped_numel=0)]
    heads = [h for h in (hn.input_head, hn.output_head) if h is not None]
    assert units == [*hn.layers, *heads] and len(units) == 3 + len(heads)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("train", overrides=["trainer=fsdp"])
    from_yaml = instantiate(cfg.trainer.strategy.auto_wrap_policy)
    assert [m for m in hn.modules() if from_yaml(m, recurse=False, nonwrapped_numel=0)] == units


def test_flop_accounting_by_hand(tiny_llama_bpe):
    from zett.models import ZettHypernet
    from zett.training.throughput import base_matmul_params, hypernet_matmul_params, step_flops

    model, _ = tiny_llama_bpe
    c = model.config
    h, i, n_layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    kv = c.num_key_value_heads * (h // c.num_attention_heads)
    # Llama layer: q, o [h, h]; k, v [kv, h]; gate, up, down [i, h]; two RMSNorm gains; plus the final norm
    by_hand = n_layers * (2 * h * h + 2 * kv * h + 3 * i * h + 2 * h) + h
    assert not c.attention_bias and not c.mlp_bias
    assert base_matmul_params(model) == by_hand
    hn = ZettHypernet.from_base_model(model, hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)
    total = sum(p.numel() for p in hn.parameters())
    assert hypernet_matmul_params(hn) == total - 256 * hn.config.source_dim - hn.config.max_pieces * 16
    f = step_flops(n_base=1000, d=8, vocab_rows=50, n_tokens=20, n_hypernet=300, n_pieces=70)
    assert f == {"base": 4 * 1000 * 20, "head": 6 * 8 * 50 * 20, "hypernet": 6 * 300 * 70,
                 "total": 80_000 + 48_000 + 126_000}


def test_throughput_metrics_are_logged_while_training(tmp_path):
    import csv

    from hydra import compose, initialize_config_dir

    from zett.training import CONFIG_DIR, train

    run = tmp_path / "perf"
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=[
            "experiment=debug", "trainer.max_steps=4", "trainer.log_every_n_steps=2", "validate_at_start=false",
            "data.validation.pairs=[]", "export=false", f"run_dir={run}",
            "+callbacks.throughput._target_=zett.training.throughput.ThroughputMonitor",
            "+callbacks.throughput.peak_flops=2e9"])
    train(cfg)
    rows = list(csv.DictReader(open(next(run.rglob("metrics.csv")))))
    perf = [r for r in rows if r.get("perf/mfu")]
    assert len(perf) == 2  # steps 2 and 4
    for r in perf:
        tflops, mfu = float(r["perf/tflops"]), float(r["perf/mfu"])
        assert tflops > 0 and mfu == pytest.approx(tflops * 1e12 / 2e9, rel=1e-6)
        assert float(r["perf/tokens_per_s"]) > 0 and 0 < float(r["perf/hypernet_share"]) <= 1
        assert 0 < float(r["perf/hypernet_flop_share"]) < 1 and float(r["perf/mfu_measured"]) > 0


def test_compiled_hypernet_gives_the_same_step_and_stays_out_of_the_state_dict(tiny_llama_bpe, step_module):
    model, tok = tiny_llama_bpe
    batch = _batch(tok)
    plain, compiled = step_module(model), step_module(model, compile_hypernet="eager")
    compiled.hypernet.load_state_dict(plain.hypernet.state_dict())
    assert "hypernet" in compiled._compiled and compiled.state_dict().keys() == plain.state_dict().keys()
    a, b = plain.training_step(dict(batch), 0), compiled.training_step(dict(batch), 0)
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    torch.testing.assert_close(compiled.hypernet.input_head.proj.weight.grad,
                               plain.hypernet.input_head.proj.weight.grad)
