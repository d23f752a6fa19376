"""Surface-form helpers shared by the hypernetwork and the FVT baseline (one code path, so they agree bit-for-bit).

A surface form is a target token written as base-tokenizer pieces: ``surface_ids`` # [V, L] (base ids, right-padded;
ids >= N_base are byte-fallback pieces, byte = id - N_base) and ``surface_mask`` # [V, L] (True on real pieces).
"""

from __future__ import annotations

import torch


def base_piece_mask(surface_ids: torch.Tensor, surface_mask: torch.Tensor, n_base: int) -> torch.Tensor:
    """Real pieces that are base-vocabulary ids (not byte fallback). # [V, L] bool"""
    return surface_mask.bool() & (surface_ids < n_base)


def fvt_mean(source: torch.Tensor, surface_ids: torch.Tensor, surface_mask: torch.Tensor,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fast vocabulary transfer: mean of the source rows of each token's base pieces. # [V, n_in]

    ``source`` # [N_base, n_in]. Byte-fallback pieces are left out of the mean when the token has other pieces;
    a token with no base piece at all gets the mean of the whole source matrix. Computed in ``dtype``.
    """
    n_base = source.shape[0]
    use = base_piece_mask(surface_ids, surface_mask, n_base)                       # [V, L]
    rows = source[surface_ids.clamp(0, n_base - 1)].to(dtype)                      # [V, L, n_in]
    total = rows.masked_fill(~use[..., None], 0.0).sum(1)                          # [V, n_in]
    count = use.sum(1, keepdim=True)                                               # [V, 1]
    mean = total / count.clamp(min=1).to(dtype)
    empty = source.to(dtype).mean(0)                                               # [n_in]
    return torch.where(count > 0, mean, empty)


def copy_special_rows(values: torch.Tensor, table: torch.Tensor, special: torch.Tensor | None) -> torch.Tensor:
    """Rows ``i`` with ``special[i] >= 0`` replaced by ``table[special[i]]``. values # [V, n], table # [N, n]."""
    if special is None:
        return values
    special = special.to(values.device)
    is_special = special >= 0
    if not bool(is_special.any()):
        return values
    picked = table[special.clamp(min=0)].to(values.dtype)
    return torch.where(is_special.view(-1, *([1] * (values.dim() - 1))), picked, values)
