"""The cut-model latents objective: layer-k states of a model cut after layer k, a teacher cache of a fixed span set,
and the fixed span stream that feeds it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zett.testing import SAMPLE_TEXTS


@pytest.fixture(scope="module")
def base4():
    """A tiny random Llama with 4 layers (so that a cut at layer 2 leaves layers above it) and its tokenizer."""
    from zett.models.tiny import tiny_llama
    from zett.testing import train_tokenizer

    tok = train_tokenizer(vocab_size=300, kind="bpe")
    return tiny_llama(tok, layers=4), tok


def _sampler_factory(tok, seed=0):
    from zett.tokenizers import TokenizerSampler

    return TokenizerSampler(tok, vocab_size=600, queue_size=2, seed=seed)


def _module(model, tok, layer):
    from zett.models import ZettHypernet
    from zett.training.distill import LatentLoss
    from zett.training.module import ZettTrainingModule

    hn = ZettHypernet.from_base_model(model, hidden_size=16, num_layers=1, num_heads=2, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move off the FVT start so that the correction shapes the loss
        for p in hn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return ZettTrainingModule(model, hn, {"latents": LatentLoss(layer=layer)}, base_tokenizer=tok,
                              scheduler={"learning_rates": [1e-3], "warmup_steps": [1], "total_steps": 10})


def _batch(tok, texts=SAMPLE_TEXTS[:4], span_ids=None):
    from zett.training.collator import SampledTokenizerCollator, TeacherAligner

    col = SampledTokenizerCollator(tok, _sampler_factory, block_size=24, n_subsample=1, seed=0,
                                   warmup_texts={"d": SAMPLE_TEXTS}, teacher=TeacherAligner(tok, ("unconstrained",), 24))
    item = {"texts": list(texts), "domain": "d"}
    if span_ids is not None:
        item["span_ids"] = span_ids
    return col(item)


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_cut_model_states_equal_the_full_models_hidden_states(base4, layer):
    from zett.models import adapter

    model, _ = base4
    x = torch.randn(2, 9, model.config.hidden_size, generator=torch.Generator().manual_seed(layer))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        ref = model.model(inputs_embeds=x, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
    torch.testing.assert_close(adapter.hidden_states_at(model, x, mask, layer), ref, atol=1e-6, rtol=1e-6)
    calls = []
    hooks = [lay.register_forward_hook(lambda *a, i=i: calls.append(i)) for i, lay in enumerate(model.model.layers)]
    adapter.hidden_states_at(model, x, mask, layer)
    for h in hooks:
        h.remove()
    assert calls == list(range(layer))  # the layers above the cut never run
    with pytest.raises(ValueError, match="outside 0..3"):
        adapter.hidden_states_at(model, x, mask, 4)


def test_cut_latents_loss_and_gradient_equal_the_full_models(base4):
    """The latents loss at layer k on the cut model has the loss and the gradient of the same loss computed on the
    full model's ``hidden_states[k]`` (teacher and student), to 1e-5."""
    from zett.models import adapter
    from zett.training.context import StepContext
    from zett.training.distill import latent_loss

    model, tok = base4
    layer = 2
    module = _module(model, tok, layer)
    batch = _batch(tok)
    cut = module.losses["latents"](StepContext(module, batch, 0))
    g_cut = torch.autograd.grad(cut, list(module.hypernet.parameters()), allow_unused=True)

    ctx = StepContext(module, batch, 0)
    e_in = ctx.embeddings[0]
    hs = model.model(inputs_embeds=e_in[batch["input_ids"]], attention_mask=batch["attention_mask"],
                     output_hidden_states=True).hidden_states[layer]
    with torch.no_grad():
        src = adapter.source_embeddings(model)
        ht = model.model(inputs_embeds=src[batch["teacher_input_ids"]], attention_mask=batch["teacher_attention_mask"],
                         output_hidden_states=True).hidden_states[layer]
    a_t, a_s, mask = ctx.alignment("unconstrained")
    full = latent_loss(ht, hs, a_t, a_s, mask, skip_first=True)
    g_full = torch.autograd.grad(full, list(module.hypernet.parameters()), allow_unused=True)
    assert float(full.detach()) > 1e-3  # a real comparison, not two zeros
    torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-5)
    n = 0
    for a, b in zip(g_cut, g_full, strict=True):
        if a is None or b is None:
            assert a is None and b is None
            continue
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        n += int(a.abs().sum() > 0)
    assert n > 0


def test_teacher_cache_is_deterministic_serves_the_batch_and_refuses_another_key(base4, tmp_path):
    from zett.training.context import StepContext
    from zett.training.teacher_cache import TeacherCache, TeacherCacheError, cache_key

    model, tok = base4
    texts = [t * 3 for t in SAMPLE_TEXTS[:6]]
    a = TeacherCache.build(model, tok, texts, [1, 2], 24, tmp_path / "a", batch_size=4, progress=False)
    TeacherCache.build(model, tok, texts, [1, 2], 24, tmp_path / "b", batch_size=4, progress=False)
    for name in ("ids.npy", "layer1.npy", "layer2.npy", "layer1_scale.npy", "layer2_scale.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["n_spans"] == 6 and meta["size_bytes"] > 0 and meta["key"]["layers"] == [1, 2]
    assert np.all(a.scale(2).numpy() > 0)

    # the cached states are the teacher's: equal to the cut model on the batch's base tokenization (float16)
    module = _module(model, tok, 2)
    batch = _batch(tok, texts[1:5], span_ids=[1, 2, 3, 4])
    computed = StepContext(module, batch, 0).teacher_hidden_at(2)
    module.teacher_cache = a
    cached = StepContext(module, batch, 0).teacher_hidden_at(2)
    valid = batch["teacher_attention_mask"].bool()
    torch.testing.assert_close(cached[valid], computed[valid], atol=2e-3, rtol=2e-3)
    with pytest.raises(TeacherCacheError, match="differs from the cached one"):  # the wrong spans for the batch
        StepContext(module, {**batch, "span_ids": torch.tensor([0, 1, 2, 3])}, 0).teacher_hidden_at(2)

    key = cache_key(model, tok, texts, 24, [1, 2])
    assert TeacherCache.open(tmp_path / "a", key).key == key
    for other in (cache_key(model, tok, texts[:5], 24, [1, 2]),  # another span set
                  cache_key(model, tok, texts, 16, [1, 2]),  # another block size
                  cache_key(model, tok, texts, 24, [1])):  # another layer
        with pytest.raises(TeacherCacheError, match="was built for another"):
            TeacherCache.open(tmp_path / "a", other)
    from zett.models.tiny import tiny_llama

    other_base = tiny_llama(tok, layers=4, seed=1)
    with pytest.raises(TeacherCacheError, match="another base"):
        TeacherCache.open(tmp_path / "a", cache_key(other_base, tok, texts, 24, [1, 2]))
    with pytest.raises(TeacherCacheError, match="no meta.json"):
        TeacherCache.open(tmp_path)


def test_fixed_span_stream_epochs_ranks_workers_and_resume():
    from zett.training.data import DataConfigError, FixedSpanStream

    texts = [f"span {i}" for i in range(20)]
    s = FixedSpanStream(texts, batch_size=3, seed=0)
    it = iter(s)
    first = [next(it) for _ in range(12)]
    per_epoch = s.batches_per_epoch
    assert per_epoch == 6
    ids = [i for b in first[:per_epoch] for i in b["span_ids"]]
    assert len(set(ids)) == len(ids) == 18  # an epoch never repeats a span
    assert all(b["texts"] == [texts[i] for i in b["span_ids"]] for b in first)
    assert first[per_epoch]["span_ids"] != first[0]["span_ids"]  # a new order each epoch
    resumed = iter(FixedSpanStream(texts, batch_size=3, seed=0, offset=7))
    assert [next(resumed)["span_ids"] for _ in range(5)] == [b["span_ids"] for b in first[7:12]]
    r0, r1 = (FixedSpanStream(texts, batch_size=3, seed=0, rank=r, world_size=2) for r in (0, 1))
    assert not set(r0.batch(0) + r0.batch(1) + r0.batch(2)) & set(r1.batch(0) + r1.batch(1) + r1.batch(2))
    with pytest.raises(DataConfigError, match="data.fixed_spans=2"):
        FixedSpanStream(texts[:2], batch_size=3)


def test_zett_train_latents_at_a_layer_builds_and_reuses_the_cache(tmp_path):
    from test_distill_training import compose_cfg

    from zett.training.train import train

    cache = tmp_path / "cache"
    common = ("experiment=debug", "loss=latents", "loss.layer=1", "data.fixed_spans=16", "data.n_vocab_subsample=1",
              "trainer.max_steps=4", "trainer.val_check_interval=4", f"loss.teacher_cache={cache}",
              "data.validation.batch_size=2")
    s1 = train(compose_cfg(*common, f"run_dir={tmp_path / 'r1'}"))
    assert (cache / "meta.json").is_file() and s1["global_step"] == 4
    stamp = (cache / "layer1.npy").stat().st_mtime_ns
    first, last = s1["validation_history"][0], s1["validation_history"][-1]
    assert first["step"] == 0 and last["step"] == 4 and np.isfinite(last["val/bpb"])
    # learning curves over cost: student tokens and process CPU seconds (validation excluded) at every validation
    assert first["tokens_seen"] == 0 and last["tokens_seen"] > 4 * 4 * 8
    assert 0 < first["cpu_seconds"] < last["cpu_seconds"] <= s1["cpu_seconds"]
    # validation reports its noise: a standard error per pair and of the paired change since the last validation
    assert 0 < last["val/gpt2/botchan/bpb_se"] < 1 and "delta_se" not in " ".join(first)
    assert 0 <= last["val/gpt2/botchan/delta_se"] < last["val/gpt2/botchan/bpb_se"] and last["val/delta_se"] >= 0
    s2 = train(compose_cfg(*common, f"run_dir={tmp_path / 'r2'}"))
    assert (cache / "layer1.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert s2["hypernet_digest"] == s1["hypernet_digest"]  # same seed, same spans, same cache: same run
    from zett.cli.errors import UserError
    from zett.training.teacher_cache import TeacherCacheError

    with pytest.raises(UserError, match="loss.layer=2 is invalid"):
        train(compose_cfg(*common, "loss.layer=2", f"run_dir={tmp_path / 'r3'}"))
    with pytest.raises(TeacherCacheError, match="another spans"):  # another span set into the same cache
        train(compose_cfg(*common, "data.fixed_spans=20", f"run_dir={tmp_path / 'r4'}"))


def test_default_cache_directory_is_keyed_under_zett_home(base4, monkeypatch, tmp_path):
    from zett.training.teacher_cache import cache_key, default_dir

    model, tok = base4
    monkeypatch.setenv("ZETT_HOME", str(tmp_path))
    k1, k2 = cache_key(model, tok, ["a b"], 8, [1]), cache_key(model, tok, ["a b"], 8, [2])
    assert default_dir(k1).parent == tmp_path / "teacher-cache" and default_dir(k1) != default_dir(k2)


def test_ratio_standard_error():
    from zett.training.module import ratio_se

    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, generator=g, dtype=torch.float64) + 3
    # equal denominators: the standard error of the mean
    assert ratio_se(x, torch.ones(50, dtype=torch.float64)) == pytest.approx(float(x.std() / 50 ** 0.5), rel=1e-9)
    den = torch.rand(50, generator=g, dtype=torch.float64) + 0.5
    assert ratio_se(2.0 * den, den) == pytest.approx(0.0, abs=1e-12)  # an exact ratio has no noise
    # against a bootstrap of the ratio
    num = 2.0 * den + 0.3 * torch.randn(50, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 50, (4000, 50), generator=g)
    boot = num[idx].sum(1) / den[idx].sum(1)
    assert ratio_se(num, den) == pytest.approx(float(boot.std()), rel=0.1)
