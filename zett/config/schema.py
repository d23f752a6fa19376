"""Typed schemas of the three commands' configurations: every setting, its type and its default, in one place.

``configs/train.yaml``, ``configs/transfer.yaml`` and ``configs/eval.yaml`` start their defaults list with the
schema stored in Hydra's ConfigStore (:func:`zett.config.register`), so composition begins from these dataclasses
and every YAML file (the primary configs, each group option, each ``experiment``) only *overrides* them:

- a key that no schema declares fails at composition (in a YAML file or on the command line);
- a value of the wrong type (``max_pieces=seven``, ``overwrite=maybe``) fails at composition, naming the key;
- ranges, enums, paths and combinations are checked right after composition, before any model is loaded
  (``zett.cli.validate``, ``zett.cli.eval_checks``, ``zett.training.rundir.check_train_config``).

Nodes that configure another class through ``_target_`` (logger, callbacks, loss terms, the trainer's strategy)
are open dictionaries: the target's own signature declares their keys (``tests/test_config_schema.py`` checks
every YAML file against it). Settings that accept one name or a list (``targets``, ``corpora``, ``methods``, ...)
are typed ``Any``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

# ------------------------------------------------------------------------------------------------ base_model


@dataclass
class TinyBaseConfig:
    """``base_model=tiny-random``: zett.models.tiny.tiny_random_base arguments."""

    vocab_size: int = 300
    hidden_size: int = 32
    layers: int = 2
    tie: bool = True
    corpus: str | None = None  # corpus asset whose train split trains the tokenizer (null: built-in samples)


@dataclass
class BaseModelConfig:
    """The frozen base model (``configs/base_model/*.yaml``), shared by all three commands."""

    name: str = MISSING  # a zett model asset, tiny-random, a local directory or (online) a hub id
    # a local Hugging Face model directory, which takes precedence over name; each preset says null or ??? (must be
    # given: not shipped with zett), so the schema leaves it unset
    path: str | None = MISSING
    kind: str = "causal"  # causal | masked
    load_dtype: str = "float32"  # float32 | bfloat16 | auto: dtype the weights are loaded in
    device_dtype: str = "auto"  # training: dtype of the frozen base on the device (auto = bf16 on GPU, fp32 on CPU)
    activation_checkpointing: bool = False  # training: recompute the base's layers in backward (saves GPU memory)
    tiny: TinyBaseConfig | None = None  # only for name=tiny-random


# ------------------------------------------------------------------------------------------------ zett-train groups


@dataclass
class HypernetConfig:
    """``ZettHypernet.from_base_model`` overrides; null = derived from the base model (hidden = base hidden size,
    intermediate = 2 x hidden, heads = hidden / 64)."""

    hidden_size: int | None = None
    intermediate_size: int | None = None
    num_layers: int = 3
    num_heads: int | None = None
    max_pieces: int = 7  # surface-form length (pieces per target token)
    residual: bool = True  # residual: predicts a correction of the FVT embeddings (starts as the FVT baseline)
    pooling: str | None = None  # null = the ZettHypernetConfig default; hypernet=original pools the first piece
    predict_bias: bool | None = None  # null = when the base's LM head has a bias


@dataclass
class TokenizerSamplerConfig:
    """``zett.tokenizers.TokenizerSampler`` arguments (the original's values, zett-method.md §2.2-2.3); the base
    tokenizer and a per-(rank, worker, domain) seed are passed in by the data module."""

    _target_: str = "zett.tokenizers.TokenizerSampler"
    vocab_size: int = 32768
    vocab_size_std: float = 0.0
    vocab_size_min: int | None = None
    vocab_size_max: int | None = None
    queue_size: int = 16
    stride: int = 4
    max_piece_len: int = 15
    noise_mean: float = 1.0e-05
    noise_std: float = 4.0
    add_prefix_space: bool = False
    reuse: int = 1  # a sampled tokenizer serves this many consecutive batches (1: a fresh one per batch)


# keys of one entry of data.sources / data.validation.texts (zett.training.data.load_sources)
SOURCE_KEYS = ("corpus", "path", "hf", "split", "name", "text_column", "weight", "size", "languages",
               "by_language", "streaming")


@dataclass
class ValidationConfig:
    """Held-out validation: every tokenizer on every text (or the listed ``pairs``)."""

    tokenizers: list[str] = field(default_factory=lambda: ["gpt2", "starcoder"])  # 'base' = the base tokenizer
    texts: dict[str, Any] = field(default_factory=dict)  # name -> a source (keys: SOURCE_KEYS)
    pairs: list[list[str]] | None = None  # null = every tokenizer on every text; or [[tokenizer, text], ...]
    n_sequences: int = 32
    span_chars: int | None = None  # null = data.span_chars
    block_size: int | None = None  # null = data.block_size
    batch_size: int | None = None  # null = data.batch_size


@dataclass
class DataConfig:
    """``zett.training.datamodule.ZettDataModule`` arguments (``configs/data/*.yaml``)."""

    _target_: str = "zett.training.datamodule.ZettDataModule"
    sources: list[Any] = MISSING  # one dict per source (keys: SOURCE_KEYS)
    alpha: float = 0.0  # p(domain) ∝ weight · size^alpha
    monolingual: bool = True  # one domain per batch, each with its own sampler (as the original)
    batch_size: int = 8
    span_chars: int = 2048  # characters per text span
    block_size: int = 128  # tokens per sequence after encoding with the sampled tokenizer
    n_vocab_subsample: int | None = None  # predict only the batch's tokens + a uniform sample, this many rows
    bucket: bool = True  # run the hypernet per piece-count bucket instead of padding to max_pieces
    # > 0: that many buckets of one row count (static shapes for torch.compile / CUDA graphs); 0 = one per piece count
    bucket_chunks: int = 0
    separator: str = "\n\n"
    num_workers: int | None = 0  # null = cores - 1; 0 = batches built in the training process
    val_num_workers: int | None = None  # null = min(num_workers, 2)
    pin_memory: bool | None = None  # null = pinned when CUDA is available
    sampler_warmup_texts: int = 256  # spans pushed into a new sampler's queue before its first sample
    state_every: int = 50  # with workers: report sampler state every n batches (for checkpoints)
    mlm_probability: float = 0.15
    # > 0: train on this many spans drawn once from the mix, epoch after epoch (what a teacher cache holds);
    # null = an endless stream of fresh spans
    fixed_spans: int | None = None
    validation: ValidationConfig = field(default_factory=ValidationConfig)


@dataclass
class LossConfig:
    """``configs/loss/*.yaml``: the objective and the weighted loss terms (each a ``_target_`` node)."""

    objective: str = "clm"  # clm | mlm (must fit base_model.kind)
    identity_steps: int = 0  # identity warm-up steps (§3.3)
    balance: str = "fixed"  # fixed: Σ weight · term; gradmag: equal gradient norm per term
    terms: dict[str, Any] = field(default_factory=dict)
    # loss=latents: states after this many base layers (the cut model); null = the final states (full model)
    layer: int | None = None
    # the teacher cache of a fixed span set (data.fixed_spans): a directory, or null = one per key under
    # $ZETT_HOME/teacher-cache (zett.training.teacher_cache)
    teacher_cache: str | None = None


@dataclass
class OptimizerConfig:
    """AdamW (zett.training.optim.build_optimizer); the learning rate comes from the scheduler."""

    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1.0e-08


@dataclass
class SchedulerConfig:
    """zett.training.schedule.build_scheduler: linear warm-up per phase, then cosine to alpha x the last rate
    (total_steps = trainer.max_steps)."""

    learning_rates: list[float] = field(default_factory=lambda: [6.0e-05])
    warmup_steps: list[int] = field(default_factory=lambda: [10000])
    alpha: float = 0.1


@dataclass
class TrainerConfig:
    """``pytorch_lightning.Trainer`` arguments zett sets; any other Trainer argument can be added with
    ``+trainer.<name>=<value>``."""

    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"  # or a _target_ node (DDPStrategy, FSDPStrategy)
    precision: Any = "32-true"
    max_steps: int = 200000
    max_time: Any = None  # e.g. "00:08:00:00" (DD:HH:MM:SS): stop cleanly, still export
    val_check_interval: Any = 10000  # steps (the training stream is endless)
    check_val_every_n_epoch: int | None = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int = 0
    gradient_clip_val: float | None = 0.1
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1  # batches per optimizer step (tokens per update = this x batch x block)
    log_every_n_steps: int = 10
    enable_model_summary: bool = False
    enable_progress_bar: bool = True
    detect_anomaly: bool = False


@dataclass
class TrainConfig:
    """``zett-train`` (configs/train.yaml)."""

    base_model: BaseModelConfig = field(default_factory=BaseModelConfig)
    hypernet: HypernetConfig = field(default_factory=HypernetConfig)
    tokenizer_sampler: TokenizerSamplerConfig = field(default_factory=TokenizerSamplerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)  # name -> a Lightning logger _target_ node
    callbacks: dict[str, Any] = field(default_factory=dict)  # name -> a Lightning callback _target_ node (or null)

    seed: int = 0
    run_dir: str | None = None  # checkpoints, logs, hypernet/, summary.json; null = Hydra's run dir
    ckpt_path: str | None = None  # resume: <run>/checkpoints/last.ckpt
    overwrite: bool = False  # a run directory holding a previous run is refused unless true (deletes it first)
    init_hypernet: str | None = None  # start from an exported hypernetwork directory, or 'shipped'
    validate_at_start: bool = True  # validate before the first step (step 0 of a residual hypernet = FVT)
    export: bool = True  # save_pretrained the hypernetwork into <run_dir>/hypernet at the end
    ce_max_chunk_elements: int = 16777216  # largest logits block of the chunked cross-entropy (rows x vocabulary)
    # training-step options (absent/null = the module's defaults)
    ce_matmul_dtype: str | None = None  # auto | float32 | bfloat16
    allow_tf32: bool | None = None
    nonfinite_check_every: int | None = None  # steps; null = trainer.log_every_n_steps
    compile_hypernet: Any = None  # false | true | a torch.compile backend name


# ------------------------------------------------------------------------------------------------ zett-transfer


@dataclass
class OmpConfig:
    """Method omp (zett.transfer.omp)."""

    k: int = 64  # anchors per token (the OMP paper's default)
    batch_size: int = 256  # target tokens solved at once (bounds memory)
    # anchors preselected per token by correlation with its donor row (null = exact OMP over all anchors: hours on a
    # CPU for the Gemma-3 vocabulary; 256 measured close to exact, docs/evaluation.md)
    candidates: int | None = 256


@dataclass
class TransferFocusConfig:
    """Method focus: auxiliary embeddings trained on text tokenized by the target."""

    corpus: str | None = "botchan"  # corpus asset name or local .txt file
    split: str = "train"
    max_bytes: int | None = 300000
    options: dict[str, Any] = field(default_factory=dict)  # zett.transfer.focus.focus_transfer keyword arguments


@dataclass
class TransferConfig:
    """``zett-transfer`` (configs/transfer.yaml)."""

    base_model: BaseModelConfig = field(default_factory=BaseModelConfig)
    base_tokenizer: str | None = None  # default: the base model's own tokenizer
    target_tokenizer: str = MISSING  # asset name or path (HF dir, tokenizer.json, .model, .tiktoken, .gguf)
    method: str = "fvt"  # fvt | hypernet | lexical | random | focus | omp
    hypernet_path: str | None = None  # method=hypernet: a zett-train hypernet/ directory; null = the shipped one
    finetuned_model: str | None = None  # a model fine-tuned from base_model (same vocabulary): gets the predictions
    output_dir: str = MISSING  # must be new or empty
    overwrite: bool = False  # true: replace a non-empty output_dir whole (never merged)
    chunk_size: int = 8192  # target tokens predicted at once (bounds peak memory)
    max_pieces: int | None = None  # surface-form length; null = the hypernetwork's (7 for other methods)
    keep_chat_template: bool = True  # keep the base (or fine-tuned) model's chat template
    dtype: str | None = None  # null (base_model.load_dtype) | float32 | bfloat16 | float16
    seed: int = 0  # lexical / random / focus sampling
    progress: bool = True
    donor_model: str | None = None  # method=omp: a model that already uses the target tokenizer
    omp: OmpConfig = field(default_factory=OmpConfig)
    focus: TransferFocusConfig = field(default_factory=TransferFocusConfig)


# ------------------------------------------------------------------------------------------------ zett-eval


@dataclass
class EvalFocusConfig:
    """Method focus in zett-eval: auxiliary token embeddings trained on text the scores never see."""

    corpora: Any = None  # null = the evaluated corpora's train split (local files: a held-out part of documents)
    max_bytes: int | None = 300000  # training text, shared equally between corpora
    options: dict[str, Any] = field(default_factory=lambda: {"dim": 64, "epochs": 5, "window": 5, "min_count": 3})


@dataclass
class EvalConfig:
    """``zett-eval`` (configs/eval.yaml)."""

    base_model: BaseModelConfig = field(default_factory=BaseModelConfig)
    base_tokenizer: str | None = None
    targets: Any = field(default_factory=lambda: ["gpt2"])  # tokenizer asset names or paths
    corpora: Any = field(default_factory=lambda: ["botchan"])  # corpus assets or local .txt/.jsonl files or dirs
    languages: Any = None  # multilingual corpora only, e.g. [en,de,fr,ru]
    methods: Any = field(default_factory=lambda: ["original", "fvt"])
    # method hypernet: a hypernet/ directory, 'untrained' (= FVT) or null (the hypernetwork shipped for the base;
    # method 'shipped' always uses that one)
    hypernet_path: str | None = None
    hypernet_overrides: dict[str, Any] = field(default_factory=dict)  # ZettHypernetConfig fields (untrained)
    # BIG-bench JSON multiple-choice tasks scored through lm-eval (acc, acc_norm, ...), e.g. [social_iqa,winowhy];
    # task/subtask picks one subtask; needs the bigbench asset
    tasks: Any = field(default_factory=list)
    task_limit: int | None = None  # first N examples of each task (null = all)
    task_root: str | None = None  # a local folder of BIG-bench task folders instead of the bigbench asset
    split: str = "test"
    max_bytes: int | None = 20000  # UTF-8 bytes per corpus (and per language); null = the whole split
    doc_bytes: int = 4096  # multilingual corpora: short strings joined into documents of this size
    parallel: bool = True  # multilingual corpora: only strings translated into every listed language
    max_length: int = 512  # tokens per scoring window
    stride: int | None = None  # null = max_length / 2
    batch_size: int = 8
    prefix: str = "bos"  # context token before each document: bos (else eos) | eos | none
    donor_model: str | None = None  # method omp: a model already using the target tokenizer(s), e.g. gemma3-270m
    omp: OmpConfig = field(default_factory=OmpConfig)
    focus: EvalFocusConfig = field(default_factory=EvalFocusConfig)
    bootstrap: int = 1000  # paired bootstrap resamples for every delta's interval (0 = none)
    device: str = "auto"  # auto | cpu | cuda (the load dtype is base_model.load_dtype)
    seed: int = 0
    plot: bool = True
    progress: bool = True
    output_dir: str | None = "out/eval"  # must be new or empty
    overwrite: bool = False


# name in Hydra's ConfigStore -> schema (configs/<command>.yaml lists the name first in its defaults)
SCHEMAS = {"zett_train_schema": TrainConfig, "zett_transfer_schema": TransferConfig,
           "zett_eval_schema": EvalConfig}
