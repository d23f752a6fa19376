"""``zett-eval``'s settings checked before the base model loads, and its scores checked before they are written."""

from __future__ import annotations

import json
import math
from pathlib import Path

from zett.cli.errors import UserError
from zett.cli.validate import check_base_model, check_hypernet_dir, check_tokenizer, positive

SCORE_KEYS = ("bits_per_byte", "bytes_per_token", "nll_bits", "delta_bits_per_byte")


def _as_list(value, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise UserError(f"{name} must be a list, e.g. {name}=[a,b]; got {value!r}")
    return [str(v) for v in value]


def check_corpus(corpus: str, setting: str) -> None:
    """An asset of kind corpus, or a readable local .txt/.jsonl file or directory (UTF-8 text)."""
    from zett.assets import REGISTRY
    from zett.eval.texts import is_local

    if is_local(corpus):
        from zett.cli.validate import check_text_head, read_text_file

        p = Path(corpus).expanduser()
        if p.is_dir():
            for f in sorted(p.rglob("*.txt"))[:100]:
                check_text_head(f, setting)
        elif p.suffix == ".jsonl":
            for i, line in enumerate(read_text_file(p, setting).splitlines()):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise UserError(f"{setting}: {p} line {i + 1} is not JSON ({e}); write one JSON object per "
                                    "line with a 'text' string") from e
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise UserError(f"{setting}: {p} line {i + 1} has no 'text' string; write one JSON object "
                                    "per line with a 'text' string")
        else:
            read_text_file(p, setting)
        return
    if corpus in REGISTRY:
        if REGISTRY[corpus].kind != "corpus":
            raise UserError(f"{setting}: {corpus!r} is a {REGISTRY[corpus].kind} asset, not a corpus; use a corpus "
                            "asset (zett-assets list) or a local .txt/.jsonl file")
        return
    raise UserError(f"{setting}: {corpus!r} is neither a corpus asset (zett-assets list) nor an existing local "
                    ".txt/.jsonl file or directory")


def check_eval_config(c: dict) -> None:
    """Raise :class:`UserError` for any setting of ``configs/eval.yaml`` that cannot work (no model is loaded)."""
    from zett.cli.validate import boolean
    from zett.eval.runner import METHODS
    from zett.eval.texts import MULTILINGUAL, is_local
    from zett.outputs import check_output_dir

    if not c.get("output_dir"):
        raise UserError("output_dir is unset: pass output_dir=DIR (a new or empty directory)")
    check_output_dir(c["output_dir"], boolean(c, "overwrite"))
    methods = _as_list(c.get("methods"), "methods")
    if not methods:
        raise UserError("methods is empty; e.g. methods=[original,fvt]")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"methods: unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    corpora = _as_list(c.get("corpora"), "corpora")
    if not corpora and not _as_list(c.get("tasks"), "tasks"):
        raise UserError("corpora is empty (and no tasks): e.g. corpora=[botchan] or tasks=[social_iqa]")
    languages = _as_list(c.get("languages"), "languages")
    targets = _as_list(c.get("targets"), "targets")
    positive(c, "max_bytes", allow_none=True, example=20000)
    positive(c, "doc_bytes", example=4096)
    positive(c, "max_length", example=512)
    positive(c, "stride", allow_none=True)
    positive(c, "batch_size", example=8)
    positive(c, "task_limit", allow_none=True, example=100)
    bootstrap = c.get("bootstrap")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise UserError(f"bootstrap={bootstrap!r} is invalid: give the number of resamples, an integer >= 0 (0: no "
                        "intervals), e.g. bootstrap=1000")
    if "omp" in methods:
        from zett.cli.validate import check_omp

        check_omp(c["omp"])
    prefix = c.get("prefix")
    if not isinstance(prefix, str) or not prefix:
        raise UserError(f"prefix={prefix!r} is invalid: use bos, eos, none or a token string of every tokenizer")
    if prefix.lower() in ("bos", "eos", "none") and prefix not in ("bos", "eos", "none"):
        raise UserError(f"prefix={prefix} is invalid: use prefix={prefix.lower()} (bos, eos and none are lower case; "
                        "any other value is a token string)")
    if c.get("stride") is not None and int(c["stride"]) > int(c["max_length"]):
        raise UserError(f"stride={c['stride']} is larger than max_length={c['max_length']}: text between windows "
                        "would never be scored; use stride <= max_length or stride=null")
    if c["device"] != "auto":
        import torch

        try:
            dev = torch.device(str(c["device"]))
        except RuntimeError as e:
            raise UserError(f"device={c['device']!r} is invalid: use auto, cpu or cuda (cuda:N)") from e
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"device={c['device']} but CUDA is not available here; use device=auto or device=cpu")
    if not isinstance(c["split"], str):
        raise UserError(f"split={c['split']!r} must be a split name, e.g. split=test")
    for corpus in corpora:
        check_corpus(corpus, "corpora")
    if languages and not any(x in MULTILINGUAL for x in corpora):
        raise UserError(f"languages={languages} but no corpus in corpora={corpora} is multilingual (those are "
                        f"{', '.join(sorted(MULTILINGUAL))}); drop languages= or add a multilingual corpus")
    focus = c["focus"]
    if "focus" in methods:
        positive(focus, "max_bytes", "focus.", example=300000)
        focus_corpora = _as_list(focus.get("corpora"), "focus.corpora")
        if not focus_corpora:  # local corpora are split by document: FOCUS trains on one part, scores use the other
            from zett.eval.texts import _local_corpus, local_part

            for x in corpora:
                if is_local(x):
                    try:
                        local_part(_local_corpus(Path(x).expanduser()), "train", f"corpora: {x}")
                    except ValueError as e:
                        raise UserError(f"focus.corpora is unset and method focus trains on a held-out part of "
                                        f"each local corpus, but {e}") from e
        for x in focus_corpora:
            check_corpus(x, "focus.corpora")
            if is_local(x) and any(is_local(y) and Path(y).expanduser().resolve() == Path(x).expanduser().resolve()
                                    for y in corpora):
                raise UserError(f"focus.corpora: {x} is also evaluated (corpora); FOCUS must not train on the text "
                                "it is scored on: give other text in focus.corpora")
    if c.get("hypernet_path") is not None and "hypernet" in methods:
        check_hypernet_dir(c["hypernet_path"])
    for t in targets:
        check_tokenizer(t, "targets")
    tasks = _as_list(c.get("tasks"), "tasks")
    if tasks:  # every task.json read now, not after the models were transferred and scored
        from zett.eval.bigbench import BigBenchError, load_task
        from zett.eval.runner import EvalConfigError

        for t in tasks:
            try:
                load_task(t, c.get("task_root"))
            except BigBenchError as e:  # the same error type evaluate() raises for it
                raise EvalConfigError(f"tasks: {e}") from e
    if c.get("base_tokenizer"):
        check_tokenizer(c["base_tokenizer"], "base_tokenizer")
    check_base_model(c.get("base_model"))


def check_finite_records(records: list[dict]) -> None:
    """Refuse to report a NaN or infinite score; the message names method, target and corpus."""
    for r in records:
        for key in SCORE_KEYS:
            v = r.get(key)
            if isinstance(v, float) and not math.isfinite(v):
                where = r["corpus"] + (f":{r['language']}" if r.get("language") else "")
                from zett.transfer.finite import NonFiniteError

                raise NonFiniteError(f"{key} is {v} for method={r['method']} target={r['tokenizer']} "
                                     f"corpus={where}; nothing was written. The model's weights or the hypernetwork "
                                     "hold NaN/Inf: check base_model / hypernet_path (a cached asset: `zett-assets "
                                     "verify <name>` re-hashes its files and re-fetches what differs)")
