"""A zett-train run stopped by SIGTERM saves a checkpoint at the step reached, says so, exits 143 and resumes;
``last.ckpt`` is also saved by wall time (issue 21, item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["experiment=debug", "validate_at_start=false", "logger=none", "trainer.limit_val_batches=0"]


def _cfg(*overrides: str):
    from zett.training import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=[*QUIET, *overrides])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"zett-train ended (status {proc.returncode}) before {path.name}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {path.name} after {timeout} s")
        time.sleep(0.2)


def test_sigterm_saves_the_step_reached_exits_143_and_resumes(tmp_path):
    run = tmp_path / "run"
    # many steps, a step checkpoint every 3: the signal arrives while the run is well under way
    args = [*QUIET, "trainer.max_steps=100000", "callbacks.checkpoint.every_n_train_steps=3", f"hydra.run.dir={run}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "zett.cli.train", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(run / "checkpoints" / "step0000003.ckpt", proc, timeout=300)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("zett-train: stopped by SIGTERM at step") and "ckpt_path=" in last, last

    summary = json.loads((run / "summary.json").read_text())
    step = summary["global_step"]
    assert summary["finished"] is False and summary["stopped_by"] == "SIGTERM" and step >= 3
    assert summary["checkpoint"] == str(run / "checkpoints" / "last.ckpt") and summary["hypernet"] is None
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step
    assert not (run / "hypernet").exists()
    assert not list((run / "checkpoints").glob("*.tmp-*"))

    from zett.training import train

    seen.clear()
    summary = train(_cfg(f"trainer.max_steps={step + 2}", f"run_dir={run}",
                         f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"+callbacks.probe._target_={__name__}.Probe"))
    assert seen == [step, step + 1]  # continues from the step reached, to max_steps
    assert summary["global_step"] == step + 2 and summary["finished"] is True
    assert json.loads((run / "summary.json").read_text())["finished"] is True and (run / "hypernet").is_dir()


seen: list[int] = []


class Probe(__import__("pytorch_lightning").Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        seen.append(trainer.global_step)


def test_last_ckpt_is_saved_by_wall_time_between_step_checkpoints(tmp_path):
    from zett.training import train

    train(_cfg("trainer.max_steps=3", "callbacks.checkpoint.every_n_train_steps=1000",
               "callbacks.checkpoint.save_last_every_minutes=1e-9", "export=false", f"run_dir={tmp_path}"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_wall_time_interval_must_be_positive(tmp_path):
    from zett.cli.errors import UserError
    from zett.training.checkpoint import ZettCheckpoint

    with pytest.raises(UserError, match="save_last_every_minutes=0"):
        ZettCheckpoint(dirpath=str(tmp_path), save_last_every_minutes=0)
