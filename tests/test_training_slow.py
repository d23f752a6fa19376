"""Slow training tests: two-process DDP on CPU, kill-and-resume, and learning on the real SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from zett.training import CONFIG_DIR, train

ZETT_TRAIN = [sys.executable, "-m", "zett.cli.train"]
FAST = ["experiment=debug", "callbacks=none", "logger=csv", "data.validation.pairs=[[base,botchan]]",
        "data.validation.n_sequences=2"]


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
    env.pop("LOCAL_RANK", None)
    return env


@pytest.mark.slow
def test_ddp_cpu_two_processes_end_with_identical_hypernets(tmp_path):
    run = tmp_path / "ddp"
    cmd = ZETT_TRAIN + FAST + ["trainer=ddp_cpu", "trainer.max_steps=6", "trainer.val_check_interval=3",
                               f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, env=_env(), cwd=str(CONFIG_DIR.parent), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["global_step"] for r in ranks] == [6, 6]
    assert ranks[0]["hypernet_digest"] == ranks[1]["hypernet_digest"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["hypernet_digest"] == ranks[0]["hypernet_digest"]
    # the weights moved (the ranks agree because gradients were averaged, not because nothing was trained)
    from zett.models import ZettHypernet
    from zett.training.base import tiny_random_base
    from zett.training.train import params_digest

    base, _ = tiny_random_base(seed=0)
    fresh = ZettHypernet.from_base_model(base, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                                         max_pieces=7, residual=True, seed=0)
    assert params_digest(fresh) != summary["hypernet_digest"]
    assert (run / "hypernet" / "model.safetensors").exists()


@pytest.mark.slow
def test_killed_run_resumes_with_same_step_and_optimizer_state(tmp_path):
    run = tmp_path / "killed"
    cmd = ZETT_TRAIN + FAST + ["trainer.max_steps=100000", "trainer.val_check_interval=100000",
                               "callbacks.checkpoint.every_n_train_steps=3", "validate_at_start=false",
                               f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, env=_env(), cwd=str(CONFIG_DIR.parent), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not last.exists():
            time.sleep(0.5)
        assert last.exists(), "no checkpoint written within 4 minutes"
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait()
    saved = torch.load(last, map_location="cpu", weights_only=True)
    step = saved["global_step"]
    assert step >= 3 and step % 3 == 0

    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    seen = {}

    class Probe(pl.Callback):
        def on_train_start(self, trainer, module):
            state = trainer.optimizers[0].state_dict()["state"]
            ref = saved["optimizer_states"][0]["state"]
            seen["step"] = trainer.global_step
            seen["optimizer"] = all(torch.equal(state[i]["exp_avg_sq"], ref[i]["exp_avg_sq"]) and
                                    float(state[i]["step"]) == float(ref[i]["step"]) for i in ref)
            seen["weights"] = all(torch.equal(v, saved["state_dict"][k])
                                  for k, v in module.state_dict().items())

    _PROBES.append(Probe())
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=FAST + [f"run_dir={run}", f"ckpt_path={last}",
                                                 f"trainer.max_steps={step + 3}",
                                                 f"+callbacks.probe._target_={__name__}._probe"])
    summary = train(cfg)
    assert seen == {"step": step, "optimizer": True, "weights": True}
    assert summary["global_step"] == step + 3


_PROBES: list = []


def _probe():
    return _PROBES.pop()


@pytest.mark.slow
def test_smollm2_training_loss_falls_within_20_steps():
    from zett.assets import load_corpus
    from zett.models import ZettHypernet
    from zett.tokenizers import TokenizerSampler
    from zett.training.base import load_base
    from zett.training.collator import SampledTokenizerCollator
    from zett.training.context import StepContext
    from zett.training.losses import CausalLMLoss, LexicalLoss
    from zett.training.module import ZettTrainingModule

    torch.manual_seed(0)
    base, tok = load_base("smollm2-135m")
    texts = [t[:4000] for t in load_corpus("botchan", "train")["text"][:6]]
    hn = ZettHypernet.from_base_model(base, hidden_size=64, intermediate_size=128, num_layers=1, num_heads=2)
    module = ZettTrainingModule(base, hn, {"clm": CausalLMLoss(), "lexical": LexicalLoss(0.5)},
                                scheduler={"learning_rates": [1e-3], "warmup_steps": [1], "total_steps": 20})
    import functools

    factory = functools.partial(TokenizerSampler, vocab_size=2048, queue_size=2)
    col = SampledTokenizerCollator(tok, factory, block_size=24, n_subsample=1024, seed=0,
                                   warmup_texts={"en": texts})
    batch = col({"texts": [t[i * 300: i * 300 + 600] for i, t in enumerate(texts[:2])], "domain": "en"})
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95))
    losses = []
    for _ in range(20):
        ctx = StepContext(module, batch, 1)
        loss = module.losses["clm"](ctx) + 0.5 * module.losses["lexical"](ctx)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    assert all(p.grad is None for p in base.parameters())
    assert min(losses[-5:]) < losses[0] - 0.1, losses
