"""``ZettDataModule``: training batches with sampled tokenizers, validation with fixed held-out tokenizers.

    dm = ZettDataModule(sources=[{"corpus": "botchan"}, {"corpus": "stdlib-code"}],
                        validation={"tokenizers": ["gpt2"], "texts": {"botchan": {"corpus": "botchan",
                                    "split": "validation"}}},
                        base_tokenizer=tok, sampler_factory=partial(TokenizerSampler, vocab_size=4096))

Validation reports one metric set per (tokenizer, text) pair, named ``<tokenizer>/<text>``. The tokenizer ``base``
means the base model's own tokenizer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from zett.training import sampler_state
from zett.training.collator import FixedTokenizerCollator, SampledTokenizerCollator
from zett.training.data import (
    DataConfigError,
    FixedSpanStream,
    HeldOutTexts,
    TextBatchStream,
    _DocStream,
    cut_span,
    draw_fixed_spans,
    load_sources,
    mixing_probabilities,
)


def default_workers() -> int:
    """DataLoader workers when ``data.num_workers`` is null: the cores this process may run on, minus one."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, cores - 1)


def _plain(x):
    """OmegaConf containers -> plain Python (DataModule args may come straight from Hydra)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, DictConfig | ListConfig):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


class ZettDataModule(pl.LightningDataModule):
    def __init__(self, sources: list[dict], validation: dict | None = None, batch_size: int = 8,
                 span_chars: int = 2048, block_size: int = 128, max_pieces: int = 7,
                 n_vocab_subsample: int | None = None, bucket: bool = True, alpha: float = 0.0,
                 separator: str = "\n\n", monolingual: bool = True, num_workers: int | None = 0,
                 sampler_warmup_texts: int = 256, state_every: int = 50, seed: int = 0, base_tokenizer=None,
                 sampler_factory: Callable | None = None, objective: str = "clm", mlm_probability: float = 0.15,
                 alignment_modes: list[str] | None = None, n_base_rows: int | None = None,
                 pin_memory: bool | None = None, val_num_workers: int | None = None, bucket_chunks: int = 0,
                 fixed_spans: int | None = None):
        super().__init__()
        self.source_specs = list(_plain(sources) or [])
        if not self.source_specs:
            raise DataConfigError("data.sources is empty; give at least one corpus/path/hf source")
        self.validation = dict(_plain(validation) or {})
        self.batch_size, self.span_chars, self.block_size = int(batch_size), int(span_chars), int(block_size)
        self.max_pieces, self.n_vocab_subsample, self.bucket = int(max_pieces), n_vocab_subsample, bool(bucket)
        self.alpha, self.separator, self.monolingual = float(alpha), separator, bool(monolingual)
        # buckets of a fixed row count (static hypernetwork shapes, zett.training.vocab); 0 = one per piece count
        self.bucket_chunks = int(bucket_chunks or 0)
        if self.bucket_chunks < 0:
            raise DataConfigError(f"data.bucket_chunks must be >= 0 (0 = one bucket per piece count), got "
                                  f"{bucket_chunks}")
        # num_workers null: every core this process may use but one (the training loop's)
        self.num_workers = default_workers() if num_workers is None else int(num_workers)
        if self.num_workers < 0:
            raise DataConfigError(f"data.num_workers must be >= 0 (or null for cores - 1), got {num_workers}")
        # validation loaders: as many workers as training, at most 2 per validation set (null = that)
        self.val_num_workers = min(self.num_workers, 2) if val_num_workers is None else int(val_num_workers)
        # pinned host memory makes the host-to-GPU copy of a batch asynchronous; null = when CUDA is present
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.sampler_warmup_texts = int(sampler_warmup_texts)
        self.state_every, self.seed = int(state_every), int(seed)
        self.base_tokenizer, self.sampler_factory = base_tokenizer, sampler_factory
        self.objective, self.mlm_probability = objective, float(mlm_probability)
        # Chunk granularities the distillation terms need (train() collects them from loss.terms); none = no
        # teacher encoding / alignment in the collator.
        self.alignment_modes = tuple(alignment_modes or ())
        # The base model's embedding rows (may exceed len(base_tokenizer)): byte-fallback ids start there.
        self.n_base_rows = n_base_rows
        # > 0: train on this many spans drawn once (epochs over them; a teacher cache can hold their states)
        self.fixed_spans = int(fixed_spans or 0)
        self._fixed_texts: list[str] | None = None
        self.sources = None
        self.collator: SampledTokenizerCollator | None = None
        self._state_dir: str | None = None  # where this process's DataLoader workers write sampler states
        self._val: list[tuple[str, FixedTokenizerCollator, HeldOutTexts]] | None = None
        self._sampler_states: dict[str, dict] = {}

    # ------------------------------------------------------------------ names
    @property
    def val_pairs(self) -> list[tuple[str, str]]:
        v = self.validation
        if not v or not v.get("texts") or not v.get("tokenizers"):
            return []
        if v.get("pairs"):
            return [tuple(p) for p in v["pairs"]]
        return list(itertools.product(v["tokenizers"], v["texts"]))

    @property
    def val_names(self) -> list[str]:
        return [f"{tok}/{text}" for tok, text in self.val_pairs]

    def _rank(self) -> tuple[int, int]:
        t = self._trainer if hasattr(self, "_trainer") else None
        if t is None:
            t = getattr(self, "trainer", None)
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.base_tokenizer is None:
            raise ValueError("ZettDataModule needs base_tokenizer (the base model's tokenizer)")
        self._load_sources()
        if self._val is None:
            self._val = self._build_validation()

    def _load_sources(self) -> None:
        if self.sources is None:
            self.sources = [s for spec in self.source_specs for s in load_sources(spec, "train")]
            self.probabilities = mixing_probabilities(self.sources, self.alpha)

    def _warmup_texts(self) -> dict[str, list[str]]:
        if self.fixed_spans:  # one mixed domain: its sampler's queue starts with the span set's own text
            return {"mixed": self.fixed_span_texts()[: self.sampler_warmup_texts]}
        rank, _ = self._rank()
        rng = np.random.default_rng([self.seed, rank, 7919])
        out = {}
        for s in self.sources:
            docs = _DocStream(s, np.random.default_rng(rng.integers(2**63)), 0, 1)
            out[s.name] = [cut_span(docs, self.span_chars, rng, self.separator)
                           for _ in range(self.sampler_warmup_texts)]
        if not self.monolingual:
            out["mixed"] = [t for texts in out.values() for t in texts][: self.sampler_warmup_texts]
        return out

    def _build_validation(self):
        from zett.tokenizers import load_tokenizer

        v = self.validation
        out, tokenizers, texts = [], {}, {}
        for tok_name, text_name in self.val_pairs:
            if tok_name not in tokenizers:
                tok = self.base_tokenizer if tok_name == "base" else load_tokenizer(tok_name)
                tokenizers[tok_name] = FixedTokenizerCollator(
                    tok, self.base_tokenizer, v.get("block_size") or self.block_size, self.max_pieces, self.bucket,
                    self.objective, self.mlm_probability, self.seed, n_base_rows=self.n_base_rows,
                    bucket_chunks=self.bucket_chunks)
            if text_name not in texts:
                spec = v["texts"][text_name]
                sources = load_sources({"split": "validation", **spec}, "validation")
                if len(sources) != 1:
                    raise DataConfigError(f"validation text {text_name!r} must be one source (no by_language)")
                texts[text_name] = HeldOutTexts.from_source(
                    text_name, sources[0], int(v.get("n_sequences", 32)),
                    int(v.get("span_chars") or self.span_chars), self.separator)
            out.append((f"{tok_name}/{text_name}", tokenizers[tok_name], texts[text_name]))
        return out

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        rank, world = self._rank()
        step = int(self.trainer.global_step) if getattr(self, "_trainer", None) is not None else 0
        if self.collator is None or self.collator.rank != rank:
            self.collator = SampledTokenizerCollator(
                self.base_tokenizer, self.sampler_factory, self.block_size, self.max_pieces,
                self.n_vocab_subsample, self.bucket, self.objective, self.mlm_probability, self.seed, rank,
                self._warmup_texts(), self.state_every if self.num_workers > 0 else 0, self._sampler_states,
                teacher=self._teacher(), n_base_rows=self.n_base_rows, state_dir=self._sampler_state_dir(),
                bucket_chunks=self.bucket_chunks)
        if self.fixed_spans:  # a resumed run continues the epoch order at the batch where it stopped
            batches = step * int(getattr(self.trainer, "accumulate_grad_batches", 1) or 1) if step else 0
            stream = FixedSpanStream(self.fixed_span_texts(), self.batch_size, self.seed, rank, world, offset=batches)
        else:  # a resumed run continues on a fresh (but deterministic) text stream: offset = the resumed step
            stream = TextBatchStream(self.sources, self.probabilities, self.batch_size, self.span_chars, self.seed,
                                     rank, world, self.separator, self.monolingual, offset=step)
        return torch.utils.data.DataLoader(stream, batch_size=None, collate_fn=self.collator,
                                           num_workers=self.num_workers, pin_memory=self.pin_memory,
                                           persistent_workers=self.num_workers > 0)

    def fixed_span_texts(self) -> list[str]:
        """The ``fixed_spans`` training spans (drawn once from the training mix; the same on every rank)."""
        if not self.fixed_spans:
            raise DataConfigError("this run streams its training text (data.fixed_spans is null): there is no fixed "
                                  "span set; set data.fixed_spans to a number of spans")
        if self._fixed_texts is None:
            self._load_sources()
            self._fixed_texts = draw_fixed_spans(self.sources, self.probabilities, self.fixed_spans,
                                                 self.span_chars, self.seed, self.separator)
        return self._fixed_texts

    def _teacher(self):
        from zett.training.collator import TeacherAligner

        if not self.alignment_modes:
            return None
        return TeacherAligner(self.base_tokenizer, self.alignment_modes, self.block_size)

    def val_dataloader(self):
        bs = int(self.validation.get("batch_size") or self.batch_size)
        workers = self.val_num_workers
        return [torch.utils.data.DataLoader(texts, batch_size=bs, shuffle=False, collate_fn=collator,
                                            num_workers=workers, pin_memory=self.pin_memory,
                                            persistent_workers=workers > 0)
                for _, collator, texts in self._val or []]

    # ------------------------------------------------------------------ sampler state in checkpoints
    def _sampler_state_dir(self) -> str:
        """A private directory of this process: the side channel from its DataLoader workers' samplers (each
        writes one file per (rank, worker, domain), replaced in place, so its size never grows with steps)."""
        if self._state_dir is None:
            import tempfile

            self._state_dir = tempfile.mkdtemp(prefix="zett-sampler-state-")
        return self._state_dir

    def teardown(self, stage: str | None = None) -> None:
        if self._state_dir is not None and stage in (None, "fit"):
            import shutil

            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def record_sampler_states(self, states: dict[str, dict]) -> None:
        """States handed in directly (kept for the next checkpoint; workers use the state directory)."""
        self._sampler_states.update(states)

    def state_dict(self) -> dict:
        from zett.training.collator import read_sampler_states

        states = dict(self._sampler_states)
        if self._state_dir is not None:
            states.update(read_sampler_states(self._state_dir))  # written by this rank's workers
        if self.collator is not None:
            states.update(self.collator.sampler_states())  # samplers of the main process (num_workers == 0)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, states)
            states = {k: v for d in gathered for k, v in (d or {}).items()}
        # one substring table for every sampler (zett.training.sampler_state): workers x ranks of a domain
        # count mostly the same substrings
        return {"sampler_states": sampler_state.pack(states)}

    def load_state_dict(self, state_dict: dict) -> None:
        self._sampler_states = sampler_state.unpack(state_dict.get("sampler_states", {}))
        self.collator = None  # rebuilt with the restored states by train_dataloader
