"""Surface-form helpers shared by the hypernetwork and the FVT baseline (one code path, so they agree bit-for-bit).

A surface form is a target token written as base-tokenizer pieces: ``surface_ids`` # [V, L] (base ids, right-padded;
ids >= N_base are byte-fallback pieces, byte = id - N_base) and ``surface_mask`` # [V, L] (True on real pieces).
"""

from __future__ import annotations

import weakref

import torch

# id(source) -> (weakref to source, (dtype, version), mean); entries go when their source is freed
_SOURCE_MEANS: dict[int, tuple] = {}


def base_piece_mask(surface_ids: torch.Tensor, surface_mask: torch.Tensor, n_base: int) -> torch.Tensor:
    """Real pieces that are base-vocabulary ids (not byte fallback). # [V, L] bool"""
    return surface_mask.bool() & (surface_ids < n_base)


def source_mean(source: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mean row of ``source`` in ``dtype`` # [n_in], computed once per source tensor (and per in-place change).

    Under ``torch.compile`` the mean is computed in the graph: a cache keyed by ``id()`` would become a dynamo guard
    on a dict entry that may be gone (or belong to another tensor) when the guard is next checked.
    """
    if torch.compiler.is_compiling():
        return source.to(dtype).mean(0)
    key = (dtype, source._version)
    hit = _SOURCE_MEANS.get(id(source))
    if hit is None or hit[0]() is not source or hit[1] != key:
        ident = id(source)
        ref = weakref.ref(source, lambda _, ident=ident: _SOURCE_MEANS.pop(ident, None))
        hit = _SOURCE_MEANS[ident] = (ref, key, source.to(dtype).mean(0))
    return hit[2]


def fvt_mean(source: torch.Tensor, surface_ids: torch.Tensor, surface_mask: torch.Tensor,
             dtype: torch.dtype = torch.float32, overflow_ids: torch.Tensor | None = None,
             overflow_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fast vocabulary transfer: mean of the source rows of *all* of each token's base pieces. # [V, n_in]

    ``source`` # [N_base, n_in]; ``overflow_ids/overflow_mask`` # [V, E]: the pieces past the hypernetwork's
    ``max_pieces`` (``SurfaceForms.overflow_ids``), which count in the mean like the others. Byte-fallback pieces
    are left out of the mean when the token has other pieces; a token with no base piece at all gets the mean of the
    whole source matrix. Computed in ``dtype``.
    """
    if overflow_ids is not None and overflow_ids.shape[1]:
        surface_ids = torch.cat([surface_ids, overflow_ids.to(surface_ids.device)], 1)
        surface_mask = torch.cat([surface_mask.bool(), overflow_mask.to(surface_mask.device).bool()], 1)
    n_base = source.shape[0]
    use = base_piece_mask(surface_ids, surface_mask, n_base)                       # [V, L]
    rows = source[surface_ids.clamp(0, n_base - 1)].to(dtype)                      # [V, L, n_in]
    total = rows.masked_fill(~use[..., None], 0.0).sum(1)                          # [V, n_in]
    count = use.sum(1, keepdim=True)                                               # [V, 1]
    mean = total / count.clamp(min=1).to(dtype)
    return torch.where(count > 0, mean, source_mean(source, dtype))


def copy_special_rows(values: torch.Tensor, table: torch.Tensor, special: torch.Tensor | None) -> torch.Tensor:
    """Rows ``i`` with ``special[i] >= 0`` replaced by ``table[special[i]]``. values # [V, n], table # [N, n]."""
    if special is None:
        return values
    special = special.to(values.device)
    is_special = special >= 0  # no early exit on "none special": that test would read the mask on the host
    picked = table[special.clamp(min=0)].to(values.dtype)
    return torch.where(is_special.view(-1, *([1] * (values.dim() - 1))), picked, values)
