"""Zero-shot multiple-choice scoring through lm-evaluation-harness (``lm-eval``) on local BIG-bench tasks.

``write_task_dir(names, out)`` turns BIG-bench tasks (``zett.eval.bigbench``) into an lm-eval task folder: per task
a ``<name>.jsonl`` of records and a ``<name>.yaml`` with ``dataset_path: json`` pointing at it, so nothing is
fetched from a hub. The same folder serves the plain command line::

    lm_eval --model hf --model_args pretrained=DIR --tasks zett_bigbench_social_iqa --include_path TASK_DIR

``score_tasks(model, tokenizer, task_dir, names)`` wraps a model (in memory, e.g. from ``zett.transfer``, or a
saved directory) as lm-eval's ``HFLM`` and returns per task ``acc``/``acc_norm`` with their standard errors plus
two continuous scores from lm-eval's per-sample log-likelihoods:

* ``answer_bits_per_byte``: -log2 p(correct continuation | prompt), summed over examples, over the UTF-8 bytes of
  the scored continuation (the choice plus the prompt's trailing whitespace, which lm-eval moves into it);
* ``margin_nats``: mean of log p(correct) - max over distractors log p(distractor), in nats.

The prompt ends with BIG-bench's output prefix and each choice follows it directly (``target_delimiter: ""``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

LN2 = math.log(2.0)
TASK_PREFIX = "zett_bigbench_"


def task_name(bigbench_name: str) -> str:
    """lm-eval task name of a BIG-bench task (``task`` or ``task/subtask``)."""
    return TASK_PREFIX + bigbench_name.replace("/", "__")


_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: prompt
doc_to_choice: choices
doc_to_target: target
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_task_dir(names: list[str], out: str | Path, root: str | Path | None = None,
                   limit: int | None = None) -> dict[str, str]:
    """Write an lm-eval task folder for BIG-bench tasks ``names`` into ``out``; returns {bigbench name: lm-eval
    task name}. ``limit`` keeps the first examples of each task (lm-eval's own ``limit`` does the same)."""
    from zett.eval.bigbench import load_task

    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for name in names:
        records = load_task(name, root)[:limit]
        tname = task_name(name)
        data = out / f"{tname}.jsonl"
        tmp = data.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({**r, "subtask": r["subtask"] or ""}, ensure_ascii=False) + "\n")
        os.replace(tmp, data)
        (out / f"{tname}.yaml").write_text(_YAML.format(name=tname, data=json.dumps(str(data))))
        mapping[name] = tname
    return mapping


@dataclass
class Example:
    """One scored example: log-likelihoods (nats) of every choice, the gold index and the scored bytes."""

    logliks: list[float]
    target: int
    answer_bytes: int
    acc: float
    acc_norm: float

    @property
    def answer_bits(self) -> float:
        return -self.logliks[self.target] / LN2

    @property
    def margin(self) -> float:
        others = [x for i, x in enumerate(self.logliks) if i != self.target]
        return self.logliks[self.target] - max(others)


def answer_bytes(prompt: str, choice: str) -> int:
    """UTF-8 bytes lm-eval scores for ``choice``: the prompt's trailing whitespace moves into the continuation."""
    trailing = prompt[len(prompt.rstrip()):]
    return len((trailing + choice).encode("utf-8"))


def _examples(samples: list[dict]) -> list[Example]:
    out = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc = s["doc"]
        lls = [float(r[0]) for r in s["filtered_resps"]]
        t = int(doc["target"])
        out.append(Example(lls, t, answer_bytes(doc["prompt"], doc["choices"][t]), float(s["acc"]),
                           float(s["acc_norm"])))
    return out


def summarize(examples: list[Example]) -> dict:
    """acc, acc_norm (with standard errors as lm-eval computes them) and the two continuous scores."""
    n = len(examples)

    def mean_se(xs):  # standard error as lm-eval's mean_stderr (sample variance); None for one example
        m = sum(xs) / n
        if n < 2:
            return m, None
        return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)

    acc, acc_se = mean_se([e.acc for e in examples])
    accn, accn_se = mean_se([e.acc_norm for e in examples])
    margin, margin_se = mean_se([e.margin for e in examples])
    bits = sum(e.answer_bits for e in examples)
    nbytes = sum(e.answer_bytes for e in examples)
    chance = sum(1.0 / len(e.logliks) for e in examples) / n
    return {"acc": acc, "acc_stderr": acc_se, "acc_norm": accn, "acc_norm_stderr": accn_se,
            "answer_bits_per_byte": bits / max(nbytes, 1), "margin_nats": margin, "margin_stderr": margin_se,
            "chance": chance, "n_examples": n}


def make_lm(model, tokenizer=None, batch_size: int = 8, device: str | None = None, max_length: int | None = None):
    """lm-eval's ``HFLM`` around a loaded model (+ tokenizer) or a model directory."""
    import torch

    offline()
    from lm_eval.models.huggingface import HFLM

    if device is None:
        device = str(next(model.parameters()).device) if not isinstance(model, str | Path) else (
            "cuda" if torch.cuda.is_available() else "cpu")
    kwargs = {"max_length": max_length} if max_length else {}
    return HFLM(pretrained=model if not isinstance(model, Path) else str(model), tokenizer=tokenizer,
                batch_size=batch_size, device=device, trust_remote_code=False, **kwargs)


def task_manager(task_dir: str | Path):
    """A TaskManager that knows only the tasks in ``task_dir`` (lm-eval's built-in tasks are not indexed)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(task_dir), include_defaults=False)


def offline() -> None:
    """Keep lm-eval and ``datasets`` off the hub: every task here is a local JSON file."""
    import sys

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    cfg = sys.modules.get("datasets.config")
    if cfg is not None:  # imported before this call: its flags were read at import time
        cfg.HF_HUB_OFFLINE = True
        if hasattr(cfg, "HF_DATASETS_OFFLINE"):
            cfg.HF_DATASETS_OFFLINE = True


def run_tasks(lm, task_dir: str | Path, tasks: list[str], limit: int | None = None) -> dict[str, list[Example]]:
    """Score lm-eval tasks (by lm-eval task name) with ``lm``; returns the per-example scores of each task."""
    offline()
    from lm_eval import simple_evaluate

    res = simple_evaluate(model=lm, tasks=list(tasks), task_manager=task_manager(task_dir), limit=limit,
                          log_samples=True, bootstrap_iters=0, verbosity="WARNING")
    return {t: _examples(res["samples"][t]) for t in tasks}


def score_tasks(model, tokenizer, task_dir: str | Path, names: dict[str, str], limit: int | None = None,
                batch_size: int = 8, device: str | None = None) -> dict[str, tuple[dict, list[Example]]]:
    """{BIG-bench name: (summary, examples)} for ``model`` on tasks ``names`` ({bigbench name: lm-eval name})."""
    lm = make_lm(model, tokenizer, batch_size=batch_size, device=device)
    per = run_tasks(lm, task_dir, list(names.values()), limit)
    return {bb: (summarize(per[t]), per[t]) for bb, t in names.items()}


__all__ = ["Example", "TASK_PREFIX", "answer_bytes", "make_lm", "run_tasks", "score_tasks", "summarize",
           "task_manager", "task_name", "write_task_dir"]
