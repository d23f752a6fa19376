"""``zett-eval``: evaluate zero-shot tokenizer transfer (configs/eval.yaml); ``evaluate(cfg)`` does the work."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

log = logging.getLogger(__name__)


def _list(value, name: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError as e:
        raise ValueError(f"{name} must be a list, e.g. {name}=[a,b]; got {value!r}") from e


def evaluate(cfg: DictConfig) -> list[dict]:
    """Run the evaluation described by ``cfg`` and write its outputs to ``cfg.output_dir``; returns the records
    as saved in results.json."""
    from zett.eval.bootstrap import add_intervals
    from zett.eval.report import add_deltas, public, report_markdown, write_results
    from zett.eval.runner import FocusSettings, ScoreSettings, TaskSettings, label, run_evaluation
    from zett.training.base import load_base

    c = OmegaConf.to_container(cfg, resolve=True)
    focus = c.get("focus") or {}
    bm = c["base_model"]
    if not isinstance(bm, dict):
        raise ValueError(f"base_model must be a configs/base_model option (e.g. base_model=smollm2-135m), got {bm!r}; "
                         "for a local model directory pass base_model.path=/path/to/model")
    model, tokenizer = load_base(bm["name"], bm.get("path"), bm.get("kind", "causal"), bm.get("load_dtype", "float32"),
                                 bm.get("tiny"), seed=c.get("seed", 0))
    base_tokenizer = c.get("base_tokenizer") or tokenizer
    records = run_evaluation(
        model, [str(t) for t in _list(c.get("targets"), "targets")],
        [str(x) for x in _list(c.get("corpora"), "corpora")], [str(m) for m in _list(c.get("methods"), "methods")],
        base_tokenizer=base_tokenizer, base_label=label(bm.get("path") or bm["name"]),
        languages=[str(x) for x in _list(c.get("languages"), "languages")] or None,
        max_bytes=c.get("max_bytes"), split=c.get("split", "test"), doc_bytes=c.get("doc_bytes", 4096),
        parallel=c.get("parallel", True), hypernet=c.get("hypernet_path"),
        hypernet_overrides=c.get("hypernet_overrides") or {},
        focus=FocusSettings(corpora=focus.get("corpora"), max_bytes=focus.get("max_bytes", 300_000),
                            options=dict(focus.get("options") or {})),
        score=ScoreSettings(max_length=c.get("max_length", 512), stride=c.get("stride"),
                            batch_size=c.get("batch_size", 8), prefix=c.get("prefix", "bos")),
        device=c.get("device", "auto"), seed=c.get("seed", 0),
        progress=c.get("progress", True),
        tasks=TaskSettings(tasks=[str(t) for t in _list(c.get("tasks"), "tasks")], limit=c.get("task_limit"),
                           root=c.get("task_root"), batch_size=c.get("batch_size", 8)),
        donor_model=c.get("donor_model"), omp=dict(c.get("omp") or {}),
    )
    add_deltas(records)
    add_intervals(records, n_boot=int(c.get("bootstrap", 1000) or 0), seed=c.get("seed", 0))
    paths = write_results(records, c["output_dir"], plot_png=c.get("plot", True))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    print(report_markdown(records))
    return [public(r) for r in records]  # without the per-document arrays (they are not saved either)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
