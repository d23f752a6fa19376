"""FOCUS baseline (Dobler & de Melo, EMNLP 2023): new tokens as sparse convex combinations of overlapping tokens.

1. *Overlap*: a target token whose exact UTF-8 bytes (``byte_vocab``) are a base token copies that base row.
   Special tokens copy the base special token with the same role.
2. *Auxiliary space*: token-level static embeddings trained here on text tokenized with the *target* tokenizer
   (skip-gram with negative sampling, a small word2vec written in torch; the paper uses fastText CBOW on the
   same kind of text). Seeded and offline.
3. Every other target token that has an auxiliary vector gets ``sum_j w_j E_base[overlap_j]`` with
   ``w = sparsemax(cos(aux_token, aux_overlap))`` over the overlapping tokens that have auxiliary vectors
   (the auxiliary vectors are centred first; see ``focus_plan``).
4. Tokens the text never showed (no auxiliary vector) fall back to FVT (mean of their base pieces), which is
   ZeTT's baseline; the original FOCUS draws them from N(mean, std) instead (``fallback="normal"``).

Untied models get the same weights applied to their output matrix (and LM-head bias), as FOCUS does with a second
call. ``focus_embeddings`` is what ``zett.transfer(..., method="focus")`` calls; ``focus_plan`` exposes the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ sparsemax

def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Euclidean projection of ``z`` onto the probability simplex along ``dim`` (Martins & Astudillo, 2016).

    The result is non-negative, sums to 1 and is exactly zero for entries below a data-dependent threshold.
    """
    z = z.transpose(dim, -1)
    zs, _ = torch.sort(z, dim=-1, descending=True)                     # [..., n]
    k = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    cum = zs.cumsum(-1)
    support = 1 + k * zs > cum                                           # true on a prefix of the sorted entries
    k_z = support.sum(-1, keepdim=True)                                  # [..., 1] support size (>= 1)
    tau = (cum.gather(-1, k_z - 1) - 1) / k_z.to(z.dtype)
    return (z - tau).clamp(min=0).transpose(dim, -1)


# ------------------------------------------------------------------------------------------------ aux embeddings

@dataclass
class AuxEmbeddings:
    """Token-level auxiliary vectors of the target vocabulary."""

    vectors: torch.Tensor  # [V_t, dim] float32 (rows without a vector are zero)
    known: torch.Tensor  # [V_t] bool: token seen at least ``min_count`` times, so its vector was trained
    counts: torch.Tensor  # [V_t] long: occurrences in the training text


def _encode(tokenizer, texts: list[str], chunk: int = 256) -> list[list[int]]:
    out = []
    for i in range(0, len(texts), chunk):
        out += tokenizer(texts[i: i + chunk], add_special_tokens=False)["input_ids"]
    return out


def train_aux_embeddings(sequences: list[list[int]], vocab_size: int, *, dim: int = 64, epochs: int = 5,
                         window: int = 5, negatives: int = 5, min_count: int = 3, subsample: float = 1e-4,
                         batch_size: int = 1024, lr: float = 0.01, seed: int = 0,
                         progress: bool = False) -> AuxEmbeddings:
    """Skip-gram with negative sampling over token id ``sequences`` (documents; windows never cross them).

    word2vec's tricks: a random window size per centre token, frequent-token subsampling with threshold
    ``subsample``, negatives from the unigram distribution to the power 0.75. Deterministic for a ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(vocab_size, dtype=torch.long)
    docs = [torch.tensor(s, dtype=torch.long) for s in sequences if len(s) > 1]
    docs = [d[(d >= 0) & (d < vocab_size)] for d in docs]  # ids past the vocabulary (none for a sane tokenizer)
    for d in docs:
        counts += torch.bincount(d, minlength=vocab_size)[:vocab_size]
    known = counts >= min_count
    vectors = torch.zeros(vocab_size, dim)
    if int(known.sum()) < 2 or not docs:
        return AuxEmbeddings(vectors, torch.zeros(vocab_size, dtype=torch.bool), counts)

    # compact ids over the known tokens; a document boundary separates sequences
    compact = torch.full((vocab_size,), -1, dtype=torch.long)
    compact[known] = torch.arange(int(known.sum()))
    n_known = int(known.sum())
    ids = torch.cat([compact[d] for d in docs])                          # [N] -1 = unknown token (dropped)
    doc = torch.cat([torch.full((len(d),), i, dtype=torch.long) for i, d in enumerate(docs)])
    keep = ids >= 0
    ids, doc = ids[keep], doc[keep]
    freq = counts[known].double() / counts[known].sum()
    keep_prob = ((subsample / freq).sqrt() + subsample / freq).clamp(max=1.0).float() if subsample else None
    noise = counts[known].double().pow(0.75)
    noise = (noise / noise.sum()).float()

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        inp = torch.nn.Embedding(n_known, dim)
        out = torch.nn.Embedding(n_known, dim)
        torch.nn.init.uniform_(inp.weight, -0.5 / dim, 0.5 / dim)
        torch.nn.init.zeros_(out.weight)
    # dense Adam: torch's sparse gradients cost more than they save at these vocabulary sizes (<= 262k x 64)
    opt = torch.optim.Adam(list(inp.parameters()) + list(out.parameters()), lr=lr)

    threads = torch.get_num_threads()
    # The steps are thousands of tiny kernels: thread hand-offs cost more than they parallelise (10x slower on a
    # busy 2-core machine), so train on one thread and restore the setting afterwards.
    torch.set_num_threads(1)
    try:
        _sgns_epochs(ids, doc, keep_prob, noise, inp, out, opt, epochs, window, negatives, batch_size, gen, progress)
    finally:
        torch.set_num_threads(threads)
    vectors[known] = inp.weight.detach()
    return AuxEmbeddings(vectors, known, counts)


def _sgns_epochs(ids, doc, keep_prob, noise, inp, out, opt, epochs, window, negatives, batch_size, gen, progress):
    epoch_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epoch_iter = tqdm(epoch_iter, desc="focus aux embeddings", leave=False)
    for _ in epoch_iter:
        # subsample frequent tokens afresh every epoch, then pair every centre with its (shrunk) window
        sel = torch.rand(len(ids), generator=gen) < keep_prob[ids] if keep_prob is not None else \
            torch.ones(len(ids), dtype=torch.bool)
        x, dx = ids[sel], doc[sel]
        reach = torch.randint(1, window + 1, (len(x),), generator=gen)  # per-centre window size
        centres, contexts = [], []
        for o in range(1, window + 1):
            same = dx[:-o] == dx[o:]
            fwd = same & (reach[:-o] >= o)
            bwd = same & (reach[o:] >= o)
            centres += [x[:-o][fwd], x[o:][bwd]]
            contexts += [x[o:][fwd], x[:-o][bwd]]
        c, t = torch.cat(centres), torch.cat(contexts)
        if len(c) == 0:
            break
        order = torch.randperm(len(c), generator=gen)
        c, t = c[order], t[order]
        for b in range(0, len(c), batch_size):
            cb, tb = c[b: b + batch_size], t[b: b + batch_size]
            neg = torch.multinomial(noise, len(cb) * negatives, replacement=True, generator=gen).view(-1, negatives)
            u = inp(cb)                                                  # [B, dim]
            pos = (u * out(tb)).sum(-1)                                  # [B]
            negs = torch.bmm(out(neg), u.unsqueeze(-1)).squeeze(-1)      # [B, negatives]
            loss = -(torch.nn.functional.logsigmoid(pos).mean() + torch.nn.functional.logsigmoid(-negs).sum(1).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()


# ------------------------------------------------------------------------------------------------ plan

@dataclass
class FocusPlan:
    """How every target row is made. ``copy[i] >= 0``: target row i copies base row ``copy[i]`` (overlap or
    special token). Rows ``combined`` are ``weights @ E_base[overlap_base]`` with ``weights`` # [n_combined,
    n_overlap] (sparse rows, non-negative, summing to 1). Remaining rows use the fallback."""

    copy: torch.Tensor  # [V_t] long, base id or -1
    overlap_target: torch.Tensor  # [n_overlap] target ids usable as anchors (overlapping and with aux vectors)
    overlap_base: torch.Tensor  # [n_overlap] their base ids
    combined: torch.Tensor  # [n_combined] target ids built from anchors
    weights: torch.Tensor  # [n_combined, n_overlap] float32, mostly zeros
    fallback: torch.Tensor  # [n_fallback] target ids without an auxiliary vector or without anchors
    stats: dict = field(default_factory=dict)


def overlap_ids(base_tokenizer, target_tokenizer) -> torch.Tensor:
    """Target id -> base id with exactly the same bytes, else -1. Special tokens never overlap here; a base
    byte-fallback piece stands only for bytes no regular base token has (``base_id_by_bytes``). # [V_t]"""
    from zett.tokenizers import byte_vocab
    from zett.tokenizers.bytes import base_id_by_bytes, byte_fallback_ids

    base_index = base_id_by_bytes(byte_vocab(base_tokenizer), byte_fallback_ids(base_tokenizer))
    target = byte_vocab(target_tokenizer)
    return torch.tensor([base_index.get(b, -1) if b is not None else -1 for b in target], dtype=torch.long)


def focus_plan(base_tokenizer, target_tokenizer, aux: AuxEmbeddings, special: torch.Tensor | None = None,
               temperature: float = 1.0, chunk: int = 1024) -> FocusPlan:
    """Decide copy / combination / fallback for every target token. ``special`` # [V_t]: base id of the
    same-role base special token, else -1 (``SurfaceForms.special``)."""
    overlap = overlap_ids(base_tokenizer, target_tokenizer)
    v_t = max(len(overlap), aux.vectors.shape[0])
    if len(overlap) < v_t:
        overlap = torch.cat([overlap, torch.full((v_t - len(overlap),), -1, dtype=torch.long)])
    copy = overlap.clone()
    if special is not None:
        special = special[:v_t]
        copy[: len(special)] = torch.where(special >= 0, special, copy[: len(special)])
    known = torch.zeros(v_t, dtype=torch.bool)
    known[: len(aux.known)] = aux.known
    anchors = ((overlap >= 0) & known).nonzero().squeeze(1)
    todo = ((copy < 0) & known).nonzero().squeeze(1)
    if len(anchors) == 0:
        todo = todo[:0]
    # Centre before the cosine: skip-gram vectors share a common direction (strongly so when trained on little
    # text), which makes all cosines similar and sparsemax's support huge; a new row averaged over hundreds of
    # anchors sits near the mean embedding and gets a high logit everywhere.
    centred = aux.vectors.float().clone()
    if bool(known.any()):
        centred[known] -= centred[known].mean(0)
    vec = torch.nn.functional.normalize(centred, dim=-1)
    anchor_vec = vec[anchors]                                            # [n_overlap, dim]
    rows = []
    for b in range(0, len(todo), chunk):
        sims = vec[todo[b: b + chunk]] @ anchor_vec.T                     # [chunk, n_overlap] cosine
        rows.append(sparsemax(sims / temperature, dim=-1).to_sparse())
    weights = torch.cat(rows) if rows else torch.zeros(0, len(anchors)).to_sparse()
    done = torch.zeros(v_t, dtype=torch.bool)
    done[copy >= 0] = True
    done[todo] = True
    fallback = (~done).nonzero().squeeze(1)
    nnz = weights._nnz() if weights.is_sparse else int((weights != 0).sum())
    stats = {"copied": int((copy >= 0).sum()), "special": int((special >= 0).sum()) if special is not None else 0,
             "combined": len(todo), "fallback": len(fallback), "anchors": len(anchors),
             "mean_support": nnz / max(len(todo), 1)}
    return FocusPlan(copy, anchors, overlap[anchors], todo, weights, fallback, stats)


def apply_plan(plan: FocusPlan, source: torch.Tensor, fallback_rows: torch.Tensor) -> torch.Tensor:
    """Build the target matrix. ``source`` # [N_base, n] (embeddings, or a bias as [N_base, 1]);
    ``fallback_rows`` # [V_t, n]: rows used where the plan has neither a copy nor a combination."""
    out = fallback_rows.clone().to(source.dtype)
    is_copy = plan.copy >= 0
    out[is_copy] = source[plan.copy[is_copy]]
    if len(plan.combined):
        w = plan.weights.to(source.dtype)
        out[plan.combined] = torch.sparse.mm(w, source[plan.overlap_base].contiguous()) if w.is_sparse \
            else w @ source[plan.overlap_base]
    return out


# ------------------------------------------------------------------------------------------------ entry point

@dataclass
class FocusResult:
    input_embeddings: torch.Tensor  # [V_t, d]
    output_embeddings: torch.Tensor | None  # [V_t, d] for untied models, else None
    bias: torch.Tensor | None  # [V_t] for models with an LM-head bias, else None
    plan: FocusPlan
    aux: AuxEmbeddings


def _fallback(kind: str, source: torch.Tensor, sf, seed: int) -> torch.Tensor:
    """Rows for tokens FOCUS cannot place. # [V_t, n]"""
    if kind == "fvt":
        from zett.models.pieces import fvt_mean

        return fvt_mean(source, sf.ids, sf.mask, torch.float32, sf.overflow_ids, sf.overflow_mask)
    if kind == "normal":
        gen = torch.Generator().manual_seed(seed)
        mean, std = source.float().mean(0), source.float().std(0)
        return mean + std * torch.randn(sf.ids.shape[0], source.shape[1], generator=gen)
    raise ValueError(f"unknown FOCUS fallback {kind!r}; use 'fvt' or 'normal'")


@torch.no_grad()
def focus_transfer(base_model, base_tokenizer, target_tokenizer, texts: Iterable[str], *, dim: int = 64,
                   epochs: int = 5, window: int = 5, negatives: int = 5, min_count: int = 3,
                   max_bytes: int | None = 2_000_000, temperature: float = 1.0, fallback: str = "fvt",
                   batch_size: int = 1024, lr: float = 0.01, seed: int = 0, progress: bool = False) -> FocusResult:
    """FOCUS for every row of the target vocabulary, with the plan and auxiliary vectors for inspection.

    ``texts``: raw text in the target domain/language (only the first ``max_bytes`` UTF-8 bytes are used).
    """
    from zett.models import adapter
    from zett.tokenizers import load_tokenizer, surface_forms

    base_tok = load_tokenizer(base_tokenizer)
    target_tok = load_tokenizer(target_tokenizer)
    texts = _take(texts, max_bytes)
    if not texts:
        raise ValueError("FOCUS needs text in the target domain to train its auxiliary token embeddings, got none; "
                         "pass texts=[...] (a few hundred KB of the target language/domain)")
    sequences = _encode(target_tok, texts)
    n_base = adapter.input_embeddings(base_model).shape[0]
    sf = surface_forms(target_tok, base_tok, n_base_rows=n_base)
    v_t = sf.ids.shape[0]
    with torch.enable_grad():
        aux = train_aux_embeddings(sequences, v_t, dim=dim, epochs=epochs, window=window, negatives=negatives,
                                   min_count=min_count, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    plan = focus_plan(base_tok, target_tok, aux, special=sf.special, temperature=temperature)
    if len(plan.copy) and int(plan.copy.max()) >= n_base:
        raise ValueError(f"base tokenizer has more tokens than the base model's {n_base} embedding rows; "
                         "pass the tokenizer that belongs to base_model")
    # the plan lives on the CPU; the rows go back to the base model's device
    device = adapter.input_embeddings(base_model).device
    e_in = adapter.input_embeddings(base_model).detach().float().cpu()
    inp = apply_plan(plan, e_in, _fallback(fallback, e_in, sf, seed)).to(device)
    outp = None
    if not adapter.is_tied(base_model):
        e_out = adapter.output_embeddings(base_model).detach().float().cpu()
        outp = apply_plan(plan, e_out, _fallback(fallback, e_out, sf, seed + 1)).to(device)
    bias = adapter.output_bias(base_model)
    if bias is not None:
        b = bias.detach().float().cpu()[:, None]
        bias = apply_plan(plan, b, _fallback("fvt", b, sf, seed))[:, 0].to(device)
    log.info("FOCUS: %s", plan.stats)
    return FocusResult(inp, outp, bias, plan, aux)


def focus_embeddings(base_model, base_tokenizer, target_tokenizer, texts: Iterable[str], *, dim: int = 64,
                     epochs: int = 5, seed: int = 0, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """FOCUS input embeddings # [V_t, d] and output embeddings # [V_t, d] (None for tied models).

    kwargs: see :func:`focus_transfer` (window, negatives, min_count, max_bytes, temperature, fallback, progress).
    """
    r = focus_transfer(base_model, base_tokenizer, target_tokenizer, texts, dim=dim, epochs=epochs, seed=seed,
                       **kwargs)
    return r.input_embeddings, r.output_embeddings


def _take(texts: Iterable[str], max_bytes: int | None) -> list[str]:
    """The first ``max_bytes`` UTF-8 bytes of ``texts`` (the last text cut at a character boundary)."""
    if isinstance(texts, str):
        texts = [texts]
    out, total = [], 0
    for t in texts:
        if not t:
            continue
        n = len(t.encode("utf-8"))
        if max_bytes is not None and total + n > max_bytes:
            rest = max_bytes - total
            if rest > 0:
                out.append(t.encode("utf-8")[:rest].decode("utf-8", "ignore"))
            break
        out.append(t)
        total += n
    return out


__all__ = ["AuxEmbeddings", "FocusPlan", "FocusResult", "apply_plan", "focus_embeddings", "focus_plan",
           "focus_transfer", "overlap_ids", "sparsemax", "train_aux_embeddings"]
