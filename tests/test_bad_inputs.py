"""Bad inputs to the four console scripts: exit 2, one message naming the setting, nothing on disk changed.

Most cases call the scripts' ``main()`` in this process with ``sys.argv`` set (the same code path as the console
script, without paying a Python start per case); a few run the installed console scripts as subprocesses to check
the whole contract (no traceback, ``ZETT_DEBUG=1``, a bug keeps its traceback). Models are the tiny random base
(``base_model=tiny-random``, ``experiment=debug``) or a tiny model directory saved from ``zett.testing``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


# ------------------------------------------------------------------------------------------------ helpers

def tree(path: Path) -> dict[str, str]:
    """relative path -> sha256 (directories -> 'dir') of everything under ``path``."""
    out = {}
    if not path.exists():
        return out
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def call(module: str, prog: str, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run ``zett.cli.<module>.main`` (or zett.assets.cli) with ``sys.argv``; -> (exit status, stderr)."""
    import importlib

    mod = importlib.import_module(module)
    monkeypatch.setattr(sys, "argv", [prog, *args])
    capsys.readouterr()
    try:
        code = mod.main() if module != "zett.assets.cli" else mod.main(args)
    except SystemExit as e:
        code = e.code
    return (0 if code is None else code), capsys.readouterr().err


def script(name: str, args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = BIN / name
    if not exe.exists():
        pytest.skip(f"{name} console script not installed (pip install -e .)")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**ENV, **(env or {})})


@pytest.fixture(scope="module")
def hn_dir(base_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from zett.models import ZettHypernet

    path = tmp_path_factory.mktemp("hn")
    ZettHypernet.from_base_model(AutoModelForCausalLM.from_pretrained(base_dir)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def previous(base_dir, tmp_path_factory):
    """A finished zett-transfer output (target sp-botchan-bpe-1k), to check it is never touched."""
    from hydra import compose, initialize_config_dir

    from zett.cli.transfer import CONFIG_DIR, transfer_from_config

    out = tmp_path_factory.mktemp("prev") / "model"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("transfer", [f"base_model.path={base_dir}", "target_tokenizer=sp-botchan-bpe-1k",
                                   f"output_dir={out}", "progress=false"])
    return transfer_from_config(cfg)


@pytest.fixture
def work(tmp_path, previous, monkeypatch):
    """A working directory holding a copy of a previous transfer as ``existing/``; cwd for the call."""
    shutil.copytree(previous, tmp_path / "existing")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "latin1.txt").write_bytes("Un café très ancien, naïve façade.\n".encode("latin-1"))
    (d / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (d / "ok.txt").write_text("A small local text file.\n" * 50, encoding="utf-8")
    (d / "other.txt").write_text("Some other text for FOCUS training.\n" * 50, encoding="utf-8")
    (d / "a_file").write_text("not a directory")
    (d / "broken.jsonl").write_text('{"text": "fine"}\n{"text": unquoted}\n')
    (d / "notext.jsonl").write_text('{"body": "no text field"}\n')
    (d / "empty.ckpt").write_bytes(b"")
    (d / "tasks" / "broken").mkdir(parents=True)
    (d / "tasks" / "broken" / "task.json").write_text('{"examples": [{"input": "2+2", "target_scores": {"4": 1,}}]}')
    from zett.testing import train_tokenizer

    # another model's tokenizer with the tiny base's vocabulary size (300), trained on other text
    train_tokenizer([f"def f{i}(x):\n    return x * {i} + 'other text'\n" for i in range(400)],
                    vocab_size=300).save_pretrained(d / "other-tok")
    bad_hn = d / "hn-no-weights"
    bad_hn.mkdir()
    (bad_hn / "config.json").write_text("{}")
    return d


def override(defaults: list[str], args: list[str]) -> list[str]:
    """``defaults`` without the keys ``args`` set (a group choice drops its keys' defaults too) + ``args``."""
    keys = {a.split("=")[0] for a in args}
    return [d for d in defaults if not any(d.split("=")[0] == k or d.startswith(k + ".") for k in keys)] + args


def check_refused(code: int, err: str, setting: str, work: Path, before: dict) -> None:
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert setting in last, last
    assert tree(work) == before


# ------------------------------------------------------------------------------------------------ zett-transfer

TRANSFER_CASES = {
    "unknown-method": (["method=magic"], "method"),
    "chunk-size-negative": (["chunk_size=-1"], "chunk_size"),
    "chunk-size-zero": (["chunk_size=0"], "chunk_size"),
    "max-pieces-zero": (["max_pieces=0"], "max_pieces"),
    "max-pieces-text": (["max_pieces=seven"], "max_pieces"),
    "dtype": (["dtype=fp8"], "dtype"),
    "unknown-target": (["target_tokenizer=no-such-tokenizer"], "target_tokenizer"),
    "target-is-a-corpus-file": (["target_tokenizer={files}/ok.txt"], "target_tokenizer"),
    "missing-target": (["target_tokenizer=???"], "target_tokenizer"),
    "hypernet-without-path": (["method=hypernet"], "hypernet_path"),
    "hypernet-path-missing": (["method=hypernet", "hypernet_path=/nonexistent/hn"], "hypernet_path"),
    "hypernet-no-weights": (["method=hypernet", "hypernet_path={files}/hn-no-weights"], "hypernet_path"),
    "base-is-a-tokenizer": (["base_model.path=null", "base_model.name=gpt2"], "base_model.name"),
    "base-path-missing": (["base_model.path=/nowhere"], "base_model.path"),
    "base-not-shipped": (["base_model=xlm-r"], "base_model.path"),
    "base-path-not-a-model": (["base_model.path={files}"], "base_model.path"),
    "focus-latin1": (["method=focus", "focus.corpus={files}/latin1.txt"], "focus.corpus"),
    "focus-binary": (["method=focus", "focus.corpus={files}/binary.txt"], "focus.corpus"),
    "focus-max-bytes": (["method=focus", "focus.max_bytes=-1"], "focus.max_bytes"),
    "output-is-a-file": (["output_dir={files}/a_file"], "output_dir"),
    "output-cannot-be-created": (["output_dir=/proc/zett-cannot-exist/model"], "output_dir"),
    "output-not-empty": (["output_dir=existing"], "overwrite=true"),
    "overwrite-not-bool": (["overwrite=maybe", "output_dir=existing"], "overwrite"),
    "finetuned-missing": (["finetuned_model=/nowhere"], "finetuned_model"),
    "base-tokenizer-of-another-model": (["base_tokenizer={files}/other-tok"], "base_tokenizer"),
    "unknown-key": (["no_such_key=1"], "no_such_key"),
    "hypernet-flipped-bit": (["method=hypernet", "hypernet_path={flipped}"], "hypernet_path"),
    "omp-candidates-zero": (["method=omp", "omp.candidates=0"], "omp.candidates"),
}


def flip_one_bit(path: Path) -> None:
    """Flip the lowest bit of the last byte of ``path`` (a safetensors file: the last tensor's data)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def flipped(hn_dir, tmp_path_factory):
    """A copy of ``hn_dir`` with one bit of its weights flipped."""
    path = tmp_path_factory.mktemp("flipped") / "hn"
    shutil.copytree(hn_dir, path)
    flip_one_bit(path / "model.safetensors")
    return path


@pytest.mark.parametrize("case", sorted(TRANSFER_CASES))
def test_transfer_refuses(case, work, base_dir, files, flipped, monkeypatch, capsys):
    args, setting = TRANSFER_CASES[case]
    args = [a.format(files=files, flipped=flipped) for a in args]
    defaults = [f"base_model.path={base_dir}", "target_tokenizer=sp-botchan-unigram-1k", "output_dir=new",
                "progress=false"]
    argv = override(defaults, args)
    before = tree(work)
    code, err = call("zett.cli.transfer", "zett-transfer", argv, monkeypatch, capsys)
    if case == "unknown-key":  # Hydra's message names the key, ours the fix
        assert code == 2 and setting in err and tree(work) == before
        return
    check_refused(code, err, setting, work, before)


def test_transfer_checks_output_before_loading_the_base(work, files, monkeypatch, capsys):
    """A broken base model directory is never reached when output_dir is refused."""
    broken = work.parent / "broken-base"
    broken.mkdir(exist_ok=True)
    (broken / "config.json").write_text("{not json")
    before = tree(work)
    code, err = call("zett.cli.transfer", "zett-transfer",
                     [f"base_model.path={broken}", "target_tokenizer=gpt2", "output_dir=existing"],
                     monkeypatch, capsys)
    check_refused(code, err, "output_dir", work, before)


def test_transfer_hypernet_for_another_base_names_both(work, hn_dir, base_dir, monkeypatch, capsys):
    before = tree(work)
    code, err = call("zett.cli.transfer", "zett-transfer",
                     ["base_model=tiny-random", "base_model.tiny.hidden_size=16", "target_tokenizer=gpt2",
                      "method=hypernet", f"hypernet_path={hn_dir}", "output_dir=new", "progress=false"],
                     monkeypatch, capsys)
    check_refused(code, err, "hypernetwork was built for", work, before)
    assert f"built for {base_dir} (llama, hidden 32" in err and "base model given is tiny-random (llama, hidden 16" in err


def test_transfer_nan_hypernet_saves_nothing(work, hn_dir, monkeypatch, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    bad = work.parent / "nan-hn"
    shutil.copytree(hn_dir, bad)
    state = load_file(bad / "model.safetensors")
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1 and "scaler" not in k)
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    save_file(state, bad / "model.safetensors")
    from zett.models import digest

    digest.write(bad)  # saved that way (its digest matches): the NaN check, not the digest, refuses it
    base_dir = Path(json.loads((hn_dir / "config.json").read_text()).get("base_model_name", ""))
    assert base_dir.exists()
    before = tree(work)
    code, err = call("zett.cli.transfer", "zett-transfer",
                     [f"base_model.path={base_dir}", "target_tokenizer=gpt2", "method=hypernet",
                      f"hypernet_path={bad}", "output_dir=new", "progress=false"], monkeypatch, capsys)
    check_refused(code, err, "non-finite", work, before)
    assert "method=hypernet" in err and "target_tokenizer=gpt2" in err
    assert torch.isnan(state[key]).any()


# ------------------------------------------------------------------------------------------------ zett-eval

EVAL_CASES = {
    "max-bytes-negative": (["max_bytes=-5"], "max_bytes"),
    "max-bytes-zero": (["max_bytes=0"], "max_bytes"),
    "languages-monolingual": (["languages=[en]", "corpora=[botchan]"], "languages"),
    "base-is-a-tokenizer": (["base_model.name=gpt2"], "base_model.name"),
    "corpus-latin1": (["corpora=[{files}/latin1.txt]"], "corpora"),
    "corpus-binary": (["corpora=[{files}/binary.txt]"], "corpora"),
    "focus-on-scored-text": (["methods=[focus]", "corpora=[{files}/ok.txt]"], "focus.corpora"),
    "focus-same-file": (["methods=[focus]", "corpora=[{files}/ok.txt]", "focus.corpora=[{files}/ok.txt]"],
                        "focus.corpora"),
    "unknown-method": (["methods=[magic]"], "methods"),
    "no-methods": (["methods=[]"], "methods"),
    "batch-size": (["batch_size=0"], "batch_size"),
    "max-length": (["max_length=-1"], "max_length"),
    "stride-too-long": (["max_length=64", "stride=128"], "stride"),
    "unknown-target": (["targets=[no-such-tokenizer]"], "targets"),
    "unknown-corpus": (["corpora=[no-such-corpus]"], "corpora"),
    "corpus-is-a-tokenizer": (["corpora=[gpt2]"], "corpora"),
    "hypernet-path-missing": (["methods=[hypernet]", "hypernet_path=/nonexistent/hn"], "hypernet_path"),
    "doc-bytes": (["doc_bytes=0"], "doc_bytes"),
    "jsonl-not-json": (["corpora=[{files}/broken.jsonl]"], "line 2"),
    "jsonl-no-text": (["corpora=[{files}/notext.jsonl]"], "'text'"),
    "unknown-group-option": (["base_model=no-such-preset"], "base_model"),
    "output-not-empty": (["output_dir=existing"], "overwrite=true"),
    "output-unset": (["output_dir=null"], "output_dir"),
    "output-cannot-be-created": (["output_dir=/proc/zett-cannot-exist"], "output_dir"),
    "overwrite-not-bool": (["overwrite=yes please"], "overwrite"),
    "device": (["device=tpu"], "device"),
    "base-tokenizer-of-another-model": (["methods=[original]", "base_tokenizer={files}/other-tok"], "base_tokenizer"),
    "task-limit-zero": (["task_limit=0"], "task_limit"),
    "bootstrap-negative": (["bootstrap=-1"], "bootstrap"),
    "omp-k-zero": (["methods=[omp]", "donor_model=gpt2", "omp.k=0"], "omp.k"),
    "plus-misspelt-key": (["+task_limt=5"], "task_limt is not a setting of zett-eval (not in EvalConfig); did you "
                                            "mean task_limit?"),
    "task-limit-negative": (["task_limit=-1"], "task_limit"),
    "prefix-upper-case": (["prefix=BOS"], "prefix=bos"),
    "malformed-task-json": (["tasks=[broken]", "task_root={files}/tasks", "corpora=[]"], "tasks/broken/task.json"),
}


def test_eval_records_the_base_tokenizer_used(base_dir, tmp_path, monkeypatch, capsys):
    """The model's own tokenizer given as base_tokenizer is accepted and named in every record (issue 21, item 4)."""
    code, err = call("zett.cli.eval", "zett-eval", [f"base_model.path={base_dir}", f"base_tokenizer={base_dir}",
                                                     "methods=[original]", "corpora=[botchan]", "max_bytes=2000",
                                                     f"output_dir={tmp_path / 'out'}", "progress=false", "device=cpu",
                                                     "plot=false"], monkeypatch, capsys)
    assert code == 0, err[-2000:]
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert records and {r["base_tokenizer"] for r in records} == {str(base_dir)}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_refuses(case, work, files, monkeypatch, capsys):
    args, setting = EVAL_CASES[case]
    args = [a.format(files=files) for a in args]
    defaults = ["base_model=tiny-random", "targets=[gpt2]", "max_bytes=2000", "output_dir=new",
                "progress=false", "device=cpu", "plot=false"]
    argv = override(defaults, args)
    before = tree(work)
    code, err = call("zett.cli.eval", "zett-eval", argv, monkeypatch, capsys)
    if case == "unknown-group-option":
        assert code == 2 and "no-such-preset" in err and tree(work) == before
        return
    check_refused(code, err, setting, work, before)


def test_eval_refuses_a_non_finite_score(work, base_dir, monkeypatch, capsys):
    from safetensors.torch import load_file, save_file

    nan_base = work.parent / "nan-base"
    shutil.copytree(base_dir, nan_base)
    state = load_file(nan_base / "model.safetensors")
    key = next(k for k in state if "norm" in k)
    state[key] = state[key].clone().fill_(float("nan"))
    save_file(state, nan_base / "model.safetensors", metadata={"format": "pt"})
    before = tree(work)
    code, err = call("zett.cli.eval", "zett-eval",
                     ["base_model=tiny-random", f"base_model.path={nan_base}", "base_model.name=local",
                      "methods=[original]", "corpora=[botchan]", "max_bytes=1000", "output_dir=new",
                      "progress=false", "device=cpu", "plot=false"], monkeypatch, capsys)
    check_refused(code, err, "corpus=botchan", work, before)
    assert "method=original" in err and "bits_per_byte" in err


def test_results_json_is_strict():
    from zett.eval.report import write_results

    with pytest.raises(ValueError, match="Out of range float"):
        write_results([{"method": "fvt", "tokenizer": "t", "corpus": "c", "bits_per_byte": float("nan")}],
                      "/tmp/zett-never-written", plot_png=False)


# ------------------------------------------------------------------------------------------------ zett-train

TRAIN_CASES = {
    "batch-size-zero": (["data.batch_size=0"], "data.batch_size"),
    "max-pieces-zero": (["hypernet.max_pieces=0"], "hypernet.max_pieces"),
    "max-steps-zero": (["trainer.max_steps=0"], "trainer.max_steps"),
    "ckpt-missing": (["ckpt_path=/nowhere/last.ckpt"], "ckpt_path"),
    "base-is-a-tokenizer": (["base_model.name=gpt2"], "base_model.name"),
    "mlm-on-causal": (["loss=mlm"], "loss.objective"),
    "mlm-probability": (["data.mlm_probability=1.5"], "data.mlm_probability"),
    "init-hypernet-missing": (["init_hypernet=/nowhere"], "init_hypernet"),
    "negative-loss-weight": (["loss.terms.clm.weight=-1"], "loss.terms.clm.weight"),
    "unknown-option": (["loss=no-such-loss"], "loss"),
    "data-latin1": (["data=local", "data.sources.0.path={files}/latin1.txt"], "data.sources.0.path"),
    "data-binary": (["data=local", "data.sources.0.path={files}/binary.txt"], "data.sources.0.path"),
    "previous-run": ([], "overwrite=true"),
    "by-language-monolingual": (["+data.sources.0.by_language=true"], "data.sources.0.by_language=True but"),
    "run-dir-cannot-be-created": (["run_dir=/proc/zett-cannot-exist"], "run_dir"),
    "progress-bar-off": (["callbacks=default"], "trainer.enable_progress_bar"),
    "lr-monitor-without-logger": (["callbacks=default", "trainer.enable_progress_bar=true", "logger=none"],
                                  "callbacks.lr_monitor"),
    "schedule-phases": (["scheduler.learning_rates=[1e-3,1e-4]"], "scheduler.warmup_steps"),
    "balance": (["loss.balance=equal"], "loss.balance"),
    "mixed-type": (["data.batch_size=eight"], "data.batch_size"),
    "unknown-nested-key": (["hypernet.num_layerz=2"], "hypernet.num_layerz"),
    "optimizer-one-beta": (["optimizer.betas=[0.9]"], "optimizer.betas"),
    "sampler-queue-zero": (["tokenizer_sampler.queue_size=0"], "tokenizer_sampler.queue_size"),
    "sampler-vocab-min-above-max": (["tokenizer_sampler.vocab_size_min=900", "tokenizer_sampler.vocab_size_max=800"],
                                    "tokenizer_sampler.vocab_size_min"),
    "log-every-zero": (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    "gradient-clip-negative": (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val"),
    "checkpoint-minutes-zero": (["callbacks.checkpoint.save_last_every_minutes=0"],
                                "callbacks.checkpoint.save_last_every_minutes"),
    "plus-key-not-a-trainer-argument": (["+trainer.max_stepz=5"], "trainer.max_stepz is not a setting"),
    "init-hypernet-nan": (["init_hypernet={nan_hn}"], "init_hypernet"),
    "init-hypernet-flipped-bit": (["init_hypernet={flipped}"], "init_hypernet"),
    "optimizer-eps-zero": (["optimizer.eps=0"], "optimizer.eps"),
    "val-check-interval-zero": (["trainer.val_check_interval=0"], "trainer.val_check_interval"),
    "unknown-validation-text": (["data.validation.pairs=[[base,no_such_text]]"], "data.validation.pairs"),
    "ckpt-empty-file": (["ckpt_path={files}/empty.ckpt"], "ckpt_path"),
    "ckpt-not-a-checkpoint": (["ckpt_path={files}/ok.txt"], "ckpt_path"),
}


@pytest.fixture(scope="module")
def nan_hn(tmp_path_factory):
    """A hypernetwork for the debug experiment's tiny base whose weights are all NaN."""
    import torch

    from zett.models import ZettHypernet
    from zett.training.base import tiny_random_base

    hn = ZettHypernet.from_base_model(tiny_random_base(seed=0)[0], hidden_size=32, intermediate_size=64,
                                      num_layers=1, num_heads=2)
    with torch.no_grad():
        for p in hn.parameters():
            p.fill_(float("nan"))
    path = tmp_path_factory.mktemp("nan_hn")
    hn.save_pretrained(path)
    return path


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_refuses(case, work, files, flipped, nan_hn, monkeypatch, capsys):
    args, setting = TRAIN_CASES[case]
    args = [a.format(files=files, flipped=flipped, nan_hn=nan_hn) for a in args]
    run = work / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"previous run")
    (run / "summary.json").write_text('{"global_step": 7}')
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 7  # the previous run's record\n")
    if case != "previous-run":
        run = work / "fresh"
    argv = ["experiment=debug", f"hydra.run.dir={run}", *args]
    before = {k: v for k, v in tree(work).items() if not k.endswith(".log")}
    code, err = call("zett.cli.train", "zett-train", argv, monkeypatch, capsys)
    # Hydra opens the job log in the run dir before zett runs; everything else, the previous run's .hydra/
    # included, is unchanged (zett writes .hydra/ only once the run directory is accepted)
    after = {k: v for k, v in tree(work).items() if not k.endswith(".log")}
    after = {k: v for k, v in after.items() if not (k == "fresh")}
    before = {k: v for k, v in before.items() if not (k == "fresh")}
    if case == "unknown-option":
        assert code == 2 and "no-such-loss" in err and after == before
        return
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and setting in err.strip().splitlines()[-1]
    assert after == before
    assert not (work / "fresh" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------ zett-assets

def test_assets_unknown_name(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ZETT_HOME", str(tmp_path / "home"))
    code, err = call("zett.assets.cli", "zett-assets", ["fetch", "no-such-asset"], monkeypatch, capsys)
    assert code == 2 and "no-such-asset" in err and "Traceback" not in err
    assert not (tmp_path / "home" / "downloads").exists()


def test_assets_zett_home_is_a_file(monkeypatch, capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("ZETT_HOME", str(tmp_path / "f"))
    code, err = call("zett.assets.cli", "zett-assets", ["path", "gpt2"], monkeypatch, capsys)
    assert code == 2 and "ZETT_HOME" in err and (tmp_path / "f").read_text() == "x"


def test_assets_zett_home_cannot_be_created(monkeypatch, capsys):
    monkeypatch.setenv("ZETT_HOME", "/proc/zett-cannot-exist")
    code, err = call("zett.assets.cli", "zett-assets", ["path", "gpt2"], monkeypatch, capsys)
    assert code == 2 and "ZETT_HOME=/proc/zett-cannot-exist" in err


def test_assets_verify_needs_names(monkeypatch, capsys):
    code, err = call("zett.assets.cli", "zett-assets", ["verify"], monkeypatch, capsys)
    assert code == 2 and "--all" in err


# ------------------------------------------------------------------------------------------------ the contract

def test_console_scripts_one_line_no_traceback_and_debug_shows_it(tmp_path):
    run = script("zett-eval", ["base_model=tiny-random", "max_bytes=-5", f"output_dir={tmp_path / 'o'}"], tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        "zett-eval: error: max_bytes=-5 is invalid: it must be a positive integer or null (e.g. max_bytes=20000)"]
    run = script("zett-eval", ["base_model=tiny-random", "max_bytes=-5"], tmp_path, {"ZETT_DEBUG": "1"})
    assert run.returncode != 0 and "Traceback" in run.stderr and "max_bytes=-5" in run.stderr
    run = script("zett-train", ["experiment=debug", "data.batch_size=0", f"hydra.run.dir={tmp_path / 'r'}"],
                 tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("zett-train: error: data.batch_size=0")
    run = script("zett-assets", ["fetch", "no-such-asset"], tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "no-such-asset" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # only Hydra's job log of the refused run
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["train.log"]


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
    from zett.cli.errors import user_errors_exit

    @user_errors_exit("zett-x")
    def buggy():
        return {}["missing"]

    with pytest.raises(KeyError):
        buggy()

    @user_errors_exit("zett-x")
    def mistaken():
        from zett.cli.errors import UserError

        raise UserError("x=1 is invalid: use x=2")

    with pytest.raises(SystemExit) as e:
        mistaken()
    assert e.value.code == 2 and capsys.readouterr().err == "zett-x: error: x=1 is invalid: use x=2\n"


# ------------------------------------------------------------------------------------------------ valid configs pass

def _options(group: str) -> list[str]:
    from zett.training import CONFIG_DIR

    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["experiment", "base_model", "loss", "data", "hypernet", "tokenizer_sampler",
                                   "trainer", "callbacks", "debug"])
def test_every_shipped_train_option_passes_the_checks(group, tmp_path):
    """The checks refuse mistakes only: every preset the project ships passes them (presets that need a local
    model get a directory with a config.json; loss=mlm is paired with the masked base it is for)."""
    from hydra import compose, initialize_config_dir

    from zett.training import CONFIG_DIR
    from zett.training.rundir import check_train_config

    (tmp_path / "config.json").write_text("{}")
    for option in _options(group):
        extra = []
        if group == "loss" and option == "mlm":
            extra = ["base_model=xlm-r"]
        if group == "base_model" and option == "xlm-r":
            extra = ["loss=mlm"]
        if group == "data" and option == "local":
            (tmp_path / "c.txt").write_text("some text\n")
            extra = [f"data.sources.0.path={tmp_path / 'c.txt'}"]
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = compose("train", overrides=[f"{group}={option}", *extra])
        from omegaconf import OmegaConf

        if OmegaConf.is_missing(cfg.base_model, "path"):
            cfg.base_model.path = str(tmp_path)
        check_train_config(cfg)


def test_refused_train_keeps_the_previous_runs_hydra_record_and_an_accepted_one_writes_it(tmp_path, monkeypatch,
                                                                                           capsys):
    """A previous run's .hydra/ is hashed before and after a refused zett-train into its directory; a run that is
    accepted gets Hydra's three files, recording its own overrides."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"previous run")
    (run / ".hydra").mkdir()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run / ".hydra" / name).write_text(f"# the previous run's {name}\n")
    before = tree(run / ".hydra")
    code, err = call("zett.cli.train", "zett-train", ["experiment=debug", "seed=3", f"hydra.run.dir={run}"],
                     monkeypatch, capsys)
    assert code == 2 and "overwrite=true" in err.strip().splitlines()[-1]
    assert tree(run / ".hydra") == before

    fresh = tmp_path / "fresh"
    args = ["experiment=debug", "seed=3", "trainer.max_steps=1", "validate_at_start=false", "export=false",
            "logger=none", "trainer.limit_val_batches=0", f"hydra.run.dir={fresh}"]
    code, err = call("zett.cli.train", "zett-train", args, monkeypatch, capsys)
    assert code == 0, err[-2000:]
    import yaml

    assert sorted(p.name for p in (fresh / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert yaml.safe_load((fresh / ".hydra" / "overrides.yaml").read_text()) == [a for a in args
                                                                                 if not a.startswith("hydra.")]
    config = yaml.safe_load((fresh / ".hydra" / "config.yaml").read_text())
    assert config["seed"] == 3 and config["trainer"]["max_steps"] == 1 and "hydra" not in config
    assert yaml.safe_load((fresh / ".hydra" / "hydra.yaml").read_text())["hydra"]["run"]["dir"] == str(fresh)


# ------------------------------------------------------------------------------------------------ zett-train: run dirs

@pytest.fixture(scope="module")
def other_base_hn(tmp_path_factory):
    """A hypernetwork directory for a base model the debug experiment's tiny base is not (hidden size 48)."""
    from zett.models import ZettHypernet
    from zett.testing import tiny_llama, train_tokenizer

    path = tmp_path_factory.mktemp("hn48")
    ZettHypernet.from_base_model(tiny_llama(train_tokenizer(vocab_size=300), hidden_size=48)).save_pretrained(path)
    return path


def _previous_run(run: Path) -> None:
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"previous run")
    (run / "hypernet").mkdir()
    (run / "hypernet" / "model.safetensors").write_bytes(b"previous weights")
    (run / "summary.json").write_text('{"global_step": 7, "finished": true}')
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 7  # the previous run's record\n")


OVERWRITE_CASES = {
    "init-hypernet-for-another-base": (["init_hypernet={hn}"], "init_hypernet"),  # fails while building
    "optimizer-one-beta": (["optimizer.betas=[0.9]"], "optimizer.betas"),
    "unknown-validation-tokenizer": (["data.validation.pairs=[[no-such-tokenizer,botchan]]"], "no-such-tokenizer"),
}


@pytest.mark.parametrize("case", sorted(OVERWRITE_CASES))
def test_overwrite_keeps_the_previous_run_when_the_new_one_cannot_start(case, tmp_path, other_base_hn, monkeypatch,
                                                                        capsys):
    """overwrite=true deletes the previous run only once the new run was built: a run refused while loading the
    models, the data or the optimizer leaves the previous one byte for byte (issue 21, item 1)."""
    args, setting = OVERWRITE_CASES[case]
    run = tmp_path / "run"
    _previous_run(run)
    before = {k: v for k, v in tree(run).items() if not k.endswith(".log")}
    argv = ["experiment=debug", f"hydra.run.dir={run}", "overwrite=true", *[a.format(hn=other_base_hn) for a in args]]
    code, err = call("zett.cli.train", "zett-train", argv, monkeypatch, capsys)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and setting in err.strip().splitlines()[-1], err[-2000:]
    assert {k: v for k, v in tree(run).items() if not k.endswith(".log")} == before


def _short_run(run: Path, monkeypatch, capsys, *extra: str) -> tuple[int, str]:
    args = ["experiment=debug", "trainer.max_steps=2", "validate_at_start=false", "export=false", "logger=none",
            "trainer.limit_val_batches=0", "callbacks.checkpoint.every_n_train_steps=1", f"hydra.run.dir={run}", *extra]
    return call("zett.cli.train", "zett-train", args, monkeypatch, capsys)


def test_a_checkpoint_of_another_run_never_takes_over_a_run_directory(tmp_path, monkeypatch, capsys):
    """ckpt_path of run A into run B's directory is refused and B is unchanged; into an empty directory it
    continues as a run of its own; B's own checkpoint resumes B; a checkpoint from before run ids resumes
    only into its own directory (issue 21, item 2)."""
    import torch

    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        code, err = _short_run(run, monkeypatch, capsys)
        assert code == 0, err[-2000:]
    ids = {r: json.loads((r / "run.json").read_text())["run_id"] for r in (a, b)}
    assert ids[a] != ids[b]
    a_last = a / "checkpoints" / "last.ckpt"
    assert torch.load(a_last, weights_only=True)["zett_run"] == {"run_id": ids[a]}

    before = tree(b)
    code, err = _short_run(b, monkeypatch, capsys, f"ckpt_path={a_last}", "trainer.max_steps=3")
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"ckpt_path={a_last}" in last and "overwrite=true" in last, last
    assert {k: v for k, v in tree(b).items() if not k.endswith(".log")} == \
        {k: v for k, v in before.items() if not k.endswith(".log")}

    c = tmp_path / "c"  # an empty directory adopts it, as a new run
    code, err = _short_run(c, monkeypatch, capsys, f"ckpt_path={a_last}", "trainer.max_steps=3")
    assert code == 0, err[-2000:]
    assert json.loads((c / "summary.json").read_text())["global_step"] == 3
    assert json.loads((c / "run.json").read_text())["run_id"] not in ids.values()
    assert sorted(p.name for p in (c / "checkpoints").iterdir()) == ["last.ckpt", "step0000003.ckpt"]

    code, err = _short_run(b, monkeypatch, capsys, f"ckpt_path={b / 'checkpoints' / 'last.ckpt'}",
                           "trainer.max_steps=3")  # B's own checkpoint resumes B
    assert code == 0, err[-2000:]
    assert json.loads((b / "summary.json").read_text())["global_step"] == 3
    assert json.loads((b / "run.json").read_text())["run_id"] == ids[b]
    assert "last-v1.ckpt" not in {p.name for p in (b / "checkpoints").iterdir()}

    from omegaconf import OmegaConf

    from zett.training.rundir import check_run_dir

    legacy = torch.load(a_last, weights_only=True)
    del legacy["zett_run"]  # a checkpoint written before run ids
    torch.save(legacy, a / "checkpoints" / "legacy.ckpt")
    (a / "run.json").unlink()
    cfg = OmegaConf.create({"ckpt_path": str(a / "checkpoints" / "legacy.ckpt"), "overwrite": False})
    assert check_run_dir(cfg, a) == []  # its own directory: a resume
    from zett.cli.errors import UserError

    with pytest.raises(UserError, match="is not a checkpoint of the run in"):
        check_run_dir(cfg, b)


# ------------------------------------------------------------------------------------------------ hypernet digests

def test_a_flipped_bit_in_any_hypernetwork_is_refused_when_loaded(hn_dir, flipped, tmp_path, monkeypatch):
    """save_pretrained writes digest.json; loading checks it, the shipped hypernetwork included (issue 21,
    item 5)."""
    from zett import hypernets
    from zett.models import HypernetFormatError, ZettHypernet

    assert json.loads((hn_dir / "digest.json").read_text())["files"]["model.safetensors"] == \
        hashlib.sha256((hn_dir / "model.safetensors").read_bytes()).hexdigest()
    ZettHypernet.from_pretrained(hn_dir)
    with pytest.raises(HypernetFormatError, match="model.safetensors does not match its sha256"):
        ZettHypernet.from_pretrained(flipped)

    hypernets.load("smollm2-135m")  # the committed digest matches the committed weights
    shipped = tmp_path / "hypernets"
    shutil.copytree(hypernets.SHIPPED_DIR / "smollm2-135m", shipped / "smollm2-135m")
    flip_one_bit(shipped / "smollm2-135m" / "model.safetensors")
    monkeypatch.setattr(hypernets, "SHIPPED_DIR", shipped)
    with pytest.raises(HypernetFormatError, match="does not match"):
        hypernets.load("smollm2-135m")


def test_a_hypernetwork_without_digest_loads_with_one_warning(hn_dir, tmp_path, caplog):
    from zett.models import ZettHypernet

    old = tmp_path / "old-export"
    shutil.copytree(hn_dir, old)
    (old / "digest.json").unlink()
    with caplog.at_level("WARNING", logger="zett.models"):
        ZettHypernet.from_pretrained(old)
        ZettHypernet.from_pretrained(old)
    warned = [r for r in caplog.records if "digest.json" in r.getMessage()]
    assert len(warned) == 1 and str(old) in warned[0].getMessage()


# ------------------------------------------------------------------------------------------------ output directories

def test_an_output_dir_that_is_a_mount_point_is_refused_before_any_work(work, base_dir, monkeypatch, capsys):
    """A mount point cannot be replaced by a rename: refused at once, not after the transfer (issue 21, item 6)."""
    import zett.outputs

    (work / "mnt").mkdir()
    monkeypatch.setattr(zett.outputs, "mount_points", lambda: {str((work / "mnt").resolve())})
    before = tree(work)
    code, err = call("zett.cli.transfer", "zett-transfer", [f"base_model.path={base_dir}", "target_tokenizer=gpt2",
                                                              "output_dir=mnt", "overwrite=true", "progress=false"],
                     monkeypatch, capsys)
    check_refused(code, err, "output_dir=mnt is a mount point", work, before)
    assert "Loading weights" not in err  # refused before the base model was loaded


def _busy_rename(monkeypatch, final: Path) -> None:
    """os.replace / renameat2 of ``final`` fail with EBUSY, as for a mount point."""
    import errno

    import zett.outputs

    real = os.replace

    def replace(src, dst, *a, **k):
        if Path(src) == final or Path(dst) == final:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(final))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(zett.outputs, "_exchange", lambda a, b: False)
    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("existing", [True, False])
def test_a_busy_output_dir_keeps_its_content_the_result_and_no_old_sibling(tmp_path, monkeypatch, existing):
    from zett.outputs import OutputError, atomic_dir

    final = (tmp_path / "out").absolute()
    if existing:
        final.mkdir()
        (final / "previous.txt").write_text("previous")
    before = tree(final)
    _busy_rename(monkeypatch, final)
    with pytest.raises(OutputError, match="could not be moved into place") as e:
        with atomic_dir(final, overwrite=True) as tmp:
            (tmp / "result.txt").write_text("result")
    monkeypatch.undo()
    assert tree(final) == before
    assert not list(tmp_path.glob(".out.*"))  # neither .old- nor .tmp- siblings
    kept = tmp_path / f"out.zett-{os.getpid()}"
    assert f"in {kept}" in str(e.value) and (kept / "result.txt").read_text() == "result"


def test_losing_a_race_for_the_output_dir_says_where_the_result_is(tmp_path):
    """Another process creates output_dir while this one writes it: the message names where this result is, and
    it is there (issue 21, item 8)."""
    from zett.outputs import OutputError, atomic_dir

    final = tmp_path / "out"
    with pytest.raises(OutputError, match="created by another process") as e:
        with atomic_dir(final) as tmp:
            (tmp / "mine.txt").write_text("mine")
            final.mkdir()
            (final / "theirs.txt").write_text("theirs")
    assert tree(final) == {"theirs.txt": hashlib.sha256(b"theirs").hexdigest()}
    kept = Path(str(e.value).split("this run's result is in ", 1)[1].split(". ", 1)[0])
    assert (kept / "mine.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".out.*"))


def test_a_run_with_nothing_to_predict_stops_and_exports_nothing(tmp_path, monkeypatch, capsys):
    """data.span_chars=1: every span is one token, a causal model has nothing to predict, every loss term would be
    0; the run stops before its first optimizer step with exit 2 and exports nothing (issue 21, item 7)."""
    run = tmp_path / "run"
    code, err = call("zett.cli.train", "zett-train", ["experiment=debug", "data.span_chars=1", "logger=csv",
                                                       "data.validation.n_sequences=2", f"hydra.run.dir={run}"],
                     monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "data.span_chars=1" in err.strip().splitlines()[-1]
    assert not (run / "hypernet").exists() and not (run / "checkpoints").exists()
    from omegaconf import OmegaConf

    from zett.training.rundir import check_run_dir, previous_run

    assert previous_run(run) == []  # what it wrote before its first step is gone: the fixed rerun is not refused
    assert check_run_dir(OmegaConf.create({"ckpt_path": None, "overwrite": False}), run) == []



# ------------------------------------------------------------------------------------------------ composition errors

@pytest.mark.parametrize("module,prog,args,line", [
    ("zett.cli.eval", "zett-eval", ["task_limt=5"], "task_limt is not a setting of this command; did you mean "
                                                    "task_limit?"),
    ("zett.cli.train", "zett-train", ["experiment=debug", "trainer.max_step=5"],
     "trainer.max_step is not a setting of this command; did you mean trainer.max_steps?"),
    ("zett.cli.train", "zett-train", ["loss=clm_lexicl"], "loss=clm_lexicl is not an option of loss; did you mean "
                                                          "loss=clm_lexical? available: alm, clm,"),
    ("zett.cli.train", "zett-train", ["experiment=debug", "hydra.run.dir=/proc/zett-cannot-exist/run"],
     "hydra.run.dir=/proc/zett-cannot-exist/run cannot be created"),
])
def test_a_command_line_that_does_not_compose_gets_one_line(module, prog, args, line, tmp_path, monkeypatch, capsys):
    """Hydra's own multi-line message is held back: stderr is zett's one line, with the closest valid name for a
    misspelt key or option, and a run directory that cannot be created is not called a spelling mistake (issue
    21, item 9)."""
    monkeypatch.chdir(tmp_path)
    code, err = call(module, prog, args, monkeypatch, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{prog}: error: {line}"), err



def test_corrupted_base_weights_are_one_line_naming_the_model_and_verify(base_dir, tmp_path, monkeypatch, capsys):
    """A base model whose safetensors file is damaged: exit 2 naming it; for a cached asset the line points at
    `zett-assets verify` (issue 21, item 10; the README says what is verified when)."""
    import zett.assets
    from zett.training.base import load_base

    broken = tmp_path / "broken"
    shutil.copytree(base_dir, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[:8] + b"{not a header" + data[21:])
    code, err = call("zett.cli.eval", "zett-eval", [f"base_model.path={broken}", "methods=[original]",
                                                     "max_bytes=2000", f"output_dir={tmp_path / 'out'}",
                                                     "progress=false", "device=cpu", "plot=false"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "cannot load base model" in err.strip().splitlines()[-1] and "zett-assets verify" not in err
    monkeypatch.setattr(zett.assets, "path", lambda name, *a, **k: broken)  # as if the cached asset were damaged
    from zett.training.base import BaseModelError

    with pytest.raises(BaseModelError, match="zett-assets verify smollm2-135m"):
        load_base("smollm2-135m")
