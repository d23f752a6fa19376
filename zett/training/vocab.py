"""Which vocabulary rows the hypernetwork predicts in a step, and in what order.

Two cost savers (ARCHITECTURE.md, cost model):

- *Subsampling*: predict only the tokens occurring in the batch, the special tokens and a uniform sample of the rest
  (``n_subsample`` rows in all, as the original's ``n_token_subsample``); the softmax then runs over this subset and
  input ids / labels are remapped into it.
- *Bucketing*: order the rows by piece count so that each contiguous bucket is run through the hypernetwork with
  its own (short) surface length instead of padding every token to ``max_pieces``. The hypernetwork has no
  cross-token interaction, so the result is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class VocabSelection:
    """ids [S] full-vocabulary ids in prediction order; remap [V] full id -> row in ``ids`` (0 when not selected);
    buckets [n, 3] rows (start, end, pieces) over ``ids``."""

    ids: torch.Tensor
    remap: torch.Tensor
    buckets: torch.Tensor


def buckets_by_length(lengths: torch.Tensor, bucket: bool) -> torch.Tensor:
    """Contiguous runs of equal piece count in ``lengths`` [S] (already sorted when ``bucket``) -> [n, 3]."""
    n = lengths.numel()
    if n == 0:
        return torch.zeros(0, 3, dtype=torch.long)
    if not bucket:
        return torch.tensor([[0, n, int(lengths.max().clamp(min=1))]], dtype=torch.long)
    change = torch.nonzero(lengths[1:] != lengths[:-1]).flatten() + 1
    starts = torch.cat([torch.zeros(1, dtype=torch.long), change])
    ends = torch.cat([change, torch.tensor([n])])
    return torch.stack([starts, ends, lengths[starts].clamp(min=1)], dim=1)


def select_vocab(lengths: torch.Tensor, special: torch.Tensor, used_ids: torch.Tensor | None = None,
                 n_subsample: int | None = None, bucket: bool = True,
                 generator: torch.Generator | None = None) -> VocabSelection:
    """Choose and order the rows to predict.

    lengths [V] pieces per token; special [V] (>= 0 for special tokens); used_ids: ids occurring in the batch.
    Without ``n_subsample`` (or when it is >= V) every row is kept.
    """
    v = lengths.numel()
    if n_subsample and n_subsample < v:
        keep = torch.zeros(v, dtype=torch.bool)
        if used_ids is not None:
            keep[used_ids[(used_ids >= 0) & (used_ids < v)]] = True
        keep |= special >= 0
        n_extra = int(n_subsample) - int(keep.sum())
        if n_extra > 0:
            rest = torch.nonzero(~keep).flatten()
            keep[rest[torch.randperm(rest.numel(), generator=generator)[:n_extra]]] = True
        ids = torch.nonzero(keep).flatten()
    else:
        ids = torch.arange(v)
    if bucket:
        ids = ids[torch.argsort(lengths[ids], stable=True)]
    remap = torch.zeros(v, dtype=torch.long)
    remap[ids] = torch.arange(ids.numel())
    return VocabSelection(ids, remap, buckets_by_length(lengths[ids], bucket))
