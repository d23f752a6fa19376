"""``zett-eval``: evaluate zero-shot tokenizer transfer (configs/eval.yaml); ``evaluate(cfg)`` does the work."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from zett.cli.errors import UserError, hydra_entry, user_errors_exit

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
        raise UserError(f"{name} must be a list, e.g. {name}=[a,b]; got {value!r}") from e


def evaluate(cfg: DictConfig) -> list[dict]:
    """Run the evaluation described by ``cfg`` and write its outputs to ``cfg.output_dir``; returns the records
    as saved in results.json."""
    from zett.eval.bootstrap import add_intervals
    from zett.eval.report import add_deltas, public, report_markdown, write_results
    from zett.eval.runner import FocusSettings, ScoreSettings, TaskSettings, label, run_evaluation
    from zett.training.base import load_base_from_config

    c = OmegaConf.to_container(cfg, resolve=True)
    focus = c.get("focus") or {}
    bm = c["base_model"]
    if not isinstance(bm, dict):
        raise UserError(f"base_model must be a configs/base_model option (e.g. base_model=smollm2-135m), got {bm!r}; "
                        "for a local model directory pass base_model.path=/path/to/model")
    from zett.cli.eval_checks import check_eval_config, check_finite_records

    check_eval_config(c)
    model, tokenizer = load_base_from_config(bm, seed=c.get("seed", 0))
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
    check_finite_records(records)
    from zett.outputs import atomic_dir

    out = Path(str(c["output_dir"])).expanduser()
    with atomic_dir(out, overwrite=bool(c.get("overwrite", False))) as tmp:  # results appear whole, never merged
        paths = write_results(records, tmp, plot_png=c.get("plot", True))
        (tmp / "eval_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    paths = {k: out / p.name for k, p in paths.items()} | {"config": out / "eval_config.yaml"}
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    print(report_markdown(records))
    return [public(r) for r in records]  # without the per-document arrays (they are not saved either)


@user_errors_exit("zett-eval")
def _task(cfg: DictConfig) -> None:
    evaluate(cfg)


main = hydra_entry("zett-eval", hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")(_task),
                   _task)


if __name__ == "__main__":
    main()
