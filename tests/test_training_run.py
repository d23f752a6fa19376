"""End-to-end runs of ``train(cfg)`` on the tiny random model, composed with Hydra like the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from zett.training import CONFIG_DIR, train

DEBUG = ["experiment=debug", "logger=csv", "data.validation.pairs=[[base,botchan],[gpt2,botchan]]",
         "data.validation.n_sequences=2"]


def compose_cfg(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=list(overrides))


GROUPS = ["base_model", "hypernet", "tokenizer_sampler", "data", "loss", "optimizer", "scheduler", "trainer",
          "logger", "callbacks", "experiment", "debug"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_config_option_composes_with_lightning_targets(group):
    options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    assert options, group
    for option in options:
        extra = ["base_model.path=/models/x"] if option.startswith(("zett-", "tinyllama", "mistral", "llama3",
                                                                      "xlm-r")) else []
        cfg = compose_cfg(f"{group}={option}", *extra)
        text = json.dumps(__import__("omegaconf").OmegaConf.to_container(cfg, resolve=False))
        assert '"lightning.' not in text and "lightning.pytorch" not in text
        assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
        assert cfg.loss.objective in ("clm", "mlm")


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("debug_run")
    summary = train(compose_cfg(*DEBUG, f"run_dir={run}"))
    return run, summary


def test_debug_experiment_trains_validates_and_exports(debug_run):
    run, summary = debug_run
    assert summary["global_step"] == 10
    assert json.loads((run / "summary.json").read_text())["global_step"] == 10
    init = summary["initial_validation"]
    assert set(init) >= {"val/base/botchan/bpb", "val/gpt2/botchan/bpb", "val/gpt2/botchan/loss"}
    steps = [h["step"] for h in summary["validation_history"]]
    assert steps == [0, 5, 10]
    assert all(0 < v < 20 for k, v in init.items() if k.endswith("bpb"))
    metrics = next((run / "logs").rglob("metrics.csv")).read_text().splitlines()
    assert "train/clm" in metrics[0] and "train/lexical" in metrics[0] and "val/gpt2/botchan/bpb" in metrics[0]

    from zett.models import ZettHypernet

    hn = ZettHypernet.from_pretrained(run / "hypernet")
    assert (run / "hypernet" / "model.safetensors").exists()
    assert hn.config.hidden_size == 32 and hn.config.num_layers == 1


def test_checkpoint_holds_hypernet_optimizer_sampler_but_not_base(debug_run):
    run, _ = debug_run
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    keys = list(ckpt["state_dict"])
    assert keys and all(k.startswith("hypernet.") for k in keys)
    assert not any("model.layers" in k or "embed_tokens" in k for k in keys)
    assert ckpt["global_step"] == 10
    opt = ckpt["optimizer_states"][0]
    assert opt["state"] and all("exp_avg" in s for s in opt["state"].values())
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 10
    dm_state = next(v for k, v in ckpt.items() if k.endswith("DataModule") or "datamodule" in k.lower())
    assert dm_state["sampler_states"], "sampler state missing from the checkpoint"
    assert ckpt["zett"]["hypernet_config"]["hidden_size"] == 32


def test_exported_hypernet_is_accepted_by_transfer(debug_run):
    run, _ = debug_run
    import zett.transfer
    from zett.models import ZettHypernet
    from zett.tokenizers import load_tokenizer
    from zett.training.base import tiny_random_base

    base, base_tok = tiny_random_base(seed=0)  # the debug base model is rebuilt deterministically
    hn = ZettHypernet.from_pretrained(run / "hypernet")
    model, tok = zett.transfer(base, load_tokenizer("gpt2"), method="hypernet", hypernet=hn,
                               base_tokenizer=base_tok, progress=False)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok) >= 50257
    ids = tok("Hello world, this is a test.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert torch.isfinite(logits).all()


def test_resume_continues_step_count_and_optimizer_state(debug_run, tmp_path):
    run, _ = debug_run
    ckpt_path = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    import pytorch_lightning as pl

    seen = {}

    class Probe(pl.Callback):
        def on_train_start(self, trainer, module):
            seen["step"] = trainer.global_step
            opt = trainer.optimizers[0]
            state = opt.state_dict()["state"]
            seen["exp_avg_equal"] = all(torch.equal(state[i]["exp_avg"], saved["optimizer_states"][0]["state"][i]
                                                    ["exp_avg"]) for i in state)

    cfg = compose_cfg(*DEBUG, f"run_dir={tmp_path}", f"ckpt_path={ckpt_path}", "trainer.max_steps=12",
                      f"+callbacks.probe._target_={__name__}._probe_factory")
    _PROBE.append(Probe())
    summary = train(cfg)
    assert seen == {"step": 10, "exp_avg_equal": True}
    assert summary["global_step"] == 12 and summary["initial_validation"] is None


_PROBE: list = []


def _probe_factory():
    return _PROBE.pop()


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path"):
        train(compose_cfg(*DEBUG, f"run_dir={tmp_path}", f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    from zett.training.data import DataConfigError

    with pytest.raises(DataConfigError, match="matches no"):
        train(compose_cfg(*DEBUG, f"run_dir={tmp_path}", "data=local",
                          f"data.sources.0.path={Path(tmp_path) / 'none' / '*.jsonl'}"))


def test_activation_checkpointing_run_matches_the_plain_run(debug_run, tmp_path):
    """base_model.activation_checkpointing=true recomputes the base's layers in backward: same training."""
    _, plain = debug_run
    summary = train(compose_cfg(*DEBUG, f"run_dir={tmp_path}", "base_model.activation_checkpointing=true"))
    assert summary["global_step"] == plain["global_step"]
    last, last_plain = summary["validation_history"][-1], plain["validation_history"][-1]
    for key in ("val/base/botchan/bpb", "val/gpt2/botchan/bpb"):
        assert last[key] == pytest.approx(last_plain[key], rel=1e-4)
    assert last["val/gpt2/botchan/bpb"] != summary["validation_history"][0]["val/gpt2/botchan/bpb"]  # it trained
