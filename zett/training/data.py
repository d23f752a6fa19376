"""Text sources, domain mixing and character spans for hypernetwork training.

A *source* is one domain (a language, a code corpus, ...). Sources come from zett's offline corpora
(``corpus: botchan``), local files (``path: data/*.jsonl`` -- .txt, .jsonl/.json, .parquet, a directory of them) or
any ``datasets`` dataset (``hf: {path: ..., name: ...}``, ``streaming: true`` for large ones). A multilingual corpus
with ``by_language: true`` becomes one source per language.

Each training batch is *monolingual* (as in the original): a domain is drawn with probability
``p ∝ weight · size^alpha`` (``alpha=0``: the weights alone; the original uses 0.3 over page counts), then
``batch_size`` spans of ``span_chars`` characters are cut from it. A span is a random window over documents
concatenated with ``separator``. Everything is deterministic given (seed, rank, worker, resume offset).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


class DataConfigError(ValueError):
    """A data source the user configured cannot be used."""


@dataclass
class TextSource:
    """One domain: a map-style or streaming ``datasets`` dataset with a text column."""

    name: str
    dataset: object  # datasets.Dataset | datasets.IterableDataset
    text_column: str = "text"
    weight: float = 1.0
    size: float | None = None  # characters (estimated); used by size^alpha mixing

    @property
    def streaming(self) -> bool:
        import datasets

        return isinstance(self.dataset, datasets.IterableDataset)


def _files(path: str) -> list[str]:
    p = Path(os.path.expanduser(path))
    if p.is_dir():
        out = sorted(str(f) for f in p.rglob("*") if f.suffix in {".txt", ".jsonl", ".json", ".parquet"})
    else:
        out = sorted(glob.glob(str(p)))
    if not out:
        raise DataConfigError(f"data source path {path!r} matches no .txt/.jsonl/.json/.parquet file; "
                              "give an existing file, directory or glob")
    return out


def _load_files(files: list[str], streaming: bool):
    import datasets

    suffixes = {Path(f).suffix for f in files}
    if len(suffixes) > 1:
        raise DataConfigError(f"data source mixes file types {sorted(suffixes)}; use one source per file type")
    kind = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}[suffixes.pop()]
    # The text builder splits on lines; sample_by="document" keeps each .txt file one document.
    extra = {"sample_by": "document"} if kind == "text" else {}
    return datasets.load_dataset(kind, data_files=files, split="train", streaming=streaming, **extra)


def _estimate_chars(ds, column: str, n: int = 1000) -> float:
    rows = min(len(ds), n)
    if rows == 0:
        return 0.0
    idx = np.linspace(0, len(ds) - 1, rows).astype(int)
    mean = float(np.mean([len(ds[int(i)][column] or "") for i in idx]))
    return mean * len(ds)


def load_sources(spec: dict, split: str = "train") -> list[TextSource]:
    """Turn one source spec (a dict from the ``data`` config) into one or more ``TextSource``s.

    Keys: exactly one of ``corpus`` (zett asset), ``path`` (file/dir/glob), ``hf`` (kwargs of
    ``datasets.load_dataset``) or ``dataset`` (a ``datasets`` object, Python API); optional ``split``, ``name``,
    ``text_column``, ``weight``, ``size``, ``languages``, ``by_language``, ``streaming``.
    """
    spec = dict(spec)
    column = spec.get("text_column", "text")
    split = spec.get("split", split)
    streaming = bool(spec.get("streaming", False))
    if "dataset" in spec:
        ds, label = spec["dataset"], spec.get("name", "dataset")
    elif "corpus" in spec:
        from zett.assets import load_corpus

        ds = load_corpus(spec["corpus"], split=split, languages=spec.get("languages"))
        label = spec.get("name", spec["corpus"])
    elif "path" in spec:
        ds = _load_files(_files(spec["path"]), streaming)
        label = spec.get("name", Path(spec["path"]).stem)
    elif "hf" in spec:
        import datasets

        kwargs = dict(spec["hf"])
        kwargs.setdefault("split", split)
        ds = datasets.load_dataset(**kwargs, streaming=streaming)
        label = spec.get("name", str(kwargs.get("path")))
    else:
        raise DataConfigError(f"data source {spec} needs one of corpus=, path=, hf= or dataset=")
    features = getattr(ds, "column_names", None) or list(getattr(ds, "features", None) or [])
    if features and column not in features:
        raise DataConfigError(f"data source {label!r} has no column {column!r} (columns: {features}); "
                              "set text_column")
    weight = float(spec.get("weight", 1.0))
    if spec.get("by_language"):
        if streaming or "language" not in features:
            raise DataConfigError(f"data source {label!r}: by_language needs a map-style dataset with a "
                                  "'language' column")
        langs = sorted(set(ds["language"]))
        out = []
        for lang in langs:
            sub = ds.filter(lambda r, lang=lang: r["language"] == lang)
            out.append(TextSource(f"{label}:{lang}", sub, column, weight, _estimate_chars(sub, column)))
        return out
    if not streaming and len(ds) == 0:
        raise DataConfigError(f"data source {label!r} (split {split!r}) is empty")
    size = spec.get("size")
    if size is None and not streaming:
        size = _estimate_chars(ds, column)
    return [TextSource(label, ds, column, weight, size)]


def mixing_probabilities(sources: Sequence[TextSource], alpha: float = 0.0) -> np.ndarray:
    """``p_i ∝ weight_i · size_i^alpha``; a streaming source without a ``size`` needs ``alpha == 0``."""
    sizes = []
    for s in sources:
        if alpha and s.size is None:
            raise DataConfigError(f"data source {s.name!r} is streaming and has no size; give size= "
                                  "(characters or documents) or use data.alpha=0 (weights only)")
        sizes.append(max(float(s.size or 1.0), 1.0))
    p = np.array([s.weight for s in sources], dtype=np.float64) * np.power(sizes, alpha)
    if not np.isfinite(p).all() or p.sum() <= 0:
        raise DataConfigError(f"data source weights {[s.weight for s in sources]} must be positive")
    return p / p.sum()


class _DocStream:
    """Endless stream of documents from one source, private to one (rank, worker)."""

    def __init__(self, source: TextSource, rng: np.random.Generator, shard: int, n_shards: int):
        self.source, self.rng, self.shard, self.n_shards = source, rng, shard, n_shards
        self._iter: Iterator | None = None
        self._epoch = 0

    def next(self) -> str:
        col = self.source.text_column
        if not self.source.streaming:
            ds = self.source.dataset
            for _ in range(1000):
                text = ds[int(self.rng.integers(len(ds)))][col]
                if text:
                    return text
            raise DataConfigError(f"data source {self.source.name!r}: found no non-empty text in 1000 draws")
        for _ in range(2):
            if self._iter is None:
                seed = int(self.rng.integers(2**31))
                ds = self.source.dataset.shuffle(seed=seed, buffer_size=1000)
                self._iter = (r[col] for i, r in enumerate(ds) if i % self.n_shards == self.shard and r[col])
            try:
                return next(self._iter)
            except StopIteration:
                self._iter, self._epoch = None, self._epoch + 1
        raise DataConfigError(f"streaming data source {self.source.name!r} yields no text for shard "
                              f"{self.shard}/{self.n_shards}")


def cut_span(docs: _DocStream, span_chars: int, rng: np.random.Generator, separator: str) -> str:
    """A random window of ``span_chars`` characters over one or more concatenated documents."""
    parts, total = [], 0
    while total < span_chars:
        doc = docs.next()
        parts.append(doc)
        total += len(doc) + len(separator)
        if len(parts) == 1 and len(doc) >= span_chars:
            break
    text = separator.join(parts)
    if len(text) <= span_chars:
        return text
    start = int(rng.integers(len(text) - span_chars + 1))
    return text[start: start + span_chars]


def stream_seed(seed: int, rank: int, worker: int, offset: int = 0) -> list[int]:
    """Seed sequence of one (rank, worker) stream; ``offset`` separates resumed runs from the first one."""
    return [int(seed), int(rank), int(worker), int(offset)]


class TextBatchStream(torch.utils.data.IterableDataset):
    """Endless iterable of monolingual batches ``{"texts": list[str], "domain": str}`` (DataLoader batch_size=None;
    the collator turns each into tensors)."""

    def __init__(self, sources: Sequence[TextSource], probabilities: np.ndarray, batch_size: int, span_chars: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1, separator: str = "\n\n",
                 monolingual: bool = True, offset: int = 0):
        super().__init__()
        self.sources, self.p = list(sources), np.asarray(probabilities)
        self.batch_size, self.span_chars, self.separator = int(batch_size), int(span_chars), separator
        self.seed, self.rank, self.world_size, self.monolingual, self.offset = seed, rank, world_size, monolingual, offset

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng(stream_seed(self.seed, self.rank, worker, self.offset))
        shard, n_shards = self.rank * n_workers + worker, self.world_size * n_workers
        docs = [_DocStream(s, np.random.default_rng(rng.integers(2**63)), shard, n_shards) for s in self.sources]
        while True:
            if self.monolingual:
                k = int(rng.choice(len(self.sources), p=self.p))
                texts = [cut_span(docs[k], self.span_chars, rng, self.separator) for _ in range(self.batch_size)]
                yield {"texts": texts, "domain": self.sources[k].name}
            else:
                ks = rng.choice(len(self.sources), size=self.batch_size, p=self.p)
                yield {"texts": [cut_span(docs[int(k)], self.span_chars, rng, self.separator) for k in ks],
                       "domain": "mixed"}


def draw_fixed_spans(sources: Sequence[TextSource], probabilities: np.ndarray, n: int, span_chars: int,
                     seed: int = 0, separator: str = "\n\n") -> list[str]:
    """``n`` spans of the training mix, drawn once: the same on every rank, worker and resumed run (a teacher cache
    is keyed by them). Mixed domains, in the proportions of ``probabilities``."""
    stream = TextBatchStream(sources, probabilities, n, span_chars, seed, rank=0, world_size=1,
                             separator=separator, monolingual=False, offset=2**62)  # no step offset reaches it
    return next(iter(stream))["texts"]


class FixedSpanStream(torch.utils.data.IterableDataset):
    """Endless batches ``{"texts", "domain": "mixed", "span_ids"}`` over a fixed span set, epoch after epoch, each
    epoch in a fresh order (seeded by (seed, epoch)); the collator samples a new tokenizer for every batch, so a
    span is seen under many tokenizations. Each rank takes every ``world_size``-th span of an epoch's order, each
    DataLoader worker every ``num_workers``-th batch (the loader interleaves them back in order). ``offset``: the
    batches to skip (a resumed run continues where the checkpoint was taken)."""

    def __init__(self, texts: list[str], batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 offset: int = 0):
        super().__init__()
        if len(texts) < batch_size * world_size:
            raise DataConfigError(f"data.fixed_spans={len(texts)} is fewer than one batch per rank "
                                  f"({batch_size} x {world_size}); raise it or lower data.batch_size")
        self.texts, self.batch_size, self.seed = texts, int(batch_size), int(seed)
        self.rank, self.world_size, self.offset = int(rank), int(world_size), int(offset)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.texts) // self.world_size // self.batch_size

    def batch(self, index: int) -> list[int]:
        """Span ids of this rank's ``index``-th batch (0-based over the whole run)."""
        epoch, within = divmod(index, self.batches_per_epoch)
        order = np.random.default_rng([self.seed, epoch, 104729]).permutation(len(self.texts))
        mine = order[self.rank::self.world_size]
        return [int(i) for i in mine[within * self.batch_size:(within + 1) * self.batch_size]]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        index = self.offset + worker
        while True:
            ids = self.batch(index)
            yield {"texts": [self.texts[i] for i in ids], "domain": "mixed", "span_ids": ids}
            index += n_workers


@dataclass
class HeldOutTexts:
    """Fixed held-out spans for validation: ``n`` windows of ``span_chars`` evenly spread over the documents."""

    name: str
    texts: list[str] = field(default_factory=list)

    @classmethod
    def from_source(cls, name: str, source: TextSource, n: int, span_chars: int, separator: str = "\n\n"):
        if source.streaming:
            docs = [r[source.text_column] for _, r in zip(range(max(n, 1) * 4), source.dataset, strict=False)]
        else:
            docs = list(source.dataset[source.text_column])
        full = separator.join(d for d in docs if d)
        if not full:
            raise DataConfigError(f"validation text {name!r} is empty")
        n_windows = max(1, len(full) // span_chars)
        starts = np.linspace(0, max(0, len(full) - span_chars), min(n, n_windows)).astype(int)
        return cls(name, [full[s: s + span_chars] for s in starts])

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> str:
        return self.texts[i]
