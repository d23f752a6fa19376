"""A cache of the teacher's early-layer hidden states on a fixed set of training spans.

The cut-model latents objective (``LatentLoss`` with ``layer=k``) compares the frozen base model's layer-k states on
a sampled tokenization with the same states on the base tokenization. The teacher side never changes: it always
reads the base tokenization of the same span. So it is computed once per span, stored here, and reused for every
sampled tokenizer, step, epoch and run.

A cache is a data-side artefact, like an asset. It is keyed by everything its numbers depend on, and
:meth:`TeacherCache.open` refuses a cache built for another key:

- ``base``: the base model's embedding fingerprint (``zett.models.adapter.fingerprint``) and layer count;
- ``tokenizer``: sha256 of the base tokenizer's serialised form (its encoding of the spans);
- ``spans``: sha256 of the span texts, in order (it covers the corpus version, the mixture and the span layout);
- ``block_size``: teacher tokens per span; ``layers``: the layers stored.

Layout of a cache directory (written whole or not at all, ``zett.outputs.atomic_dir``):
``meta.json``; ``ids.npy`` int32 [N, block_size] (base-tokenizer ids, -1 past each span's length);
``layer<k>.npy`` float16 [N, block_size, d] (memory-mapped on use); ``layer<k>_scale.npy`` float32 [d], the mean
square of each channel over every stored position but the first of each span (the first position carries the
attention-sink activations, several hundred times larger on a few channels).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from zett.training.data import DataConfigError

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


class TeacherCacheError(DataConfigError):
    """A teacher cache that does not belong to this run's base model, layers, spans or block size."""


@dataclass(frozen=True)
class CacheKey:
    base: str
    tokenizer: str
    spans: str
    block_size: int
    layers: tuple[int, ...]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def spans_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(base_model, base_tokenizer, texts: list[str], block_size: int, layers) -> CacheKey:
    from zett.models import adapter
    from zett.models.configuration import fingerprint_hex

    n_layers = len(adapter.decoder_layers(base_model))
    base = f"{fingerprint_hex(adapter.fingerprint(adapter.source_embeddings(base_model)))}:{n_layers}"
    return CacheKey(base, tokenizer_digest(base_tokenizer), spans_digest(texts), int(block_size),
                    tuple(sorted({int(k) for k in layers})))


def default_dir(key: CacheKey) -> Path:
    """``$ZETT_HOME/teacher-cache/<key digest>`` (ZETT_HOME defaults to ~/.cache/zett)."""
    home = Path(os.environ.get("ZETT_HOME", Path.home() / ".cache" / "zett")).expanduser()
    return home / "teacher-cache" / key.digest()


class TeacherCache:
    """Read side of a built cache: ``lookup(span_ids, layer, width)`` -> float32 states [B, width, d]."""

    def __init__(self, directory: Path, meta: dict):
        self.dir, self.meta = Path(directory), meta
        self.key = CacheKey(**{**meta["key"], "layers": tuple(meta["key"]["layers"])})
        self.ids = np.load(self.dir / "ids.npy", mmap_mode="r")
        self._states = {k: np.load(self.dir / f"layer{k}.npy", mmap_mode="r") for k in self.key.layers}
        self._scales = {k: torch.from_numpy(np.load(self.dir / f"layer{k}_scale.npy")) for k in self.key.layers}

    # ------------------------------------------------------------------ build / open
    @classmethod
    def open(cls, directory, expected: CacheKey | None = None) -> TeacherCache:
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise TeacherCacheError(f"loss.teacher_cache={directory} holds no teacher cache (no meta.json); point it "
                                    "at a cache zett built, or leave it null to build one")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise TeacherCacheError(f"teacher cache {directory} has format {meta.get('format_version')}, this zett "
                                    f"reads {FORMAT_VERSION}; delete it to rebuild")
        if expected is not None:
            have = meta["key"]
            for field, want in asdict(expected).items():
                got = have.get(field)
                got = tuple(got) if isinstance(want, tuple) else got
                if got != want:
                    raise TeacherCacheError(
                        f"teacher cache {directory} was built for another {field} ({got!r}, this run needs "
                        f"{want!r}): it belongs to another base model, layer, span set or block size. Leave "
                        "loss.teacher_cache null (a cache per key under $ZETT_HOME/teacher-cache) or delete it")
        return cls(directory, meta)

    @classmethod
    def build(cls, base_model, base_tokenizer, texts: list[str], layers, block_size: int, directory,
              batch_size: int = 16, progress: bool = True, key: CacheKey | None = None) -> TeacherCache:
        """Run the base model cut after ``max(layers)`` over ``texts`` (base tokenization, ``block_size`` tokens)
        and store the states of ``layers``. Deterministic: same inputs, same bytes. key: ``cache_key`` of these
        inputs when the caller has it (it hashes the spans and the tokenizer)."""
        from tqdm.auto import tqdm

        from zett.models import adapter
        from zett.outputs import atomic_dir
        from zett.training.collator import encode_texts

        key = key or cache_key(base_model, base_tokenizer, texts, block_size, layers)
        directory = Path(directory)
        wall, cpu = time.perf_counter(), time.process_time()
        n, d = len(texts), adapter.source_embeddings(base_model).shape[1]
        emb = adapter.input_embeddings(base_model)
        dtype = next(base_model.parameters()).dtype
        with atomic_dir(directory, overwrite=True, setting="loss.teacher_cache") as tmp:
            ids_out = np.lib.format.open_memmap(tmp / "ids.npy", "w+", np.int32, (n, block_size))
            ids_out[:] = -1
            states = {k: np.lib.format.open_memmap(tmp / f"layer{k}.npy", "w+", np.float16, (n, block_size, d))
                      for k in key.layers}
            sq = {k: torch.zeros(d, dtype=torch.float64) for k in key.layers}
            count = 0
            bar = tqdm(range(0, n, batch_size), desc="teacher cache", unit="batch", disable=not progress)
            with torch.no_grad():
                for s in bar:
                    ids, mask = encode_texts(base_tokenizer, texts[s:s + batch_size], block_size)
                    outs = adapter.hidden_states_at_layers(base_model, emb[ids].to(dtype), mask, list(key.layers))
                    t, valid = ids.shape[1], mask.bool()
                    ids_out[s:s + len(ids), :t] = np.where(valid.numpy(), ids.numpy(), -1)
                    later = valid.clone()
                    later[:, 0] = False
                    count += int(later.sum())
                    for k, h in zip(key.layers, outs, strict=True):
                        h = h.float() * valid[..., None]
                        states[k][s:s + len(ids), :t] = h.numpy().astype(np.float16)
                        sq[k] += h[later].double().pow(2).sum(0)
            for k in key.layers:
                states[k].flush()
                scale = (sq[k] / max(count, 1)).float().numpy()
                if not np.isfinite(scale).all():
                    raise TeacherCacheError("the teacher's states are not finite; check the base model's weights "
                                            "(`zett-assets verify`)")
                np.save(tmp / f"layer{k}_scale.npy", scale)
            ids_out.flush()
            del states, ids_out
            size = sum(f.stat().st_size for f in tmp.iterdir())
            meta = {"format_version": FORMAT_VERSION, "key": {**asdict(key), "layers": list(key.layers)},
                    "n_spans": n, "positions": count + n, "hidden_size": d, "dtype": "float16",
                    "size_bytes": size, "build_wall_seconds": round(time.perf_counter() - wall, 1),
                    "build_cpu_seconds": round(time.process_time() - cpu, 1)}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        log.info("teacher cache built: %d spans, layers %s, %.0f MB in %.0f s (%s)", n, list(key.layers),
                 size / 1e6, meta["build_wall_seconds"], directory)
        return cls(directory, meta)

    @classmethod
    def build_or_open(cls, base_model, base_tokenizer, texts: list[str], layers, block_size: int,
                      directory=None, **kwargs) -> TeacherCache:
        """Open the cache for this key (``directory`` or the default one), building it first when absent."""
        key = cache_key(base_model, base_tokenizer, texts, block_size, layers)
        directory = Path(directory).expanduser() if directory else default_dir(key)
        if (directory / "meta.json").is_file():
            return cls.open(directory, key)
        if directory.exists() and any(directory.iterdir()):
            raise TeacherCacheError(f"loss.teacher_cache={directory} exists and is not a teacher cache; give an "
                                    "empty or new directory, or leave it null")
        return cls.build(base_model, base_tokenizer, texts, layers, block_size, directory, key=key, **kwargs)

    # ------------------------------------------------------------------ read
    def scale(self, layer: int) -> torch.Tensor:
        """[d] float32 mean square per channel of the layer's states (the latents loss divides by it)."""
        return self._scales[self._layer(layer)]

    def _layer(self, layer: int) -> int:
        if layer not in self._states:
            raise TeacherCacheError(f"teacher cache {self.dir} holds layers {list(self.key.layers)}, not {layer}")
        return layer

    def lookup(self, span_ids: torch.Tensor, layer: int, teacher_ids: torch.Tensor,
               teacher_mask: torch.Tensor) -> torch.Tensor:
        """States [B, T, d] (float32) of spans ``span_ids`` [B] at the batch's teacher positions.

        teacher_ids / teacher_mask [B, T]: the batch's own base-tokenizer encoding of the spans; a position
        where it differs from the cached ids means the batch and the cache disagree on the text or tokenizer,
        an error rather than a silently wrong target."""
        rows = span_ids.cpu().numpy()
        width = teacher_ids.shape[1]
        if width > self.key.block_size:
            raise TeacherCacheError(f"the batch has {width} teacher tokens, the cache {self.key.block_size}")
        cached = torch.from_numpy(np.ascontiguousarray(self.ids[rows, :width])).long()
        valid = teacher_mask.cpu().bool()
        if not torch.equal(torch.where(valid, cached, -1), torch.where(valid, teacher_ids.cpu().long(), -1)):
            raise TeacherCacheError(f"teacher cache {self.dir}: the batch's base tokenization differs from the "
                                    "cached one (another span set or base tokenizer); delete the cache to rebuild")
        states = np.ascontiguousarray(self._states[self._layer(layer)][rows, :width])
        return torch.from_numpy(states).float().to(teacher_ids.device)
