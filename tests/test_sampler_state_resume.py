"""Sampler state reaches checkpoints through the workers' side channel and a resumed run (num_workers=2, a real
Trainer) continues from it."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_dir

from zett.training import CONFIG_DIR, train

BASE = ["experiment=debug", "logger=csv", "data.validation.pairs=[]", "validate_at_start=false", "export=false",
        "data.num_workers=2", "data.state_every=1", "callbacks.checkpoint.every_n_train_steps=2"]


def _cfg(*overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=[*BASE, *overrides])


def _sampler_states(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    dm_state = next(v for k, v in ckpt.items() if k.endswith("DataModule") or "datamodule" in k.lower())
    return ckpt["global_step"], dm_state["sampler_states"]


def test_resume_with_two_workers_restores_the_sampler_state(tmp_path):
    run = tmp_path / "run"
    train(_cfg("trainer.max_steps=4", f"run_dir={run}"))
    last = run / "checkpoints" / "last.ckpt"
    step, saved = _sampler_states(last)
    assert step == 4
    assert {k.split(":")[1] for k in saved} == {"0", "1"}, saved.keys()  # both workers' samplers, via files
    frozen = tmp_path / "step4.ckpt"
    frozen.write_bytes(last.read_bytes())

    train(_cfg("trainer.max_steps=8", f"ckpt_path={frozen}", f"run_dir={run}"))
    step, resumed = _sampler_states(last)
    assert step == 8
    grew = 0
    for key, state in saved.items():
        assert key in resumed  # a sampler not used since the resume keeps its restored state
        # a used sampler grew the restored index (append-only): the saved strings are its prefix; a sampler
        # warmed up afresh would have interleaved other strings after the warm-up ones
        n = len(state["strings"])
        assert resumed[key]["strings"][:n] == state["strings"]
        # the batch count carries on from the saved one (a fresh sampler would count from 0 again)
        assert resumed[key]["n_batches"] >= state["n_batches"] > 0
        grew += resumed[key]["n_batches"] > state["n_batches"]
    assert grew >= 1
