"""Shipped hypernetworks (``zett.hypernets``): writing, loading, and their use by transfer, eval and train."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import zett.transfer
from zett import hypernets
from zett.models import ZettHypernet, adapter
from zett.testing import train_tokenizer
from zett.training.base import tiny_random_base

REPO = Path(__file__).resolve().parents[1]


def _perturbed(base, seed=0, **kw):
    hn = ZettHypernet.from_base_model(base, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in hn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return hn.eval()


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    d = tmp_path / "hypernets"
    d.mkdir()
    monkeypatch.setattr(hypernets, "SHIPPED_DIR", d)
    return d


@pytest.fixture(scope="module")
def tiny():
    return tiny_random_base(seed=0)


def test_ship_writes_small_bf16_shards_that_load_back(shipped_dir, tiny, monkeypatch):
    base, _ = tiny
    hn = _perturbed(base)
    monkeypatch.setattr(hypernets, "MAX_SHARD", "40KB")  # the real limit is 16 MiB; force several shards here
    meta = {"steps": 3}
    out = hypernets.ship(hn, shipped_dir / "tiny", f"# card\n<!-- zett-card {json.dumps(meta)} -->\n",
                         base_model_name="tiny-random")
    files = hypernets.shard_sizes("tiny")
    assert len(files) >= 2 and all(size <= 40_000 for size in files.values())
    assert (out / "model.safetensors.index.json").exists() and (out / "README.md").exists()
    for name in files:
        with safe_open(str(out / name), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    assert hypernets.available() == ["tiny"] and hypernets.card_metadata("tiny") == meta
    loaded = hypernets.load("tiny")
    assert loaded.config.base_model_name == "tiny-random" and loaded.config.format_version == 2
    for (k, a), (k2, b) in zip(hn.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and b.dtype == torch.float32
        assert torch.equal(b, a.to(torch.bfloat16).float()), k
    assert not any(p.name.startswith(".") for p in shipped_dir.iterdir())  # no temporary sibling left
    # shipping again replaces the directory whole
    hypernets.ship(hn, shipped_dir / "tiny", "# card 2\n")
    assert (out / "README.md").read_text() == "# card 2\n" and hypernets.card_metadata("tiny") == {}


def test_ship_refuses_non_finite_weights(shipped_dir, tiny):
    hn = _perturbed(tiny[0])
    with torch.no_grad():
        hn.input_linear.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        hypernets.ship(hn, shipped_dir / "bad", "card")
    assert not list(shipped_dir.iterdir())


def test_transfer_and_eval_use_the_shipped_hypernetwork_of_the_matching_base(shipped_dir, tiny):
    from zett.eval.runner import EvalConfigError, run_evaluation

    base, base_tok = tiny
    hypernets.ship(_perturbed(base), shipped_dir / "tiny", "card", base_model_name="tiny-random")
    target = train_tokenizer(vocab_size=350, kind="unigram")
    shipped = hypernets.for_base(base)
    assert shipped is not None and hypernets.match(base) == "tiny"
    a, _ = zett.transfer(base, target, "hypernet", base_tokenizer=base_tok, progress=False)
    b, _ = zett.transfer(base, target, "hypernet", shipped, base_tokenizer=base_tok, progress=False)
    fvt, _ = zett.transfer(base, target, "fvt", base_tokenizer=base_tok, progress=False)
    assert torch.equal(adapter.input_embeddings(a), adapter.input_embeddings(b))
    assert not torch.allclose(adapter.input_embeddings(a), adapter.input_embeddings(fvt))

    other, other_tok = tiny_random_base(seed=1)  # same shapes, other weights: the fingerprint tells them apart
    assert hypernets.match(other) is None
    with pytest.raises(zett.transfer.TransferError, match="no shipped hypernetwork fits"):
        zett.transfer(other, target, "hypernet", base_tokenizer=other_tok, progress=False)

    records = run_evaluation(base, [target], ["botchan"], ["shipped", "fvt"], base_tokenizer=base_tok,
                             max_bytes=600, progress=False)
    by_method = {r["method"]: r["bits_per_byte"] for r in records}
    assert set(by_method) == {"shipped", "fvt"} and by_method["shipped"] != by_method["fvt"]
    with pytest.raises(EvalConfigError, match="no shipped hypernetwork fits"):
        run_evaluation(other, [target], ["botchan"], ["hypernet"], base_tokenizer=other_tok, max_bytes=600,
                       progress=False)


def test_train_can_start_from_the_shipped_hypernetwork(shipped_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from zett.training import CONFIG_DIR
    from zett.training.train import build

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=["experiment=debug", "init_hypernet=shipped", f"run_dir={tmp_path}"])
    with pytest.raises(hypernets.ShippedHypernetError, match="init_hypernet"):
        build(cfg, tmp_path)  # nothing shipped for the tiny base yet
    base, _ = tiny_random_base(**dict(cfg.base_model.tiny), seed=int(cfg.seed))
    hn = _perturbed(base)
    hypernets.ship(hn, shipped_dir / "tiny", "card")
    _, _, module, _, _ = build(cfg, tmp_path)
    for (k, a), b in zip(hn.state_dict().items(), module.hypernet.state_dict().values(), strict=True):
        assert torch.equal(b, a.to(torch.bfloat16).float()), k


def test_records_name_a_base_loaded_from_the_asset_cache_by_its_asset_name(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("ZETT_HOME", str(tmp_path))
    base = tiny[0]
    cached = tmp_path / "assets" / "smollm2-135m"
    cached.mkdir(parents=True)
    monkeypatch.setattr(base.config, "_name_or_path", str(cached))
    assert adapter.describe(base)["base_model_name"] == "smollm2-135m"
    monkeypatch.setattr(base.config, "_name_or_path", str(tmp_path / "elsewhere" / "my-model"))
    assert adapter.describe(base)["base_model_name"] == str(tmp_path / "elsewhere" / "my-model")


@pytest.mark.slow
def test_device_script_runs_end_to_end_on_cpu_with_the_tiny_model(tmp_path):
    """scripts/device/train_shipped.py: pack (no wheels, no model download: the tiny base is built in memory), then
    the device side's stage + restore + train + export, then scripts/ship_hypernet.py writes the shipped layout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    pack = tmp_path / "pack"
    subprocess.run([sys.executable, "scripts/device/train_shipped.py", "pack", "--out", str(pack), "--no-wheels",
                    "--model", "none", "--assets", "botchan", "gpt2", "--part-mib", "0.5"],
                   cwd=REPO, env=env, check=True, capture_output=True)
    plan = json.loads((pack / "plan.json").read_text())
    assert len(plan["parts"]) >= 2 and all((pack / "parts" / p).stat().st_size <= 2**19 for p in plan["parts"])
    device_home, out = tmp_path / "device-home", tmp_path / "out"
    overrides = ["experiment=debug", "trainer.max_steps=2", "trainer.val_check_interval=2",
                 "data.validation.n_sequences=2"]
    run = [sys.executable, "scripts/device/train_shipped.py", "run", "--pack", os.path.relpath(pack, REPO),
           "--stage", str(tmp_path / "stage"), "--run-dir", str(tmp_path / "run"), "--out", str(out)]
    first = subprocess.run(run + ["--", *overrides], cwd=REPO, env={**env, "ZETT_HOME": str(device_home)},
                           capture_output=True, text=True)
    assert first.returncode == 0 and not out.exists()  # staging only
    done = subprocess.run(run + ["--go", "--", *overrides], cwd=REPO,
                          env={**env, "ZETT_HOME": str(device_home)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (device_home / "assets" / "botchan").is_dir() and (device_home / "assets" / "gpt2").is_dir()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 2 and (out / "metrics.csv").exists()
    shards = list((out / "hypernet").glob("*.safetensors"))
    assert shards and all(s.stat().st_size <= 16 * 2**20 for s in shards)
    (out / "config.yaml").write_text((tmp_path / "run" / ".hydra" / "config.yaml").read_text())
    dest = tmp_path / "shipped" / "tiny"
    subprocess.run([sys.executable, "scripts/ship_hypernet.py", "--run", str(out), "--dest", str(dest),
                    "--base", "tiny-random", "--hardware", "test"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    text = (dest / "README.md").read_text()
    meta = json.loads(text[text.index("<!-- zett-card") + 14:text.index("-->")])
    assert meta["steps"] == 2 and meta["token_positions_seen"] == 2 * 4 * 32
    assert [r[0] for r in meta["validation_curve"]["rows"]] == [0, 2]
    assert all(0 < v < 20 for r in meta["validation_curve"]["rows"] for v in r[1:])
    assert "| 2 |" in text  # the curve's table in the card
    assert json.loads((dest / "config.json").read_text())["base_model_name"] == "tiny-random"


def test_card_of_a_continued_run_carries_the_earlier_stage_on(tmp_path):
    """A run started from an earlier hypernetwork (``init_hypernet``) ships a card whose steps, token positions,
    wall time and validation curve add the earlier stage's to its own (steps counted on, not restarted)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import ship_hypernet

    first, second = tmp_path / "first", tmp_path / "second"
    for run, init, hist in ((first, None, [{"step": 0, "val/a/bpb": 2.0}, {"step": 10, "val/a/bpb": 1.5}]),
                            (second, str(tmp_path / "shipped"),
                             [{"step": 0, "val/a/bpb": 1.51, "val/b/bpb": 3.0}, {"step": 5, "val/a/bpb": 1.4,
                                                                                 "val/b/bpb": 2.9}])):
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(json.dumps(
            {"init_hypernet": init, "data": {"batch_size": 2, "block_size": 8},
             "scheduler": {"learning_rates": [1e-3 if init is None else 3e-4]}}))
        (run / "summary.json").write_text(json.dumps(
            {"global_step": hist[-1]["step"], "wall_seconds": 100.0, "validation_history": hist}))
    assert ship_hypernet.previous_card(first, "x") is None
    text, meta = ship_hypernet.card("x", "tiny", first, "", "cpu", "")
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "README.md").write_text(text)
    text, meta = ship_hypernet.card("x", "tiny", second, "", "gpu", "", ship_hypernet.previous_card(second, "x"))
    assert meta["steps"] == 15 and meta["token_positions_seen"] == 15 * 2 * 8 and meta["wall_seconds"] == 200.0
    assert [(s["steps"], s["hardware"], s["learning_rate"]) for s in meta["stages"]] == [(10, "cpu", [1e-3]),
                                                                                         (5, "gpu", [3e-4])]
    assert meta["validation_curve"] == {"columns": ["step", "val/a/bpb", "val/b/bpb"],
                                        "rows": [[0, 2.0, None], [10, 1.5, None], [10, 1.51, 3.0], [15, 1.4, 2.9]],
                                        "stage": [1, 1, 2, 2]}
    assert "Trained in 2 stages" in text and "| 2 | 15 | 1.4000 | 2.9000 |" in text and "| 1 | 10 | 1.5000 |  |" in text
