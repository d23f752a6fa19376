"""Every option of every config group is instantiated (not only composed) and run once.

On CPU with the tiny random base: loss options train one step (with callbacks=default, logger=tensorboard and the
debug options along), base_model presets load and run a forward pass (presets that need a local model get a tiny
saved one), hypernet options predict embeddings, tokenizer samplers sample, data options yield a batch,
optimizer/scheduler options step, loggers log. GPU trainers are instantiated as far as their constructors allow
without a GPU (their strategies are built, the Trainer refuses the missing accelerator). Options already trained
for one step elsewhere are named in ``COVERED``; real-model runs are ``slow``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from zett.config import CONFIG_DIR

# one step of train() on the tiny base, no validation, nothing exported
TINY = ["experiment=debug", "trainer.max_steps=1", "validate_at_start=false", "export=false",
        "trainer.limit_val_batches=0", "logger=none", "data.sampler_warmup_texts=4"]
# trained end to end elsewhere: loss=clm_lexical (tests/test_training_run.py, experiment=debug), loss=clm_alm
# (tests/test_distill_training.py), trainer=ddp_cpu (tests/test_training_slow.py)
COVERED = {"loss": {"clm_lexical", "clm_alm"}}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def cfg_of(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("train", overrides=list(overrides))


@pytest.fixture(scope="module")
def tiny():
    from zett.models.tiny import tiny_random_base

    return tiny_random_base(seed=0)


@pytest.fixture(scope="module")
def masked_dir(tmp_path_factory, wordpiece_tokenizer):
    """A tiny BERT (masked LM) saved as a Hugging Face directory: what base_model=xlm-r's path points at here."""
    from zett.testing import tiny_bert

    path = tmp_path_factory.mktemp("bert")
    tiny_bert(wordpiece_tokenizer).save_pretrained(path)
    wordpiece_tokenizer.save_pretrained(path)
    return path


def _train_one_step(tmp_path: Path, *overrides: str) -> dict:
    from zett.training import train

    summary = train(cfg_of(*TINY, *overrides, f"run_dir={tmp_path}"))
    assert summary["global_step"] == 1
    assert math.isfinite(summary["final_train_loss"])
    return summary


# ------------------------------------------------------------------------------------------------ loss (+ extras)

# the other groups' options that run along with a loss (each exactly once)
ALONG = {"alm": ["callbacks=default", "trainer.enable_progress_bar=true", "logger=tensorboard"], "clm": ["debug=anomaly"],
         "clm_alm_latents": ["debug=default", "trainer.max_steps=1", "trainer.val_check_interval=1"],
         "clm_lexical_alm": ["scheduler=zett", "scheduler.warmup_steps=[1]"], "mlm": [],
         # the cut model at layer 1 of the tiny base, its teacher cache over a fixed span set
         "latents": ["loss.layer=1", "data.fixed_spans=8", "data.n_vocab_subsample=1"]}


@pytest.mark.parametrize("option", [o for o in options("loss") if o not in COVERED["loss"]])
def test_loss_option_trains_one_step(option, tmp_path, masked_dir):
    assert set(ALONG) == set(options("loss")) - COVERED["loss"]
    extra = list(ALONG[option])
    if option == "mlm":
        extra += [f"base_model.path={masked_dir}", "base_model.name=tiny-bert", "base_model.kind=masked",
                  "data.validation.pairs=[[base,botchan]]"]
    if option == "latents":  # the cache in the test's own folder, not under $ZETT_HOME
        extra.append(f"loss.teacher_cache={tmp_path / 'cache'}")
    summary = _train_one_step(tmp_path / "run", f"loss={option}", *extra)
    if option == "latents":
        assert (tmp_path / "cache" / "meta.json").is_file()
    if option == "alm":  # callbacks=default: the checkpoint callback and the tensorboard logger did their work
        assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
        assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert summary["hypernet"] is None  # export=false


# ------------------------------------------------------------------------------------------------ base_model

NEEDS_PATH = {"llama3-8b", "mistral-7b", "tinyllama-1.1b", "xlm-r"}
SHIPPED_MODELS = {"smollm2-135m", "gemma3-270m"}


@pytest.mark.parametrize("option", sorted(set(options("base_model")) - SHIPPED_MODELS))
def test_base_model_option_loads_and_runs_forward(option, base_dir, masked_dir):
    from zett.cli.errors import UserError
    from zett.training.base import load_base_from_config

    cfg = cfg_of(f"base_model={option}")
    node = OmegaConf.to_container(cfg.base_model)
    if option in NEEDS_PATH:
        with pytest.raises(UserError, match="base_model.path"):
            load_base_from_config(node)
        node["path"] = str(masked_dir if node["kind"] == "masked" else base_dir)
    model, tok = load_base_from_config(node)
    ids = torch.tensor([tok("def add(a, b): return a + b")["input_ids"]])
    logits = model(input_ids=ids).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits.float()).all()
    assert str(model.dtype).removeprefix("torch.") == {"auto": "float32"}.get(node["load_dtype"], node["load_dtype"])
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(SHIPPED_MODELS))
def test_shipped_base_model_option_loads_and_runs_forward(option):
    from zett.training.base import load_base_from_config

    model, tok = load_base_from_config(cfg_of(f"base_model={option}").base_model)
    ids = torch.tensor([tok("def add(a, b): return a + b")["input_ids"]])
    assert torch.isfinite(model(input_ids=ids).logits).all()


# ------------------------------------------------------------------------------------------------ hypernet

@pytest.mark.parametrize("option", options("hypernet"))
def test_hypernet_option_predicts_finite_embeddings(option, tiny, wordpiece_tokenizer):
    from zett.training.train import build_hypernet
    from zett.transfer import transfer

    base, base_tok = tiny
    cfg = cfg_of(f"hypernet={option}")
    hypernet = build_hypernet(cfg, base)
    assert hypernet.config.num_layers == cfg.hypernet.num_layers
    assert hypernet.config.max_pieces == cfg.hypernet.max_pieces
    for key in ("residual", "pooling", "hidden_size"):
        if cfg.hypernet[key] is not None:
            assert getattr(hypernet.config, key) == cfg.hypernet[key]
    model, tok = transfer(base, wordpiece_tokenizer, method="hypernet", hypernet=hypernet,
                          base_tokenizer=base_tok, progress=False)
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] >= len(wordpiece_tokenizer) and torch.isfinite(emb).all()


# ------------------------------------------------------------------------------------------------ tokenizer_sampler

@pytest.mark.parametrize("option", options("tokenizer_sampler"))
def test_tokenizer_sampler_option_samples_a_tokenizer(option, tiny):
    from zett.testing import SAMPLE_TEXTS

    _, tok = tiny
    cfg = cfg_of(f"tokenizer_sampler={option}")
    # vocabularies scaled to the tiny corpus; every other setting is the option's
    size = {"tokenizer_sampler.vocab_size": 500, "tokenizer_sampler.vocab_size_min": 450,
            "tokenizer_sampler.vocab_size_max": 600}
    for key, value in size.items():
        if OmegaConf.select(cfg, key) is not None:
            OmegaConf.update(cfg, key, value)
    factory = instantiate(cfg.tokenizer_sampler, _partial_=True)
    sampler = factory(tok, seed=1)
    assert sampler.reuse == cfg.tokenizer_sampler.reuse if hasattr(sampler, "reuse") else True
    sampler.warm_up(SAMPLE_TEXTS * 4)
    sampled = sampler.sample(SAMPLE_TEXTS)
    sampled = sampled[0] if isinstance(sampled, tuple) else sampled
    ids = sampled(SAMPLE_TEXTS[0])["input_ids"] if callable(sampled) else sampled.encode(SAMPLE_TEXTS[0]).ids
    assert len(ids) > 0


# ------------------------------------------------------------------------------------------------ data

# building the batches of the large mixes loads ~200 per-language domains (minutes): slow tier; data=en_code yields
# the batches of every loss run above
DATA_SLOW = {"en_code_ml", "multilingual"}


@pytest.mark.parametrize("option", [pytest.param(o, marks=pytest.mark.slow) if o in DATA_SLOW else o
                                    for o in options("data") if o != "en_code"])
def test_data_option_yields_a_batch(option, tiny, tmp_path):
    from zett.tokenizers import TokenizerSampler

    _, tok = tiny
    extra = []
    if option == "local":
        (tmp_path / "corpus.txt").write_text("A line of my own text for the data module.\n" * 400)
        extra = [f"data.sources.0.path={tmp_path / 'corpus.txt'}"]
    cfg = cfg_of(f"data={option}", *extra, "data.batch_size=2", "data.span_chars=256", "data.block_size=16",
                 "data.sampler_warmup_texts=4", "data.num_workers=0")
    import functools

    factory = functools.partial(TokenizerSampler, vocab_size=500, queue_size=2)
    dm = instantiate(cfg.data, base_tokenizer=tok, sampler_factory=factory, objective="clm", seed=0, max_pieces=7,
                     alignment_modes=[], n_base_rows=len(tok), _recursive_=False)
    assert dm.val_names  # every option validates on held-out text
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].shape[1] <= 16
    assert batch["surface_ids"].shape[1] <= 7


# ------------------------------------------------------------------------------------------------ optimizer, scheduler

@pytest.mark.parametrize("group", ["optimizer", "scheduler"])
def test_optimizer_and_scheduler_options_step(group, tiny):
    from zett.models import ZettHypernet
    from zett.training.optim import build_optimizer
    from zett.training.schedule import JoinedWarmupCosine, build_scheduler

    base, _ = tiny
    for option in options(group):
        cfg = cfg_of(f"{group}={option}", "trainer.max_steps=100")
        hn = ZettHypernet.from_base_model(base, hidden_size=16, num_layers=1, num_heads=2)
        opt = build_optimizer(hn, **OmegaConf.to_container(cfg.optimizer))
        sched_cfg = OmegaConf.to_container(cfg.scheduler)
        sched = build_scheduler(opt, **sched_cfg, total_steps=100)
        before = {n: p.detach().clone() for n, p in hn.named_parameters() if p.requires_grad}
        sum(p.float().pow(2).sum() for p in hn.parameters() if p.requires_grad).backward()
        opt.step()
        sched.step()
        expected = JoinedWarmupCosine(sched_cfg["learning_rates"], sched_cfg["warmup_steps"], 100, sched_cfg["alpha"])
        assert opt.param_groups[0]["lr"] == pytest.approx(expected(1))
        assert opt.param_groups[0]["betas"] == tuple(cfg.optimizer.betas)
        assert any(not torch.equal(before[n], p) for n, p in hn.named_parameters() if n in before)


# ------------------------------------------------------------------------------------------------ trainer

@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_option_instantiates(option, tmp_path):
    import pytorch_lightning as pl

    cfg = cfg_of(f"trainer={option}")
    node = cfg.trainer
    if isinstance(node.strategy, str):
        assert node.strategy == "auto"
    else:  # DDP / FSDP: the strategy object is built without any hardware
        strategy = instantiate(node.strategy)
        assert type(strategy).__name__ == node.strategy._target_.rsplit(".", 1)[1]
    if node.accelerator == "gpu" and not torch.cuda.is_available():
        with pytest.raises(Exception, match="No supported gpu backend"):
            instantiate(node, logger=False, default_root_dir=str(tmp_path))
        return
    trainer = instantiate(node, logger=False, default_root_dir=str(tmp_path))
    assert isinstance(trainer, pl.Trainer) and trainer.max_steps == node.max_steps
    assert trainer.num_devices == node.devices


# ------------------------------------------------------------------------------------------------ logger, callbacks

@pytest.mark.parametrize("option", options("logger"))
def test_logger_option_logs_a_metric(option, tmp_path):
    cfg = cfg_of(f"logger={option}", f"run_dir={tmp_path}")
    if option == "wandb":
        pytest.importorskip("wandb", reason="logger=wandb needs the optional wandb package")
    loggers = [instantiate(v) for v in cfg.logger.values()]
    assert len(loggers) == (0 if option == "none" else 1)
    for lg in loggers:
        lg.log_metrics({"train/loss": 1.5}, step=0)
        lg.finalize("success")
    if option == "csv":
        assert "train/loss" in next(tmp_path.rglob("metrics.csv")).read_text()
    if option == "tensorboard":
        assert list(tmp_path.rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("option", options("callbacks"))
def test_callbacks_option_instantiates(option, tmp_path):
    from zett.training.checkpoint import ZettCheckpoint

    cfg = cfg_of(f"callbacks={option}", f"run_dir={tmp_path}")
    callbacks = {k: instantiate(v) for k, v in cfg.callbacks.items() if v is not None}
    assert isinstance(callbacks["checkpoint"], ZettCheckpoint)
    assert Path(callbacks["checkpoint"].dirpath) == tmp_path / "checkpoints"


# ------------------------------------------------------------------------------------------------ experiment

@pytest.mark.parametrize("option", options("experiment"))
def test_experiment_option_builds_its_pieces(option, tmp_path, tiny):
    """Each experiment passes the checks and its sampler, loss terms, data module and trainer strategy are built;
    its hypernetwork's shape is checked against the config (the 7-8B presets' hypernetworks are not allocated)."""
    from zett.training.rundir import check_train_config

    cfg = cfg_of(f"experiment={option}")
    if OmegaConf.is_missing(cfg.base_model, "path"):
        (tmp_path / "config.json").write_text("{}")
        cfg.base_model.path = str(tmp_path)
    check_train_config(cfg)
    _, tok = tiny
    factory = instantiate(cfg.tokenizer_sampler, _partial_=True)
    assert factory.keywords["vocab_size"] == cfg.tokenizer_sampler.vocab_size
    losses = {k: instantiate(v) for k, v in cfg.loss.terms.items() if v is not None}
    assert losses and all(t.weight >= 0 for t in losses.values())
    dm = instantiate(cfg.data, base_tokenizer=tok, sampler_factory=factory, objective=cfg.loss.objective, seed=0,
                     max_pieces=cfg.hypernet.max_pieces, alignment_modes=[], n_base_rows=len(tok), _recursive_=False)
    assert dm.batch_size == cfg.data.batch_size and dm.val_names
    if not isinstance(cfg.trainer.strategy, str):
        instantiate(cfg.trainer.strategy)


@pytest.mark.slow
@pytest.mark.parametrize("option", ["smollm2-cpu", "demo"])
def test_real_model_experiment_trains_one_step(option, tmp_path):
    from zett.training import train

    summary = train(cfg_of(f"experiment={option}", "trainer.max_steps=1", "validate_at_start=false", "export=false",
                           "trainer.limit_val_batches=0", f"run_dir={tmp_path}"))
    assert summary["global_step"] == 1 and math.isfinite(summary["final_train_loss"])
