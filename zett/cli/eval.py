"""``zett-eval``: evaluate zero-shot tokenizer transfer (configs/eval.yaml); ``evaluate(cfg)`` does the work."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from zett.cli.errors import UserError, hydra_entry, user_errors_exit
from zett.config import CONFIG_DIR  # importing zett.config registers the schemas

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
    focus = c["focus"]
    bm = c["base_model"]
    if not isinstance(bm, dict):
        raise UserError(f"base_model must be a configs/base_model option (e.g. base_model=smollm2-135m), got {bm!r}; "
                        "for a local model directory pass base_model.path=/path/to/model")
    from zett.cli.eval_checks import check_eval_config, check_finite_records

    check_eval_config(c)
    model, tokenizer = load_base_from_config(bm, seed=c["seed"])
    from zett.eval.metrics import _prefix_id, resolve_prefix

    try:  # a token string as prefix must be one of the base tokenizer's (checked before any scoring)
        _prefix_id(tokenizer, resolve_prefix(tokenizer, c["prefix"]))
    except ValueError as e:
        raise UserError(f"prefix={c['prefix']}: the base tokenizer has no such token ({e}); use bos, eos or none") \
            from e
    base_tokenizer = tokenizer
    if c["base_tokenizer"]:  # refused unless it is the model's own (another one scores garbage without an error)
        from zett.tokenizers import load_tokenizer
        from zett.tokenizers.fit import check_base_tokenizer

        base_tokenizer = load_tokenizer(c["base_tokenizer"])
        check_base_tokenizer(base_tokenizer, tokenizer, model, c["base_tokenizer"],
                             model_name=bm.get("path") or bm["name"])
        base_tokenizer.name_or_path = str(c["base_tokenizer"])  # the records name the one used
    records = run_evaluation(
        model, [str(t) for t in _list(c["targets"], "targets")],
        [str(x) for x in _list(c["corpora"], "corpora")], [str(m) for m in _list(c["methods"], "methods")],
        base_tokenizer=base_tokenizer, base_label=label(bm.get("path") or bm["name"]),
        languages=[str(x) for x in _list(c["languages"], "languages")] or None,
        max_bytes=c["max_bytes"], split=c["split"], doc_bytes=c["doc_bytes"],
        parallel=c["parallel"], hypernet=c["hypernet_path"],
        hypernet_overrides=c["hypernet_overrides"],
        focus=FocusSettings(corpora=focus["corpora"], max_bytes=focus["max_bytes"],
                            options=dict(focus["options"])),
        score=ScoreSettings(max_length=c["max_length"], stride=c["stride"],
                            batch_size=c["batch_size"], prefix=c["prefix"]),
        device=c["device"], seed=c["seed"],
        progress=c["progress"],
        tasks=TaskSettings(tasks=[str(t) for t in _list(c["tasks"], "tasks")], limit=c["task_limit"],
                           root=c["task_root"], batch_size=c["batch_size"]),
        donor_model=c["donor_model"], omp=dict(c["omp"]),
    )
    add_deltas(records)
    add_intervals(records, n_boot=int(c["bootstrap"]), seed=c["seed"])
    check_finite_records(records)
    from zett.outputs import atomic_dir

    out = Path(str(c["output_dir"])).expanduser()
    with atomic_dir(out, overwrite=bool(c["overwrite"])) as tmp:  # results appear whole, never merged
        paths = write_results(records, tmp, plot_png=c["plot"])
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
