"""Collators: texts -> tensors for one step, including the vocabulary the hypernetwork must embed.

``SampledTokenizerCollator`` (training) samples a fresh tokenizer per batch from the recent text queue
(``TokenizerSampler.sample``), encodes the batch with it, decomposes every token into base-tokenizer pieces
(``surface_forms``) and selects / orders the rows to predict (``zett.training.vocab``). It runs inside DataLoader
workers; each (rank, worker, domain) gets its own sampler, seeded from (seed, rank, worker, domain).

``FixedTokenizerCollator`` (validation) does the same for one fixed tokenizer, whose surface forms are computed once.

Batch keys (S = selected vocabulary rows, L = surface length after trimming):
    input_ids [B, T] (rows of the selection), attention_mask [B, T], labels [B, T] (-100 = ignore; CLM labels are
    *not* shifted), surface_ids [S, L], surface_mask [S, L], special [S] (base id to copy, else -1),
    buckets [n, 3] (start, end, pieces), vocab_size (int: size of the sampled vocabulary), domain (str),
    n_bytes (validation: UTF-8 bytes of the predicted tokens), sampler_state (sometimes; see ``state_every``).

With a ``TeacherAligner`` (distillation losses, ``zett.training.distill``) a batch also holds the teacher's view of
the same texts: teacher_input_ids / teacher_attention_mask [B, T_t] (base-tokenizer ids), student_space [S] (the
selected row starts with whitespace or is special), alignment {mode: {"teacher": [B, T_t, C] bool, "student":
[B, T, C] bool, "mask": [B, C] bool}} and alignment_bytes [2] (bytes aligned, bytes lost to a text mismatch).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch

from zett.training.alignment import MODES, TokenTable, align_batch, token_table
from zett.training.chunked_ce import IGNORE_INDEX
from zett.training.vocab import select_vocab


def _worker_id() -> int:
    info = torch.utils.data.get_worker_info()
    return info.id if info is not None else 0


def encode_texts(tokenizer, texts: list[str], block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode with special tokens, truncate to ``block_size`` tokens, right-pad. -> input_ids, attention_mask [B, T]."""
    if tokenizer.pad_token_id is None:
        # Any id works for padding: padded positions are masked out of attention and loss.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.convert_ids_to_tokens(0)
    enc = tokenizer(list(texts), max_length=block_size, truncation=True, padding=True, add_special_tokens=True,
                    return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def mask_for_mlm(input_ids: torch.Tensor, attention_mask: torch.Tensor, is_special: torch.Tensor, mask_id: int,
                 vocab_size: int, probability: float, generator: torch.Generator | None = None):
    """BERT masking: ``probability`` of the non-special positions are predicted; of those 80% become the mask token,
    10% a random token, 10% stay. -> (input_ids, labels) [B, T]."""
    labels = input_ids.clone()
    p = torch.full(input_ids.shape, float(probability))
    p[(attention_mask == 0) | is_special[input_ids]] = 0.0
    chosen = torch.bernoulli(p, generator=generator).bool()
    labels[~chosen] = IGNORE_INDEX
    ids = input_ids.clone()
    to_mask = torch.bernoulli(torch.full(ids.shape, 0.8), generator=generator).bool() & chosen
    ids[to_mask] = mask_id
    to_random = torch.bernoulli(torch.full(ids.shape, 0.5), generator=generator).bool() & chosen & ~to_mask
    ids[to_random] = torch.randint(vocab_size, ids.shape, generator=generator)[to_random]
    return ids, labels


class TeacherAligner:
    """Encodes a batch's texts with the base tokenizer (the teacher's input) and aligns it with the student's
    encoding, on the CPU inside the collator (``zett.training.alignment``).

    modes: the chunk granularities the loss terms ask for; block_size: teacher tokens per text (the two sides
    cover different byte lengths; only chunks inside both count).
    """

    def __init__(self, base_tokenizer, modes=("unconstrained",), block_size: int = 128):
        bad = set(modes) - set(MODES)
        if bad or not modes:
            raise ValueError(f"alignment modes {sorted(bad) or list(modes)} are not supported; use {MODES}")
        self.tokenizer, self.modes, self.block_size = base_tokenizer, tuple(modes), int(block_size)
        self.table = token_table(base_tokenizer)
        self._student: tuple[object, TokenTable] | None = None  # (tokenizer, table) of the last student

    def student_table(self, tokenizer) -> TokenTable:
        # A fixed (validation/test) tokenizer is seen batch after batch; a sampled one once.
        if self._student is None or self._student[0] is not tokenizer:
            self._student = (tokenizer, token_table(tokenizer))
        return self._student[1]

    def __call__(self, texts, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 vocab_ids: torch.Tensor) -> dict:
        """input_ids / attention_mask [B, T]: the student's ids in its own vocabulary; vocab_ids [S]: the
        vocabulary id of each selected row."""
        t_ids, t_mask = encode_texts(self.tokenizer, texts, self.block_size)
        s_table = self.student_table(tokenizer)
        space = torch.from_numpy(s_table.starts_space | s_table.special)
        out = {"teacher_input_ids": t_ids, "teacher_attention_mask": t_mask, "student_space": space[vocab_ids],
               "alignment": {}}
        stats = torch.zeros(2, dtype=torch.long)
        for mode in self.modes:
            al = align_batch(t_ids, t_mask, input_ids, attention_mask, self.table, s_table, mode)
            a_t, a_s = al.matrices()
            out["alignment"][mode] = {"teacher": a_t, "student": a_s, "mask": al.chunk_mask}
            stats = torch.tensor([al.stats["aligned_bytes"], al.stats["mismatch_bytes"]])
        out["alignment_bytes"] = stats
        return out


class _BatchBuilder:
    """Shared tail of both collators: labels, selection, remapping, surface-form trimming."""

    def __init__(self, block_size: int, max_pieces: int, n_subsample: int | None, bucket: bool, objective: str,
                 mlm_probability: float, teacher: TeacherAligner | None = None):
        if objective not in ("clm", "mlm"):
            raise ValueError(f"objective {objective!r} is not supported; use clm or mlm")
        if teacher is not None and objective != "clm":
            raise ValueError("distillation losses (alm, kl_aligned, latents) compare causal-LM predictions; "
                             f"they need loss.objective=clm, not {objective!r}")
        self.teacher = teacher
        self.block_size, self.max_pieces = int(block_size), int(max_pieces)
        self.n_subsample = int(n_subsample) if n_subsample else None
        self.bucket, self.objective, self.mlm_probability = bool(bucket), objective, float(mlm_probability)

    def build(self, tokenizer, texts, sf, generator, selection=None, encoded=None) -> dict:
        # encoded: (input_ids, attention_mask, score_mask) [B, T] already windowed (validation, zett.eval convention)
        scored = None
        if encoded is not None:
            input_ids, attn, scored = encoded
        else:
            input_ids, attn = encode_texts(tokenizer, texts, self.block_size)
        lengths = sf.mask.sum(1)
        if self.objective == "mlm":
            if tokenizer.mask_token_id is None:
                raise ValueError("objective mlm needs a tokenizer with a mask token; the sampled/validation "
                                 f"tokenizer {type(tokenizer).__name__} has none (base tokenizer without [MASK]?)")
            input_ids, labels = mask_for_mlm(input_ids, attn, sf.special >= 0, tokenizer.mask_token_id,
                                             len(tokenizer), self.mlm_probability, generator)
        else:
            labels = input_ids.masked_fill((attn == 0) if scored is None else ~scored, IGNORE_INDEX)
        if selection is None:
            used = torch.unique(torch.cat([input_ids[attn.bool()], labels[labels != IGNORE_INDEX]]))
            selection = select_vocab(lengths, sf.special, used, self.n_subsample, self.bucket, generator)
        width = int(selection.buckets[:, 2].max()) if selection.buckets.numel() else 1
        surface_ids = sf.ids[selection.ids, :width]
        surface_mask = sf.mask[selection.ids, :width].clone()
        # Rows with no piece at all (special tokens without a surface) would attend over nothing; their
        # prediction is overwritten by the copied base row anyway, so give them one dummy piece.
        surface_mask[:, 0] |= ~surface_mask.any(1)
        batch = {
            "input_ids": selection.remap[input_ids],
            "attention_mask": attn,
            "labels": torch.where(labels == IGNORE_INDEX, labels, selection.remap[labels.clamp(min=0)]),
            "surface_ids": surface_ids,
            "surface_mask": surface_mask,
            "special": sf.special[selection.ids],
            "buckets": selection.buckets,
            "vocab_size": len(tokenizer),
        }
        if selection.logit_offset is not None:
            batch["logit_offset"] = selection.logit_offset
        if self.teacher is not None:
            batch.update(self.teacher(texts, tokenizer, input_ids, attn, selection.ids))
        return batch, labels


class SampledTokenizerCollator(_BatchBuilder):
    """Collate ``{"texts", "domain"}`` items from ``TextBatchStream`` with a freshly sampled tokenizer per batch.

    sampler_factory(base_tokenizer, seed=...) -> TokenizerSampler (a ``functools.partial`` built from the
    ``tokenizer_sampler`` config). warmup_texts: domain -> texts pushed into a new sampler's queue (unless a saved
    state for that sampler is given). state_every: attach ``sampler_state`` to every n-th batch a worker produces
    (so that checkpoints can hold the sampler state of DataLoader workers); 0 = never. teacher: a
    ``TeacherAligner`` when distillation losses are on.
    """

    def __init__(self, base_tokenizer, sampler_factory: Callable, block_size: int = 128, max_pieces: int = 7,
                 n_subsample: int | None = None, bucket: bool = True, objective: str = "clm",
                 mlm_probability: float = 0.15, seed: int = 0, rank: int = 0,
                 warmup_texts: dict[str, list[str]] | None = None, state_every: int = 0,
                 initial_states: dict[str, dict] | None = None, teacher: TeacherAligner | None = None):
        super().__init__(block_size, max_pieces, n_subsample, bucket, objective, mlm_probability, teacher)
        self.base_tokenizer, self.sampler_factory = base_tokenizer, sampler_factory
        self.seed, self.rank = int(seed), int(rank)
        self.warmup_texts = warmup_texts or {}
        self.state_every = int(state_every)
        self.initial_states = dict(initial_states or {})
        self._samplers: dict[str, object] = {}
        self._generators: dict[int, torch.Generator] = {}
        self._count = 0

    def sampler_key(self, domain: str, worker: int | None = None) -> str:
        return f"{self.rank}:{_worker_id() if worker is None else worker}:{domain}"

    def sampler(self, domain: str):
        key = self.sampler_key(domain)
        if key not in self._samplers:
            worker = _worker_id()
            seed = zlib.crc32(f"{self.seed}:{self.rank}:{worker}:{domain}".encode())
            s = self.sampler_factory(self.base_tokenizer, seed=seed)
            if key in self.initial_states:
                s.load_state_dict(self.initial_states[key])
            elif self.warmup_texts.get(domain):
                s.warm_up(self.warmup_texts[domain])
            self._samplers[key] = s
        return self._samplers[key]

    def _generator(self) -> torch.Generator:
        worker = _worker_id()
        if worker not in self._generators:
            g = torch.Generator()
            g.manual_seed(zlib.crc32(f"subsample:{self.seed}:{self.rank}:{worker}".encode()))
            self._generators[worker] = g
        return self._generators[worker]

    def sampler_states(self) -> dict[str, dict]:
        """State of the samplers living in this process (all of them when num_workers == 0)."""
        return {k: s.state_dict() for k, s in self._samplers.items()}

    def __call__(self, item: dict) -> dict:
        from zett.tokenizers import surface_forms

        texts, domain = item["texts"], item.get("domain", "default")
        sampler = self.sampler(domain)
        tokenizer = sampler.sample(texts, push=True)
        sf = surface_forms(tokenizer, self.base_tokenizer, self.max_pieces)
        batch, _ = self.build(tokenizer, texts, sf, self._generator())
        batch["domain"] = domain
        batch["n_truncated"] = int(sf.n_truncated)
        self._count += 1
        if self.state_every and torch.utils.data.get_worker_info() is not None and \
                self._count % self.state_every == 0:
            batch["sampler_state"] = {self.sampler_key(domain): sampler.state_dict()}
        return batch


class FixedTokenizerCollator(_BatchBuilder):
    """Validation collator for one fixed tokenizer (whole vocabulary, surface forms computed once)."""

    def __init__(self, tokenizer, base_tokenizer, block_size: int = 128, max_pieces: int = 7, bucket: bool = True,
                 objective: str = "clm", mlm_probability: float = 0.15, seed: int = 0,
                 teacher: TeacherAligner | None = None, stride: int | None = None, prefix: str = "bos"):
        from zett.tokenizers import byte_vocab, surface_forms

        super().__init__(block_size, max_pieces, None, bucket, objective, mlm_probability, teacher)
        self.tokenizer = tokenizer
        self.sf = surface_forms(tokenizer, base_tokenizer, max_pieces)
        self.selection = select_vocab(self.sf.mask.sum(1), self.sf.special, None, None, bucket)
        # UTF-8 bytes each token stands for (0 for special tokens): the denominator of bits per byte.
        self.token_bytes = torch.tensor([len(b) if b is not None else 0 for b in byte_vocab(tokenizer)],
                                        dtype=torch.long)
        self.seed = seed
        self.stride, self.prefix = stride, prefix

    def __call__(self, texts: list[str]) -> dict:
        g = torch.Generator()
        g.manual_seed(zlib.crc32("".join(texts[:1]).encode()) ^ self.seed)  # same masks every validation
        if self.objective == "clm" and self.teacher is None:
            windowed = self._windowed(texts, g)
            if windowed is not None:
                return windowed
        batch, labels = self.build(self.tokenizer, texts, self.sf, g, self.selection)
        predicted = labels[:, 1:] if self.objective == "clm" else labels
        ids = predicted[predicted != IGNORE_INDEX]
        batch["n_bytes"] = self.token_bytes[ids.clamp(max=len(self.token_bytes) - 1)].sum()
        return batch

    def _windowed(self, texts: list[str], generator) -> dict | None:
        """Causal-LM validation scored exactly as ``zett-eval`` scores (``zett.eval.metrics.document_windows``):
        one context token (BOS, else EOS) per text, sliding windows of ``block_size`` tokens advancing by
        ``stride`` (default block_size / 2), every token scored once, n_bytes = the UTF-8 bytes of the texts."""
        from zett.eval.metrics import document_windows, pad_windows, resolve_prefix

        prefix = resolve_prefix(self.tokenizer, self.prefix)
        windows, scored_bytes, _, _ = document_windows(self.tokenizer, texts, self.block_size, self.stride, prefix)
        if not windows:
            return None
        encoded = pad_windows(windows, self.tokenizer.pad_token_id or 0)
        batch, _ = self.build(self.tokenizer, texts, self.sf, generator, self.selection, encoded=encoded)
        batch["n_bytes"] = torch.tensor(sum(scored_bytes), dtype=torch.long)
        return batch
