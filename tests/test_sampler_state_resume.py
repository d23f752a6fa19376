"""Sampler state reaches checkpoints through the workers' side channel and a resumed run (num_workers=2, a real
Trainer) continues from it, on batches it has not trained on before."""

from __future__ import annotations

import hashlib

import pytest
import torch
from hydra import compose, initialize_config_dir

from zett.training import CONFIG_DIR, train
from zett.training.module import ZettTrainingModule
from zett.training.sampler_state import unpack

BASE = ["experiment=debug", "logger=csv", "data.validation.pairs=[]", "validate_at_start=false", "export=false",
        "data.num_workers=2", "data.state_every=1", "callbacks.checkpoint.every_n_train_steps=4",
        "callbacks.checkpoint.save_top_k=-1"]


def _cfg(*overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=[*BASE, *overrides])


def _sampler_states(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    dm_state = next(v for k, v in ckpt.items() if k.endswith("DataModule") or "datamodule" in k.lower())
    return ckpt["global_step"], dm_state["sampler_states"]


@pytest.fixture
def seen(monkeypatch):
    """(global step, fingerprint of the batch's ids, labels, vocabulary size and domain) of every trained batch."""
    log: list[tuple[int, str]] = []
    original = ZettTrainingModule.training_step

    def recording(self, batch, batch_idx):
        h = hashlib.sha1()
        for key in ("input_ids", "labels", "surface_ids"):
            h.update(batch[key].cpu().numpy().tobytes())
        h.update(f"{batch['vocab_size']}:{batch['domain']}".encode())
        log.append((int(self.global_step), h.hexdigest()))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ZettTrainingModule, "training_step", recording)
    return log


def test_resume_with_two_workers_restores_the_sampler_state_and_trains_on_new_batches(tmp_path, seen):
    run = tmp_path / "run"
    train(_cfg("trainer.max_steps=8", f"run_dir={run}"))
    uninterrupted = [fp for _, fp in seen]
    assert [s for s, _ in seen] == list(range(8)) and len(set(uninterrupted)) == 8
    step4 = run / "checkpoints" / "step0000004.ckpt"
    step, packed = _sampler_states(step4)
    assert step == 4 and packed["format"] == 2
    saved = unpack(packed)
    assert {k.split(":")[1] for k in saved} == {"0", "1"}, saved.keys()  # both workers' samplers, via files
    # one shared substring table: each string once, however many samplers hold it
    assert len(packed["strings"]) == len(set(packed["strings"])) < sum(len(s["strings"]) for s in saved.values())

    resumed_batches = []
    for name in ("resumed", "resumed_again"):
        seen.clear()
        train(_cfg("trainer.max_steps=8", f"ckpt_path={step4}", f"run_dir={tmp_path / name}"))
        assert [s for s, _ in seen] == [4, 5, 6, 7]
        resumed_batches.append([fp for _, fp in seen])
    # no batch of the run before the checkpoint comes back after it, and a resume is deterministic
    assert not set(resumed_batches[0]) & set(uninterrupted[:4])
    assert resumed_batches[0] == resumed_batches[1]
    # By design a resumed run does not replay the uninterrupted run's batches 4..7: its text stream is seeded
    # with the resumed step, and the saved sampler states are those of the batches the workers had produced
    # (up to the prefetch depth beyond the checkpoint's step); see docs/training.md, "Resuming".
    assert resumed_batches[0] != uninterrupted[4:]

    step, resumed = _sampler_states(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    resumed = unpack(resumed)
    assert step == 8
    grew = 0
    for key, state in saved.items():
        assert key in resumed  # a sampler not used since the resume keeps its restored state
        # the batch count carries on from the saved one (a fresh sampler would count from 0 again)
        assert resumed[key]["n_batches"] >= state["n_batches"] > 0
        grew += resumed[key]["n_batches"] > state["n_batches"]
        # a restored index starts with the saved substrings in their order, new ones come after: the saved
        # substrings still queued lead the resumed list (a fresh warm-up would have interleaved them)
        now, before = resumed[key]["strings"], set(state["strings"])
        kept = [s for s in now if s in before]
        assert now[:len(kept)] == kept
        assert kept == [s for s in state["strings"] if s in set(now)]
    assert grew >= 1
