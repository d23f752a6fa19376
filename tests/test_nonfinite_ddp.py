"""A non-finite loss on one rank of a two-process DDP run stops both ranks with one message, without a hang."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zett.training import CONFIG_DIR

ZETT_TRAIN = [sys.executable, "-m", "zett.cli.train"]
FAST = ["experiment=debug", "callbacks=none", "logger=csv", "data.validation.pairs=[[base,botchan]]",
        "data.validation.n_sequences=2"]


@pytest.mark.slow
def test_nan_on_rank_1_stops_both_ranks_with_one_message(tmp_path):
    run = tmp_path / "ddp_nan"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled",
               ZETT_TEST_NONFINITE_LOSS="1@3")
    env.pop("LOCAL_RANK", None)
    cmd = ZETT_TRAIN + FAST + ["trainer=ddp_cpu", "trainer.max_steps=40", "trainer.log_every_n_steps=2",
                               "trainer.val_check_interval=1000", "validate_at_start=false", "export=false",
                               f"hydra.run.dir={run}"]
    # a hang (one rank waiting in a collective for the other) would hit the timeout and fail the test
    proc = subprocess.run(cmd, env=env, cwd=str(CONFIG_DIR.parent), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "rank 1: nan at step 3" in out and "every rank stops here" in out, out[-3000:]
    assert "rank 0: nan" not in out  # only the faulty rank is named
    assert not (run / "summary.json").exists()
