"""Multiple-choice tasks through lm-eval: hand scoring, zett-eval records, offline, and the plain lm_eval CLI."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from zett.cli.eval import CONFIG_DIR, evaluate
from zett.eval.bigbench import load_task
from zett.eval.harness import answer_bytes, score_tasks, write_task_dir
from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "bigbench" / "tasks"


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(vocab_size=300)
    return tiny_llama(tok), tok


@torch.no_grad()
def _hand_logliks(model, tok, prompt: str, choices: list[str]) -> list[float]:
    """Sum of log-probabilities of each choice's tokens after the prompt's tokens. Like lm-eval, the prompt's
    trailing whitespace belongs to the continuation and the continuation's tokens are those of the whole text
    after the prompt's own tokens."""
    ctx = prompt.rstrip()
    out = []
    for c in choices:
        whole = tok(ctx + prompt[len(ctx):] + c)["input_ids"]
        n_ctx = len(tok(ctx)["input_ids"])
        logp = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].double(), -1)
        out.append(sum(float(logp[p - 1, whole[p]]) for p in range(n_ctx, len(whole))))
    return out


def test_hand_scoring_equals_lm_eval_acc_and_acc_norm(tiny, tmp_path):
    model, tok = tiny
    names = write_task_dir(["toy_mc", "toy_sub"], tmp_path, FIXTURES)
    scored = score_tasks(model, tok, tmp_path, names, batch_size=4, device="cpu")
    for bb in names:
        summary, examples = scored[bb]
        records = load_task(bb, FIXTURES)
        assert len(examples) == len(records) == summary["n_examples"]
        acc = acc_norm = 0
        bits = nbytes = 0.0
        margins = []
        for rec, ex in zip(records, examples, strict=True):
            lls = _hand_logliks(model, tok, rec["prompt"], rec["choices"])
            assert ex.logliks == pytest.approx(lls, abs=1e-4)
            t = rec["target"]
            acc += max(range(len(lls)), key=lls.__getitem__) == t
            acc_norm += max(range(len(lls)), key=lambda i: lls[i] / len(rec["choices"][i])) == t
            bits += -lls[t] / math.log(2)
            nbytes += answer_bytes(rec["prompt"], rec["choices"][t])
            margins.append(lls[t] - max(x for i, x in enumerate(lls) if i != t))
        n = len(records)
        assert summary["acc"] == pytest.approx(acc / n)
        assert summary["acc_norm"] == pytest.approx(acc_norm / n)
        p = acc / n
        assert summary["acc_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))
        assert summary["answer_bits_per_byte"] == pytest.approx(bits / nbytes, rel=1e-5)
        assert summary["margin_nats"] == pytest.approx(sum(margins) / n, abs=1e-4)
        assert summary["chance"] == pytest.approx(sum(1 / len(r["choices"]) for r in records) / n)


def test_answer_bytes_counts_the_moved_whitespace():
    assert answer_bytes("Q: x\nA: ", "café") == 6  # " " + "caf" + 2-byte "é"
    assert answer_bytes("Ending:", " barked.") == 8


@pytest.fixture(scope="module")
def saved_dirs(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("harness")
    model, tok = tiny
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    train_tokenizer(SAMPLE_TEXTS[:4] * 4, vocab_size=290).save_pretrained(root / "target")
    return root


def _cfg(root, tmp_path, *overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("eval", overrides=[
            f"base_model.path={root / 'base'}", f"targets=[{root / 'target'}]", "corpora=[]",
            "tasks=[toy_mc,toy_sub]", f"task_root={FIXTURES}", f"output_dir={tmp_path / 'out'}",
            "progress=false", "device=cpu", *overrides])


def test_zett_eval_tasks_offline_records_and_outputs(saved_dirs, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    records = evaluate(_cfg(saved_dirs, tmp_path, "methods=[original,fvt]", "task_limit=3"))
    by = {(r["method"], r["task"]): r for r in records}
    assert set(by) == {(m, t) for m in ("original", "fvt") for t in ("toy_mc", "toy_sub", "mean")}
    for r in records:
        assert r["n_examples"] == (3 if r["task"] == "toy_mc" else 6 if r["task"] == "mean" else 3)
        assert 0 <= r["acc"] <= 1 and math.isfinite(r["answer_bits_per_byte"]) and r["answer_bits_per_byte"] > 0
    mean = by[("fvt", "mean")]
    assert mean["acc_norm"] == pytest.approx((by[("fvt", "toy_mc")]["acc_norm"] + by[("fvt", "toy_sub")]["acc_norm"]) / 2)
    assert by[("fvt", "toy_mc")]["delta_acc"] == pytest.approx(by[("fvt", "toy_mc")]["acc"] - by[("original", "toy_mc")]["acc"])
    out = tmp_path / "out"
    saved = json.loads((out / "results.json").read_text())
    assert len(saved) == 6 and not any(k.startswith("_") for r in saved for k in r)
    md = (out / "results.md").read_text()
    assert "Normalised accuracy" in md and "| chance |" in md and "toy_sub" in md
    assert (out / "results_tasks.png").stat().st_size > 0 and (out / "results.csv").exists()


def test_unknown_task_is_a_config_error(saved_dirs, tmp_path):
    from zett.eval.runner import EvalConfigError

    with pytest.raises(EvalConfigError, match="tasks: .*no_such_task"):
        evaluate(_cfg(saved_dirs, tmp_path, "methods=[original]", "tasks=[no_such_task]"))


def test_plain_lm_eval_cli_agrees_with_zett_eval_on_a_saved_transfer(saved_dirs, tmp_path):
    from zett.transfer import transfer
    from zett.transfer.save import save_transferred

    model, tok = transfer(str(saved_dirs / "base"), str(saved_dirs / "target"), method="fvt", progress=False)
    out_dir = save_transferred(model, tok, tmp_path / "transferred")
    task_dir = tmp_path / "tasks"
    names = write_task_dir(["toy_mc"], task_dir, FIXTURES)
    ours = score_tasks(model, tok, task_dir, names, device="cpu")["toy_mc"]

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    lm_eval = Path(sys.executable).parent / "lm_eval"
    cmd = [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={out_dir},dtype=float32",
           "--tasks", names["toy_mc"], "--include_path", str(task_dir), "--device", "cpu", "--batch_size", "4",
           "--log_samples", "--output_path", str(tmp_path / "lm_eval_out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list((tmp_path / "lm_eval_out").rglob(f"samples_{names['toy_mc']}_*.jsonl"))
    assert len(files) == 1
    samples = sorted((json.loads(line) for line in files[0].read_text().splitlines()), key=lambda s: s["doc_id"])
    theirs = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    assert len(theirs) == len(ours[1])
    for ex, lls in zip(ours[1], theirs, strict=True):
        assert ex.logliks == pytest.approx(lls, abs=1e-4)
    assert ours[0]["acc"] == pytest.approx(sum(s["acc"] for s in samples) / len(samples))
    assert ours[0]["acc_norm"] == pytest.approx(sum(s["acc_norm"] for s in samples) / len(samples))


def test_one_example_has_no_standard_error_rather_than_nan():
    from zett.eval.harness import Example, summarize

    s = summarize([Example([-1.0, -2.0, -3.0], 0, 4, 1.0, 1.0)])
    assert s["acc"] == 1.0 and s["acc_stderr"] is None and s["margin_stderr"] is None
    assert s["margin_nats"] == pytest.approx(1.0) and s["chance"] == pytest.approx(1 / 3)
    assert s["answer_bits_per_byte"] == pytest.approx(1.0 / math.log(2) / 4)


def test_omp_without_a_donor_is_a_config_error(saved_dirs, tmp_path):
    from zett.eval.runner import EvalConfigError

    with pytest.raises(EvalConfigError, match="donor_model"):
        evaluate(_cfg(saved_dirs, tmp_path, "methods=[original,omp]"))
