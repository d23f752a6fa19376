"""The run directory of ``zett-train``: refused when it holds a previous run, checked settings, summary writes.

A run directory holds a previous run when any of :data:`RUN_ARTEFACTS` is there (Hydra's own ``.hydra/`` and job
log are not a run). It is then refused unless ``ckpt_path`` resumes it with a checkpoint of that run
(``zett.training.runid``), Lightning will resume it from an HPC checkpoint (a SLURM requeue: ``hpc_ckpt_*.ckpt``),
or ``overwrite=true``, which deletes the previous run's artefacts. :func:`check_run_dir` decides before anything is
built and changes nothing; ``train()`` calls :func:`clear_run_dir` only once the new run was built and checked, so
a run that cannot start leaves the previous one as it was. Processes that Lightning's DDP launcher or SLURM start for ranks other than 0 skip the check:
rank 0 made it, and may already have written into the directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from zett.cli.errors import MissingInputError, UserError

RUN_ARTEFACTS = ("checkpoints", "hypernet", "summary.json", "logs", "ranks", "run.json")
_RANK_VARS = ("LOCAL_RANK", "RANK", "NODE_RANK", "SLURM_PROCID", "GROUP_RANK")


def launched_rank() -> bool:
    """True in a process started for a rank other than 0 (by Lightning's launcher, torchrun or SLURM)."""
    return any(os.environ.get(k, "0") not in ("", "0") for k in _RANK_VARS)


def previous_run(run_dir: Path) -> list[str]:
    return sorted(p for p in RUN_ARTEFACTS if (run_dir / p).exists())


def check_run_dir(cfg, run_dir: Path) -> list[str]:
    """Refuse a run directory holding a previous run (see the module docstring); changes nothing on disk.

    Returns the previous run's artefacts that :func:`clear_run_dir` deletes (``overwrite=true``) once the new run
    is built, so that a run failing before its first step leaves the previous one as it was."""
    from zett.training.runid import checkpoint_belongs, load_checkpoint_head

    ckpt = cfg.get("ckpt_path")
    if ckpt and not Path(str(ckpt)).expanduser().is_file():
        raise MissingInputError(f"ckpt_path={ckpt} does not exist; give a checkpoint of this run "
                        "(<run>/checkpoints/last.ckpt) or leave ckpt_path unset")
    overwrite = cfg.overwrite
    if not isinstance(overwrite, bool):
        raise UserError(f"overwrite={overwrite!r} is invalid: use overwrite=true or overwrite=false")
    if launched_rank():
        return []
    found = previous_run(run_dir)
    if any(run_dir.glob("hpc_ckpt_*.ckpt")):
        return []
    if ckpt and found:
        ckpt = Path(str(ckpt)).expanduser()
        if checkpoint_belongs(load_checkpoint_head(ckpt), ckpt, run_dir):
            return []  # a resume of the run in run_dir (overwrite=true never deletes what it resumes)
        if not overwrite:
            raise UserError(f"ckpt_path={ckpt} is not a checkpoint of the run in {run_dir} ({', '.join(found)}): "
                            f"resume that run with ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}, continue this "
                            "checkpoint in a new hydra.run.dir / run_dir, or pass overwrite=true to delete the run "
                            f"in {run_dir} first")
        if ckpt.resolve().is_relative_to(run_dir.resolve()):
            raise UserError(f"ckpt_path={ckpt} lies inside {run_dir}, whose run overwrite=true would delete; move "
                            "the checkpoint out of the run directory first, or drop overwrite=true")
    elif ckpt:
        load_checkpoint_head(Path(str(ckpt)).expanduser())  # an empty directory adopts any readable checkpoint
    if found and not overwrite:
        raise UserError(f"run directory {run_dir} already holds a run ({', '.join(found)}); resume it with "
                        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}, choose a new hydra.run.dir / run_dir, "
                        "or pass overwrite=true to delete that run first")
    return found


def clear_run_dir(run_dir: Path, found: list[str]) -> None:
    """Delete the previous run's artefacts ``found`` by :func:`check_run_dir` (``overwrite=true``)."""
    for name in found:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def save_hydra_config(cfg) -> Path | None:
    """Hydra's record of the run (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml`` in its output dir),
    written by zett once the run directory was accepted: ``configs/train.yaml`` sets ``hydra.output_subdir: null``
    so that a refused run never rewrites the record of the run already there. Rank 0 only; None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from zett.outputs import write_text_atomic

    if not HydraConfig.initialized() or launched_rank():
        return None
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir) / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(task))
    write_text_atomic(out / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})))
    write_text_atomic(out / "overrides.yaml", OmegaConf.to_yaml(hc.overrides.task))
    return out


def write_summary(run_dir: Path, summary: dict) -> Path:
    """``summary.json`` written whole (temporary file + rename), so a kill never leaves half of it."""
    from zett.outputs import write_text_atomic

    return write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")


def check_train_config(cfg) -> None:
    """Ranges, enums and combinations of ``configs/train.yaml`` checked before any model is loaded."""
    from omegaconf import OmegaConf

    from zett.cli.validate import check_base_model, check_hypernet_dir, positive

    c = OmegaConf.to_container(cfg, resolve=True)
    check_base_model(c.get("base_model"))
    data = c.get("data") or {}
    for key in ("batch_size", "span_chars", "block_size"):
        positive(data, key, "data.")
    positive(data, "n_vocab_subsample", "data.", allow_none=True)
    mlm_p = data.get("mlm_probability")
    if mlm_p is not None and not (isinstance(mlm_p, int | float) and 0 < mlm_p < 1):
        raise UserError(f"data.mlm_probability={mlm_p!r} is invalid: it must be in (0, 1), e.g. 0.15")
    for i, source in enumerate(data.get("sources") or []):
        if isinstance(source, dict) and source.get("path") and source["path"] != "???":
            from zett.cli.validate import check_text_head
            from zett.training.data import _files

            for f in _files(str(source["path"]))[:100]:
                if Path(f).suffix in (".txt", ".jsonl", ".json"):
                    check_text_head(Path(f), f"data.sources.{i}.path")
    from zett.eval.texts import MULTILINGUAL

    for i, source in enumerate(data.get("sources") or []):  # per-language settings need a multilingual corpus
        if isinstance(source, dict) and source.get("corpus") and source["corpus"] not in MULTILINGUAL:
            for key in ("by_language", "languages"):
                if source.get(key):
                    raise UserError(f"data.sources.{i}.{key}={source[key]} but corpus {source['corpus']} is "
                                    f"monolingual (multilingual corpora: {', '.join(sorted(MULTILINGUAL))}); drop "
                                    f"data.sources.{i}.{key}")
    val = data.get("validation") or {}
    positive(val, "n_sequences", "data.validation.")
    for key in ("span_chars", "block_size", "batch_size"):  # null: the data.* value
        positive(val, key, "data.validation.", allow_none=True)
    from zett.config.schema import SOURCE_KEYS

    texts = {f"data.validation.texts.{k}": v for k, v in (val.get("texts") or {}).items()}
    for where, source in {**{f"data.sources.{i}": s for i, s in enumerate(data.get("sources") or [])},
                          **texts}.items():
        unknown = sorted(set(source) - set(SOURCE_KEYS)) if isinstance(source, dict) else None
        if unknown is None:
            raise UserError(f"{where}={source!r} is invalid: a source is a mapping, e.g. {{corpus: botchan, "
                            "split: train}} or {path: /data/my_corpus.txt}")
        if unknown:
            raise UserError(f"{where}.{unknown[0]} is not a source setting; use {', '.join(SOURCE_KEYS)}")
    hn = c.get("hypernet") or {}
    positive(hn, "max_pieces", "hypernet.", allow_none=True, example=7)
    positive(hn, "num_layers", "hypernet.", allow_none=True)
    sampler = c.get("tokenizer_sampler") or {}
    positive(sampler, "vocab_size", "tokenizer_sampler.", allow_none=True)
    trainer = c.get("trainer") or {}
    positive(trainer, "max_steps", "trainer.")
    loss = c.get("loss") or {}
    objective = loss.get("objective")
    if objective not in ("clm", "mlm"):
        raise UserError(f"loss.objective={objective!r} is invalid: use clm or mlm")
    kind = c["base_model"]["kind"]
    if (objective == "mlm") != (kind == "masked"):
        raise UserError(f"loss.objective={objective} does not fit base_model.kind={kind}: use loss=mlm for masked "
                        "base models and a clm loss (e.g. loss=clm_lexical) for causal ones")
    for name, term in (loss.get("terms") or {}).items():
        if term is None:
            continue
        w = term.get("weight", 1.0)
        if not isinstance(w, int | float) or w < 0:
            raise UserError(f"loss.terms.{name}.weight={w!r} is invalid: it must be a number >= 0")
        target = str(term.get("_target_", ""))
        if objective == "mlm" and target.startswith("zett.training.distill"):
            raise UserError(f"loss.terms.{name} is a distillation term, which needs a causal base "
                            "(loss.objective=clm); drop it for loss.objective=mlm")
    from zett.cli.validate import one_of

    one_of(c["base_model"], "device_dtype", ("auto", "float32", "bfloat16", "float16"), "base_model.")
    one_of(loss, "balance", ("fixed", "gradmag"), "loss.")
    sched = c["scheduler"]
    if not sched["learning_rates"] or len(sched["learning_rates"]) != len(sched["warmup_steps"]):
        raise UserError(f"scheduler.learning_rates={sched['learning_rates']} and scheduler.warmup_steps="
                        f"{sched['warmup_steps']} must be non-empty lists of the same length (one warm-up per phase)")
    if any(not 0 < lr < 1 for lr in sched["learning_rates"]) or any(w < 0 for w in sched["warmup_steps"]):
        raise UserError(f"scheduler.learning_rates={sched['learning_rates']} must lie in (0, 1) and "
                        f"scheduler.warmup_steps={sched['warmup_steps']} be >= 0")
    if not 0 <= sched["alpha"] <= 1:
        raise UserError(f"scheduler.alpha={sched['alpha']} is invalid: the final rate's fraction must be in [0, 1]")
    if data["alpha"] < 0:
        raise UserError(f"data.alpha={data['alpha']} is invalid: the size exponent must be >= 0")
    bars = [k for k, v in (c.get("callbacks") or {}).items() if v and "ProgressBar" in str(v.get("_target_", ""))]
    if bars and not trainer.get("enable_progress_bar", True):
        raise UserError(f"callbacks.{bars[0]} is a progress bar but trainer.enable_progress_bar=false; pass "
                        f"trainer.enable_progress_bar=true or callbacks.{bars[0]}=null")
    monitors = [k for k, v in (c.get("callbacks") or {}).items()
                if v and str(v.get("_target_", "")).endswith("LearningRateMonitor")]
    if monitors and not c.get("logger"):
        raise UserError(f"callbacks.{monitors[0]} logs the learning rate, which needs a logger, but logger=none; "
                        f"pass logger=csv (or tensorboard/wandb) or callbacks.{monitors[0]}=null")
    _check_optimizer_and_validation(c)
    if c.get("init_hypernet"):
        try:
            check_hypernet_dir(c["init_hypernet"])
        except UserError as e:
            raise UserError(str(e).replace("hypernet_path=", "init_hypernet=")) from e


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x == x


def _check_optimizer_and_validation(c: dict) -> None:
    """optimizer.*, trainer.val_check_interval and data.validation.pairs: refused here rather than when fitting
    starts (after the models were loaded)."""
    opt = c.get("optimizer") or {}
    betas = opt.get("betas")
    if not isinstance(betas, list | tuple) or len(betas) != 2 or not all(_number(b) and 0 <= b < 1 for b in betas):
        raise UserError(f"optimizer.betas={betas} is invalid: give two numbers in [0, 1), e.g. "
                        "optimizer.betas=[0.9,0.95]")
    if not _number(opt.get("eps")) or opt["eps"] <= 0:
        raise UserError(f"optimizer.eps={opt.get('eps')!r} is invalid: it must be a number > 0, e.g. 1e-8")
    if not _number(opt.get("weight_decay")) or opt["weight_decay"] < 0:
        raise UserError(f"optimizer.weight_decay={opt.get('weight_decay')!r} is invalid: it must be a number >= 0, "
                        "e.g. 0.01")
    interval = (c.get("trainer") or {}).get("val_check_interval")
    if interval is not None and not (isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1
                                     or isinstance(interval, float) and 0 < interval <= 1):
        raise UserError(f"trainer.val_check_interval={interval!r} is invalid: give the steps between validations "
                        "as an integer >= 1 (e.g. trainer.val_check_interval=1000)")
    val = (c.get("data") or {}).get("validation") or {}
    texts = val.get("texts") or {}
    for pair in val.get("pairs") or []:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise UserError(f"data.validation.pairs has {pair!r}; each pair is [tokenizer, text], e.g. "
                            "[[base,botchan],[gpt2,botchan]]")
        if pair[1] not in texts:
            raise UserError(f"data.validation.pairs has [{pair[0]}, {pair[1]}] but data.validation.texts has no "
                            f"text {pair[1]!r} (it has {', '.join(map(str, texts)) or 'none'}); fix the pair or add "
                            f"data.validation.texts.{pair[1]}")
