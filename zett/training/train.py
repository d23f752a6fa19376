"""``train(cfg)``: the whole training run from a composed Hydra config (``configs/train.yaml``).

The CLI (``zett-train``, ``zett/cli/train.py``) is a thin ``@hydra.main`` around this function; tests call it with
``hydra.compose``. The run directory is ``cfg.run_dir`` if set, else Hydra's output dir, else
``outputs/train/<timestamp>``; it receives ``checkpoints/``, logs, ``hypernet/`` (the exported hypernetwork) and
``summary.json``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from zett.config import CONFIG_DIR  # noqa: F401 - re-exported; importing zett.config registers the schemas

log = logging.getLogger("zett.train")



def resolve_run_dir(cfg) -> Path:
    if cfg.get("run_dir"):
        return Path(str(cfg.run_dir)).expanduser().resolve()
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.output_dir).resolve()
    except ImportError:  # pragma: no cover
        pass
    return Path("outputs/train", datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")).resolve()


def _instantiate_all(node) -> list:
    from hydra.utils import instantiate

    if node is None:
        return []
    return [instantiate(v) for v in node.values() if v is not None]


def params_digest(module: torch.nn.Module) -> str:
    """sha256 over the parameters and buffers (names and exact bytes): equal digests = identical weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _export(trainer, module, out_dir: Path) -> Path | None:
    """Save the trained hypernetwork (all ranks call this; rank 0 writes)."""
    from pytorch_lightning.strategies import FSDPStrategy

    from zett.outputs import atomic_dir

    # Written into a temporary sibling and renamed into place: a killed export never leaves half a hypernet/.
    if isinstance(trainer.strategy, FSDPStrategy):
        # Parameters are sharded: gather a full state dict (a collective), then rebuild a plain copy on rank 0.
        state = trainer.strategy.lightning_module_state_dict()
        if trainer.is_global_zero:
            from zett.models import ZettHypernet

            plain = ZettHypernet(module.hypernet.config)
            plain.load_state_dict({k.removeprefix("hypernet."): v for k, v in state.items()
                                   if k.startswith("hypernet.")})
            with atomic_dir(out_dir, overwrite=True, setting="hypernet export") as tmp:
                plain.save_pretrained(tmp)
            return out_dir
        return None
    if trainer.is_global_zero:
        with atomic_dir(out_dir, overwrite=True, setting="hypernet export") as tmp:
            module.export_hypernet(tmp)
        return out_dir
    return None


def build_hypernet(cfg, base):
    """The hypernetwork to train: ``init_hypernet`` (a directory or ``shipped``) or a new one for ``base`` from the
    ``hypernet`` group (null values: derived from the base model)."""
    from omegaconf import OmegaConf

    from zett.models import ZettHypernet

    if cfg.init_hypernet == "shipped":
        from zett import hypernets

        return hypernets.require_for_base(base, "init_hypernet")  # float32 copy of the bf16 weights
    if cfg.init_hypernet:
        from zett.models import HypernetMismatchError

        hypernet = ZettHypernet.from_pretrained(str(cfg.init_hypernet))
        try:
            hypernet.check_compatible(base)
        except HypernetMismatchError as e:
            raise HypernetMismatchError(f"init_hypernet={cfg.init_hypernet} does not fit the base model: {e}") from e
        bad = next((k for k, v in hypernet.state_dict().items() if v.is_floating_point() and
                    not bool(torch.isfinite(v).all())), None)
        if bad is not None:  # it would train on NaN and fail much later
            from zett.cli.errors import UserError

            raise UserError(f"init_hypernet={cfg.init_hypernet} holds non-finite weights (NaN/Inf in {bad}); start "
                            "from a finite hypernetwork (e.g. the checkpoint before the loss went NaN) or drop "
                            "init_hypernet")
        return hypernet
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.hypernet, resolve=True).items() if v is not None}
    return ZettHypernet.from_base_model(base, **overrides, seed=int(cfg.seed))


def build(cfg, run_dir: Path):
    """Instantiate (base model, tokenizer, module, datamodule, trainer) from ``cfg``."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zett.training.base import load_base_from_config
    from zett.training.module import ZettTrainingModule

    pl.seed_everything(int(cfg.seed), workers=True)
    bm = cfg.base_model
    base, tokenizer = load_base_from_config(bm, int(cfg.seed))
    if bm.activation_checkpointing:
        from zett.training.base import enable_activation_checkpointing

        log.info("activation checkpointing on %d layers of the base model", enable_activation_checkpointing(base))
    hypernet = build_hypernet(cfg, base)
    hypernet.train()
    max_pieces = int(hypernet.config.max_pieces)

    factory = instantiate(cfg.tokenizer_sampler, _partial_=True)
    objective = str(cfg.loss.objective)
    for name, term in cfg.loss.terms.items():
        if term is not None and "_target_" not in term:
            raise ValueError(f"loss.terms.{name} has no _target_ (it is {dict(term)}): an experiment or override "
                             "sets a term the chosen loss config does not define; drop that override or pick a "
                             "loss config with the term")
    losses = {name: instantiate(term) for name, term in cfg.loss.terms.items() if term is not None}
    # Distillation terms (zett.training.distill) declare the chunk granularity they align on.
    modes = sorted({t.chunks for t in losses.values() if getattr(t, "chunks", None) and t.weight != 0})
    datamodule = instantiate(cfg.data, base_tokenizer=tokenizer, sampler_factory=factory, objective=objective,
                             seed=int(cfg.seed), max_pieces=max_pieces, alignment_modes=modes,
                             n_base_rows=int(hypernet.config.base_vocab_size), _recursive_=False)
    scheduler = OmegaConf.to_container(cfg.scheduler, resolve=True)
    scheduler.setdefault("total_steps", int(cfg.trainer.max_steps))
    module = ZettTrainingModule(
        base, hypernet, losses, optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True), scheduler=scheduler,
        objective=objective, val_names=datamodule.val_names, base_dtype=str(bm.device_dtype),
        ce_max_chunk_elements=int(cfg.ce_max_chunk_elements), seed=int(cfg.seed),
        balance=str(cfg.loss.balance), base_tokenizer=tokenizer,
        **_throughput_options(cfg))
    attach_teacher_cache(cfg, base, tokenizer, losses, module, datamodule)
    loggers = _instantiate_all(cfg.logger)
    callbacks = _instantiate_all(cfg.callbacks)
    from zett.training.checkpoint import ValidationSummary

    callbacks.append(ValidationSummary(run_dir))  # summary.json records every validation, even of a killed run
    from zett.training.runid import RunIdentity

    callbacks.append(RunIdentity(run_dir))  # every checkpoint names its run (run.json)
    from zett.training.stop import CheckpointOnSigterm

    callbacks.append(CheckpointOnSigterm(run_dir))  # SIGTERM: last.ckpt at the step reached, exit 143
    from zett.training.guards import RequirePredictedTokens

    callbacks.append(RequirePredictedTokens(objective, cfg.data.get("span_chars")))  # no token to predict: stop
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=str(run_dir))
    return base, tokenizer, module, datamodule, trainer


def attach_teacher_cache(cfg, base, tokenizer, losses: dict, module, datamodule) -> None:
    """Latents terms at a layer read the teacher's states from a cache of the fixed span set (built on first use,
    then reused by every run with the same key); without ``data.fixed_spans`` the teacher runs every step."""
    from zett.cli.errors import UserError
    from zett.models import adapter

    layers = sorted({t.layer for t in losses.values() if getattr(t, "layer", None) is not None and t.weight})
    if not layers:
        return
    n_layers = len(adapter.decoder_layers(base))
    if layers[-1] >= n_layers:
        raise UserError(f"loss.layer={layers[-1]} is invalid for this base model ({n_layers} layers): give a layer "
                        f"in 1..{n_layers - 1}, or null for the full model's final states")
    if not datamodule.fixed_spans:
        log.warning("loss.layer=%s without data.fixed_spans: the teacher runs every step (no cache)", layers)
        return
    from zett.training.teacher_cache import TeacherCache

    module.teacher_cache = TeacherCache.build_or_open(
        base, tokenizer, datamodule.fixed_span_texts(), layers, datamodule.block_size, cfg.loss.teacher_cache)


def _throughput_options(cfg) -> dict:
    """The training step's options (zett.config.schema.TrainConfig; null = the module's defaults)."""
    out = {}
    for key in ("ce_matmul_dtype", "allow_tf32", "nonfinite_check_every", "compile_hypernet"):
        if cfg[key] is not None:
            out[key] = cfg[key]
    return out


def train(cfg) -> dict:
    """Run training as configured; returns (and writes to ``<run_dir>/summary.json``) the run's summary."""
    from omegaconf import OmegaConf

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_dir = resolve_run_dir(cfg)
    if not run_dir.is_dir():
        from zett.outputs import check_creatable

        check_creatable(run_dir, "run_dir" if cfg.run_dir else "hydra.run.dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.set_struct(cfg, False)
    cfg.run_dir = str(run_dir)  # yaml nodes interpolate ${run_dir} (logger save_dir, checkpoint dirpath)
    from zett.training import rundir
    from zett.training.runid import start_run

    rundir.check_train_config(cfg)
    previous = rundir.check_run_dir(cfg, run_dir)  # refuses; deletes nothing yet
    t0 = time.perf_counter()
    _, _, module, datamodule, trainer = build(cfg, run_dir)
    # Everything that can fail before the first step runs before the run directory changes (overwrite=true
    # deletes the previous run only now): the corpora and validation texts, and the optimizer and its schedule.
    datamodule.setup("fit")  # idempotent: Lightning's own call during fit finds it done
    module.configure_optimizers()
    fresh = False  # the directory holds nothing of an earlier run (none, or overwrite=true deleted it)
    if not rundir.launched_rank():
        rundir.clear_run_dir(run_dir, previous)
        fresh = not rundir.previous_run(run_dir)  # an HPC requeue or a resume keeps its run's artefacts
        start_run(run_dir)
    rundir.save_hydra_config(cfg)  # only now: a refused run leaves the previous run's .hydra/ as it was

    ckpt_path = cfg.ckpt_path
    if ckpt_path and not Path(str(ckpt_path)).exists():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist; give a checkpoint of this run "
                                "(<run>/checkpoints/last.ckpt) or leave ckpt_path unset")
    initial = None
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    try:
        if cfg.validate_at_start and not ckpt_path and datamodule.val_names:
            initial = trainer.validate(module, datamodule=datamodule, verbose=False)
            initial = {k: float(v) for k, v in (initial[0] if initial else {}).items()}
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                    weights_only=True)
    except SIGTERMException:  # Lightning's exit status would be 0: record where the run stopped and fail
        from zett.training.stop import stopped

        stopped(trainer, module, run_dir, {"initial_validation": initial, "wall_seconds":
                                           round(time.perf_counter() - t0, 1)})
    except Exception:
        if fresh and not ckpt_path and trainer.global_step == 0:
            # failed before its first step: nothing of it is worth keeping (no checkpoint, no trained weights),
            # and rerunning once the setting is fixed must not be refused as "already holds a run"
            rundir.clear_run_dir(run_dir, rundir.previous_run(run_dir))
        raise

    exported = _export(trainer, module, run_dir / "hypernet") if cfg.export else None
    summary = {
        "run_dir": str(run_dir),
        "global_step": int(trainer.global_step),
        "initial_validation": initial,
        "validation_history": module.val_history,
        "final_train_loss": float(trainer.callback_metrics["train/loss"])
        if "train/loss" in trainer.callback_metrics else None,
        "hypernet": str(exported) if exported else None,
        "hypernet_digest": params_digest(module.hypernet),
        "cpu_seconds": round(module.cpu_seconds(), 1),
        "tokens_seen": module.tokens_seen,
        "world_size": int(trainer.world_size),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "finished": True,
    }
    if trainer.world_size > 1:
        ranks = run_dir / "ranks"
        ranks.mkdir(exist_ok=True)
        (ranks / f"rank{trainer.global_rank}.json").write_text(json.dumps(
            {"rank": trainer.global_rank, "global_step": summary["global_step"],
             "hypernet_digest": summary["hypernet_digest"]}))
    if trainer.is_global_zero:
        rundir.write_summary(run_dir, summary)
        log.info("run finished: %s", json.dumps({k: summary[k] for k in ("global_step", "hypernet")}))
    return summary
