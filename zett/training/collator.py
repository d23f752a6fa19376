"""Collators: texts -> tensors for one step, including the vocabulary the hypernetwork must embed.

``SampledTokenizerCollator`` (training) samples a fresh tokenizer per batch from the recent text queue
(``TokenizerSampler.sample``), encodes the batch with it, decomposes every token into base-tokenizer pieces
(``surface_forms``) and selects / orders the rows to predict (``zett.training.vocab``). It runs inside DataLoader
workers; each (rank, worker, domain) gets its own sampler, seeded from (seed, rank, worker, domain).

``FixedTokenizerCollator`` (validation) does the same for one fixed tokenizer, whose surface forms are computed once.

Batch keys (S = selected vocabulary rows, L = surface length after trimming):
    input_ids [B, T] (rows of the selection), attention_mask [B, T], labels [B, T] (-100 = ignore; CLM labels are
    *not* shifted), surface_ids [S, L], surface_mask [S, L], overflow_ids / overflow_mask [S, E] (pieces past
    max_pieces, read by the FVT mean only; E = 0 when no selected token is truncated), special [S] (base id to
    copy, else -1),
    buckets [n, 3] (start, end, pieces; with ``bucket_chunks`` the last bucket's end may pass S: the module pads
    it, ``zett.training.vocab``), vocab_size (int: size of the sampled vocabulary), domain (str),
    n_bytes (validation: UTF-8 bytes of the predicted tokens); host data: bucket_spans (the buckets as a list),
    padded (bool), n_tokens / n_pieces (ints, throughput accounting). Sampler state never rides in batches: workers
    write it to ``state_dir`` (see ``SampledTokenizerCollator``).

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


def encode_texts_prefix(tokenizer, texts: list[str], block_size: int,
                        chars_per_token: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """``encode_texts`` for tokenizers that split text with a regex pretokenizer and no context-dependent
    normaliser (``TokenizerSampler``'s: byte-level GPT-2 split, optional prefix space), encoding only a prefix of
    each text. Identical results, several times less work for 2,048-char spans cut to 128 tokens.

    Why it is exact: a pretoken is tokenised on its own, and a regex match that ends a few chars before the cut
    (more than the longest added token, which could straddle it) is the same match in the whole text. So once
    the pretoken holding the last kept token ends that far before the cut, and a later pretoken exists, the kept
    tokens equal the whole text's. Otherwise the prefix doubles (up to the whole text).
    """
    if tokenizer.padding_side != "right" or tokenizer.truncation_side != "right":
        return encode_texts(tokenizer, texts, block_size)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.convert_ids_to_tokens(0)
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()  # the wrapper leaves its last call's truncation / padding on the backend
    backend.no_padding()
    n_keep = block_size - tokenizer.num_special_tokens_to_add()
    margin = 2 + max((len(t.content) for t in backend.get_added_tokens_decoder().values()), default=0)
    encodings: list = [None] * len(texts)
    todo, cut = list(range(len(texts))), max(block_size * chars_per_token, 2 * margin)
    while todo:
        encs = backend.encode_batch([texts[i][:cut] for i in todo], add_special_tokens=False)
        retry = []
        for i, enc in zip(todo, encs, strict=True):
            if len(texts[i]) <= cut:  # the whole text was encoded
                encodings[i] = enc
                continue
            words = enc.word_ids
            if len(words) > n_keep:
                w, j = words[n_keep - 1], n_keep
                while j < len(words) and words[j] == w:  # to the end of the last kept token's pretoken
                    j += 1
                if j < len(words) and w is not None and enc.offsets[j - 1][1] <= cut - margin:
                    encodings[i] = enc
                    continue
            retry.append(i)
        todo, cut = retry, cut * 2
    rows = []
    for enc in encodings:
        enc.truncate(n_keep)
        rows.append(backend.post_process(enc).ids)
    width = max(map(len, rows), default=0)
    ids = torch.full((len(texts), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[b, :len(r)] = 1
    return ids, mask


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


def _pad_columns(x: torch.Tensor, width: int, value) -> torch.Tensor:
    """x # [S, E] cut or right-padded with ``value`` to [S, width]."""
    if x.shape[1] >= width:
        return x[:, :width]
    return torch.cat([x, x.new_full((x.shape[0], width - x.shape[1]), value)], 1)


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
                 mlm_probability: float, teacher: TeacherAligner | None = None, n_base_rows: int | None = None,
                 bucket_chunks: int = 0):
        if int(bucket_chunks) < 0:
            raise ValueError(f"data.bucket_chunks must be >= 0 (0 = one bucket per piece count), got {bucket_chunks}")
        if objective not in ("clm", "mlm"):
            raise ValueError(f"objective {objective!r} is not supported; use clm or mlm")
        if teacher is not None and objective != "clm":
            raise ValueError("distillation losses (alm, kl_aligned, latents) compare causal-LM predictions; "
                             f"they need loss.objective=clm, not {objective!r}")
        self.teacher = teacher
        # the base model's embedding rows: byte fallbacks are n_base_rows + byte (zett.tokenizers.surface)
        self.n_base_rows = None if n_base_rows is None else int(n_base_rows)
        self.block_size, self.max_pieces = int(block_size), int(max_pieces)
        self.n_subsample = int(n_subsample) if n_subsample else None
        self.bucket, self.objective, self.mlm_probability = bool(bucket), objective, float(mlm_probability)
        self.bucket_chunks = int(bucket_chunks) if self.bucket else 0

    def build(self, tokenizer, texts, sf, generator, selection=None, encoded=None) -> dict:
        # encoded: (input_ids, attention_mask, score_mask) [B, T] already windowed (validation, zett.eval convention)
        scored = None
        if encoded is not None:
            input_ids, attn, scored = encoded
        else:
            # Sampled tokenizers (they carry zett_byte_level) split with the GPT-2 regex: only a prefix needs encoding.
            sampled = getattr(tokenizer, "zett_byte_level", None) is not None
            input_ids, attn = (encode_texts_prefix if sampled else encode_texts)(tokenizer, texts, self.block_size)
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
            selection = select_vocab(lengths, sf.special, used, self.n_subsample, self.bucket, generator,
                                     self.bucket_chunks)
        width = int(selection.buckets[:, 2].max()) if selection.buckets.numel() else 1
        surface_ids = sf.ids[selection.ids, :width]
        surface_mask = sf.mask[selection.ids, :width].clone()
        # Rows with no piece at all (special tokens without a surface) would attend over nothing; their
        # prediction is overwritten by the copied base row anyway, so give them one dummy piece.
        surface_mask[:, 0] |= ~surface_mask.any(1)
        overflow_mask = sf.overflow_mask[selection.ids]
        extra = int(overflow_mask.sum(1).max()) if overflow_mask.numel() else 0
        if self.bucket_chunks and extra:
            # fixed layout: the overflow width also takes few values (powers of two), so shapes repeat
            extra = 1 << (extra - 1).bit_length()
        overflow_ids = _pad_columns(sf.overflow_ids[selection.ids], extra, 0)
        overflow_mask = _pad_columns(overflow_mask, extra, False)
        batch = {
            "input_ids": selection.remap[input_ids],
            "attention_mask": attn,
            "labels": torch.where(labels == IGNORE_INDEX, labels, selection.remap[labels.clamp(min=0)]),
            "surface_ids": surface_ids,
            "surface_mask": surface_mask,
            "overflow_ids": overflow_ids,
            "overflow_mask": overflow_mask,
            "special": sf.special[selection.ids],
            "buckets": selection.buckets,
            # the same layout as host data: the step slices buckets without reading a device tensor
            "bucket_spans": selection.buckets.tolist(),
            "vocab_size": len(tokenizer),
            # host data: whether any position is padding (without any, the base runs without a mask, which
            # spares transformers a device read of the mask each step)
            "padded": bool((attn == 0).any()),
            # host ints for throughput accounting (zett.training.throughput): real tokens, real encoder pieces
            "n_tokens": int(attn.sum()),
            "n_pieces": int(lengths[selection.ids].sum()),
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
    state for that sampler is given). state_every / state_dir: every n-th batch a DataLoader worker produces, it
    writes the state of the sampler it used to ``<state_dir>/<rank>:<worker>:<domain>.pt`` (whole or not at all),
    a side channel the data module reads when a checkpoint is saved; 0 or no state_dir = never. teacher: a
    ``TeacherAligner`` when distillation losses are on.
    """

    def __init__(self, base_tokenizer, sampler_factory: Callable, block_size: int = 128, max_pieces: int = 7,
                 n_subsample: int | None = None, bucket: bool = True, objective: str = "clm",
                 mlm_probability: float = 0.15, seed: int = 0, rank: int = 0,
                 warmup_texts: dict[str, list[str]] | None = None, state_every: int = 0,
                 initial_states: dict[str, dict] | None = None, teacher: TeacherAligner | None = None,
                 n_base_rows: int | None = None, state_dir: str | None = None, bucket_chunks: int = 0):
        super().__init__(block_size, max_pieces, n_subsample, bucket, objective, mlm_probability, teacher,
                         n_base_rows, bucket_chunks)
        self.base_tokenizer, self.sampler_factory = base_tokenizer, sampler_factory
        self.seed, self.rank = int(seed), int(rank)
        self.warmup_texts = warmup_texts or {}
        self.state_every, self.state_dir = int(state_every), state_dir
        self.initial_states = dict(initial_states or {})
        self._samplers: dict[str, object] = {}
        self._last: dict[str, tuple] = {}  # domain -> (tokenizer, surface forms, selection) of the last batch
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
        last = self._last.get(domain)
        if last is not None and last[0] is tokenizer:  # a reused tokenizer (tokenizer_sampler.reuse > 1)
            sf, selection = last[1], last[2]
        else:
            sf = surface_forms(tokenizer, self.base_tokenizer, self.max_pieces, self.n_base_rows,
                               byte_level=getattr(tokenizer, "zett_byte_level", None))
            selection = None
            if not self.n_subsample:  # the whole vocabulary: the selection depends on the vocabulary alone
                selection = select_vocab(sf.mask.sum(1), sf.special, None, None, self.bucket,
                                         chunks=self.bucket_chunks)
            self._last[domain] = (tokenizer, sf, selection)
        batch, _ = self.build(tokenizer, texts, sf, self._generator(), selection)
        batch["domain"] = domain
        batch["n_truncated"] = int(sf.n_truncated)
        if "span_ids" in item:  # a fixed span set (FixedSpanStream): which spans, for the teacher cache
            batch["span_ids"] = torch.tensor(item["span_ids"], dtype=torch.long)
        self._count += 1
        if self.state_every and self.state_dir and torch.utils.data.get_worker_info() is not None and \
                self._count % self.state_every == 0:
            write_sampler_state(self.state_dir, self.sampler_key(domain), sampler.state_dict())
        return batch


def write_sampler_state(state_dir: str, key: str, state: dict) -> None:
    """Save one sampler's state as ``<state_dir>/<key>.pt``, atomically (a reader never sees half a file)."""
    import os

    path = os.path.join(state_dir, f"{key}.pt")
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_sampler_states(state_dir: str) -> dict[str, dict]:
    """Every ``<key>.pt`` under ``state_dir`` -> {key: state} (weights_only: strings, ints and int64 tensors)."""
    import os

    out = {}
    for name in sorted(os.listdir(state_dir)):
        if name.endswith(".pt"):
            out[name[:-3]] = torch.load(os.path.join(state_dir, name), weights_only=True)
    return out


class FixedTokenizerCollator(_BatchBuilder):
    """Validation collator for one fixed tokenizer (whole vocabulary, surface forms computed once)."""

    def __init__(self, tokenizer, base_tokenizer, block_size: int = 128, max_pieces: int = 7, bucket: bool = True,
                 objective: str = "clm", mlm_probability: float = 0.15, seed: int = 0,
                 teacher: TeacherAligner | None = None, n_base_rows: int | None = None, stride: int | None = None,
                 prefix: str = "bos", bucket_chunks: int = 0):
        from zett.tokenizers import byte_vocab, surface_forms

        super().__init__(block_size, max_pieces, None, bucket, objective, mlm_probability, teacher, n_base_rows,
                         bucket_chunks)
        self.tokenizer = tokenizer
        self.sf = surface_forms(tokenizer, base_tokenizer, max_pieces, self.n_base_rows)
        self.selection = select_vocab(self.sf.mask.sum(1), self.sf.special, None, None, bucket,
                                      chunks=self.bucket_chunks)
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
