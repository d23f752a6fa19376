"""Evaluate zero-shot tokenizer transfer: base model x target tokenizers x methods x corpora -> records.

The base model is loaded once; every (target, method) pair goes through ``zett.transfer`` in memory (the base is
never modified: a fingerprint of its embeddings is checked after every transfer) and is scored on exactly the same
texts (``zett.eval.texts``) with ``zett.eval.metrics.score_texts`` (BOS context and sliding-window conventions are
documented there). ``original`` is the base model with its own tokenizer: the reference row.
"""

from __future__ import annotations

import gc
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zett.eval.metrics import BYTE_CLASSES, score_documents
from zett.eval.texts import MULTILINGUAL, corpus_label, eval_texts

log = logging.getLogger(__name__)

METHODS = ("original", "hypernet", "shipped", "fvt", "lexical", "random", "focus", "omp")


class EvalConfigError(ValueError):
    """An evaluation request that cannot run; the message names the setting and the fix."""


@dataclass
class ScoreSettings:
    """How texts are scored (see ``zett.eval.metrics``)."""

    max_length: int = 512  # tokens per window
    stride: int | None = None  # tokens a window advances (default max_length // 2)
    batch_size: int = 8
    prefix: str = "bos"  # context token before each document: bos (else eos) | eos | none | a token string


@dataclass
class FocusSettings:
    """Training text and options for the FOCUS auxiliary embeddings (``zett.transfer.focus``)."""

    corpora: list[str] | None = None  # train-split corpora; None = the evaluated corpora
    max_bytes: int = 300_000
    options: dict = field(default_factory=lambda: {"dim": 64, "epochs": 5})


def label(spec) -> str:
    """Short display name of a model/tokenizer spec: asset names stay, paths become their file/dir name."""
    if not isinstance(spec, str | Path):
        return str(getattr(spec, "name_or_path", "") or type(spec).__name__)
    p = Path(str(spec))
    return p.stem if (p.suffix or "/" in str(spec)) else str(spec)


def _fingerprint(model) -> tuple:
    from zett.models import adapter

    e_in, e_out = adapter.input_embeddings(model), adapter.output_embeddings(model)
    return (tuple(e_in.shape), e_in.data_ptr(), float(e_in.detach().double().sum()),
            float(e_out.detach().double().sum()), getattr(model.config, "vocab_size", None))


def text_sets(corpora: list[str], languages: list[str] | None, max_bytes: int | None, split: str = "test",
              doc_bytes: int = 4096, parallel: bool = True,
              local_split: bool = False) -> dict[tuple[str, str | None], list[str]]:
    """(corpus label, language) -> evaluation documents, identical for every tokenizer and method.
    ``local_split``: local corpora give only the scored part of their split by document (FOCUS trains on the rest)."""
    out = {}
    for corpus in corpora:
        multilingual = corpus in MULTILINGUAL
        for lang in (languages or [None]) if multilingual else [None]:
            if multilingual and lang is None:
                raise EvalConfigError(f"corpus {corpus!r} is multilingual; set languages=[en,de,fr,...]")
            texts = eval_texts(corpus, max_bytes, split=split, language=lang, languages=languages,
                               doc_bytes=doc_bytes, parallel=parallel, local_split=local_split)
            if not texts:
                raise EvalConfigError(f"corpus {corpus!r} (language {lang}, split {split}) gave no text; "
                                      "choose another split/language or raise max_bytes")
            out[(corpus_label(corpus), lang)] = texts
    return out


def focus_texts(settings: FocusSettings, corpora: list[str], languages: list[str] | None) -> list[str]:
    """FOCUS training text: the ``train`` split of each corpus, ``max_bytes`` shared equally between them. Without
    ``settings.corpora`` these are the evaluated corpora, and a local one gives the train part of its split by
    document (``zett.eval.texts.local_part``); the scores use the other part."""
    names = settings.corpora or corpora
    local_split = not settings.corpora
    parts = []
    for corpus in names:
        for lang in (languages or [None]) if corpus in MULTILINGUAL else [None]:
            parts.append((corpus, lang))
    share = settings.max_bytes // max(len(parts), 1)
    texts = []
    for corpus, lang in parts:
        texts += eval_texts(corpus, share, split="train", language=lang, languages=None, parallel=False,
                            local_split=local_split)
    return texts


def score_record(model, tokenizer, texts: list[str], settings: ScoreSettings, progress: bool = False) -> dict:
    """One measurement: bits per byte, bytes per token and the raw counts behind them."""
    prefix = settings.prefix
    if prefix == "bos" and tokenizer.bos_token_id is None and tokenizer.eos_token_id is None:
        log.warning("tokenizer %s has neither BOS nor EOS; scoring without a context token (prefix='none')",
                    label(tokenizer))
        prefix = "none"
    t0 = time.perf_counter()
    s, d = score_documents(model, tokenizer, texts, max_length=settings.max_length, stride=settings.stride,
                           batch_size=settings.batch_size, prefix=prefix, progress=progress)
    rec = {"bits_per_byte": s.bits_per_byte, "bytes_per_token": s.bytes_per_token, "n_bytes": s.n_bytes,
           "n_tokens": s.n_tokens, "n_text_bytes": s.n_text_bytes, "n_text_tokens": s.n_text_tokens,
           "nll_bits": s.nll_bits, "prefix": prefix, "seconds": round(time.perf_counter() - t0, 3)}
    # Bits per byte by the class of the predicted tokens' bytes (a token's bits shared by its bytes' classes);
    # None where the text has no byte of that class.
    for c in BYTE_CLASSES:
        rec[f"bits_{c}"] = d.class_bits[c]
        if c != "special":
            rec[f"bpb_{c}"] = d.class_bits[c] / d.class_bytes[c] if d.class_bytes[c] else None
    rec["bytes_per_token_digits"] = d.digit_bytes / d.digit_tokens if d.digit_tokens else None
    rec["_docs"] = list(zip(d.nll_bits, d.n_bytes, strict=True))  # per document, for paired bootstrap intervals
    return rec


@dataclass
class TaskSettings:
    """Zero-shot multiple-choice tasks scored through lm-eval (``zett.eval.harness``)."""

    tasks: list[str] = field(default_factory=list)  # BIG-bench task names (task or task/subtask)
    limit: int | None = None  # first examples of each task
    root: str | None = None  # a local folder of BIG-bench task folders; None = the bigbench asset
    batch_size: int = 8


def task_records(model, tok, task_dir, names: dict[str, str], settings: TaskSettings, device) -> list[dict]:
    """One record per task (acc, acc_norm, stderr, continuous scores; per-example scores under ``_examples``) and
    one ``task="mean"`` record averaging the tasks."""
    from zett.eval.harness import score_tasks

    t0 = time.perf_counter()
    scored = score_tasks(model, tok, task_dir, names, limit=settings.limit, batch_size=settings.batch_size,
                         device=str(device))
    seconds = round(time.perf_counter() - t0, 3)
    out = []
    for bb, (summary, examples) in scored.items():
        out.append({"task": bb, **summary, "seconds": seconds / max(len(scored), 1),
                    "_examples": [(e.acc, e.acc_norm, e.answer_bits, e.answer_bytes, e.margin) for e in examples]})
    if out:
        n = len(out)
        mean = {"task": "mean", "n_examples": sum(r["n_examples"] for r in out), "seconds": seconds}
        for k in ("acc", "acc_norm", "answer_bits_per_byte", "margin_nats", "chance"):
            mean[k] = sum(r[k] for r in out) / n
        for k in ("acc_stderr", "acc_norm_stderr", "margin_stderr"):
            ses = [r[k] for r in out]  # tasks are independent samples
            mean[k] = None if any(x is None for x in ses) else math.sqrt(sum(x ** 2 for x in ses)) / n
        out.append(mean)
    return out


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_evaluation(base_model, targets: list, corpora: list[str], methods: list[str], *, base_tokenizer=None,
                   base_label: str | None = None,
                   languages: list[str] | None = None, max_bytes: int | None = 20_000, split: str = "test",
                   doc_bytes: int = 4096, parallel: bool = True, hypernet=None, hypernet_overrides: dict | None = None,
                   focus: FocusSettings | None = None, score: ScoreSettings | None = None, device: str = "auto",
                   dtype: str = "float32", seed: int = 0, progress: bool = True,
                   tasks: TaskSettings | None = None, donor_model=None, omp: dict | None = None) -> list[dict]:
    """All measurements as a list of records (see ``zett.eval.report`` for the files written from them).

    base_model / targets / base_tokenizer: asset names, local paths or loaded objects (a loaded base model is
    moved to ``device``, never modified otherwise). base_label: the base's name in the records. hypernet: a directory
    written by ``ZettHypernet.save_pretrained``, a ``ZettHypernet``, ``"untrained"`` (a fresh residual
    hypernetwork, which reproduces FVT; for smoke tests), or None / ``"shipped"`` (the hypernetwork shipped with
    zett for this base, ``zett.hypernets``). Method ``shipped`` is always the shipped one, so that a trained
    hypernetwork (``hypernet``) and the shipped one can be compared in one run. tasks: BIG-bench multiple-choice
    tasks scored through lm-eval for every (method, target) model (records with a ``task`` field instead of
    ``corpus``). donor_model / omp: method ``omp``'s donor (a model using the target tokenizer) and options (``k``,
    ``batch_size``).
    """
    from tqdm.auto import tqdm

    from zett.tokenizers import load_tokenizer
    from zett.transfer import load_model, transfer

    score = score or ScoreSettings()
    focus = focus or FocusSettings()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise EvalConfigError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if not methods:
        raise EvalConfigError("methods is empty; e.g. methods=[original,fvt]")
    if any(m != "original" for m in methods) and not targets:
        raise EvalConfigError("no target tokenizers: set targets=[gpt2,...] (or methods=[original] only)")

    if "omp" in methods and donor_model is None:
        raise EvalConfigError("method 'omp' needs donor_model=... (a model that already uses the target tokenizer, "
                              "e.g. donor_model=gemma3-270m for targets=[gemma3-270m])")
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    dev = _resolve_device(device)
    t0 = time.perf_counter()
    base, _ = load_model(base_model, torch_dtype)
    base = base.to(dev).eval()
    base_tok = load_tokenizer(base_tokenizer if base_tokenizer is not None else
                              (base_model if isinstance(base_model, str | Path) else base.name_or_path))
    base_label = base_label or label(base_model if base_tokenizer is None or not isinstance(base_tokenizer, str)
                                     else base_tokenizer)
    log.info("loaded base model %s in %.1fs", base_label, time.perf_counter() - t0)
    # FOCUS trained on the evaluated corpora: local ones are scored on the part of their documents it never sees
    sets = text_sets(corpora, languages, max_bytes, split, doc_bytes, parallel,
                     local_split="focus" in methods and not focus.corpora)
    tasks = tasks or TaskSettings()
    if not sets and not tasks.tasks:
        raise EvalConfigError("nothing to evaluate: set corpora=[botchan,...] and/or tasks=[social_iqa,...]")
    task_tmp = tempfile.TemporaryDirectory(prefix="zett-tasks-") if tasks.tasks else None
    task_names = {}
    if task_tmp is not None:
        from zett.eval.bigbench import BigBenchError
        from zett.eval.harness import write_task_dir

        try:
            task_names = write_task_dir(tasks.tasks, task_tmp.name, tasks.root, tasks.limit)
        except BigBenchError as e:
            task_tmp.cleanup()
            raise EvalConfigError(f"tasks: {e}") from e

    hns = {}
    for method in {"hypernet", "shipped"} & set(methods):
        from zett import hypernets
        from zett.models import ZettHypernet
        from zett.transfer import load_hypernet

        spec = hypernet if method == "hypernet" else "shipped"
        if isinstance(spec, str) and spec == "untrained":
            hns[method] = ZettHypernet.from_base_model(base, seed=seed, **(hypernet_overrides or {}))
        elif spec is None or str(spec) == "shipped":
            try:
                hns[method] = hypernets.require_for_base(base, "hypernet_path")
            except hypernets.ShippedHypernetError as e:
                raise EvalConfigError(f"method {method!r}: {e}") from e
        else:
            hns[method] = load_hypernet(spec)
        hns[method].check_compatible(base)
    aux_texts = focus_texts(focus, corpora, languages) if "focus" in methods else None

    names = {id(t): label(t) for t in targets}
    if len(set(names.values())) < len(targets):  # e.g. two different */tokenizer.json: fall back to full specs
        names = {id(t): str(t) if isinstance(t, str | Path) else label(t) for t in targets}
    jobs = [("original", None)] if "original" in methods else []
    jobs += [(m, t) for t in targets for m in methods if m != "original"]
    used = str(base_tokenizer) if isinstance(base_tokenizer, str | Path) else label(base_tok)
    common = {"base_model": base_label, "base_tokenizer": used,  # the tokenizer scored as 'original', as given
              "split": split, "max_length": score.max_length,
              "stride": score.stride or score.max_length // 2}
    records = []
    fingerprint = _fingerprint(base)
    for method, target in tqdm(jobs, desc="evaluating", disable=not progress):
        t1 = time.perf_counter()
        if method == "original":
            model, tok, name = base, base_tok, base_label
        else:
            kwargs = {}
            if method in hns:
                kwargs["hypernet"] = hns[method]
            if method == "focus":
                kwargs.update(texts=aux_texts, **focus.options)
            if method == "omp":
                kwargs.update(donor_model=donor_model, **(omp or {}))
            model, tok = transfer(base, target, method="hypernet" if method in hns else method,
                                  base_tokenizer=base_tok, seed=seed, progress=progress, **kwargs)
            model = model.to(dev).eval()
            name = names[id(target)]
            if _fingerprint(base) != fingerprint:
                raise RuntimeError(f"zett.transfer(method={method!r}) modified the base model it was given; "
                                   "this is a bug in zett.transfer (it must work on a copy)")
        transfer_s = round(time.perf_counter() - t1, 3)
        for (corpus, lang), texts in sets.items():
            rec = {"method": method, "tokenizer": name, "corpus": corpus, "language": lang,
                   "vocab_size": len(tok), **common, "transfer_seconds": transfer_s}
            rec.update(score_record(model, tok, texts, score, progress))
            records.append(rec)
            log.info("%s / %s / %s%s: %.4f bits/byte, %.2f bytes/token", name, method, corpus,
                     f":{lang}" if lang else "", rec["bits_per_byte"], rec["bytes_per_token"])
        if task_names:
            for rec in task_records(model, tok, task_tmp.name, task_names, tasks, dev):
                records.append({"method": method, "tokenizer": name, "vocab_size": len(tok),
                                "base_model": base_label, "base_tokenizer": common["base_tokenizer"],
                                "transfer_seconds": transfer_s, **rec})
                log.info("%s / %s / %s: acc %.3f, acc_norm %.3f", name, method, rec["task"], rec["acc"],
                         rec["acc_norm"])
        if model is not base:
            del model
            gc.collect()
    if task_tmp is not None:
        task_tmp.cleanup()
    return records


__all__ = ["METHODS", "EvalConfigError", "FocusSettings", "ScoreSettings", "TaskSettings", "focus_texts", "label",
           "run_evaluation", "score_record", "task_records", "text_sets"]
