"""Which vocabulary rows the hypernetwork predicts in a step, and in what order.

Two cost savers (ARCHITECTURE.md, cost model):

- *Subsampling*: predict only the tokens occurring in the batch, the special tokens and a uniform sample of the rest
  (``n_subsample`` rows in all, as the original's ``n_token_subsample``); the softmax then runs over this subset and
  input ids / labels are remapped into it.
- *Bucketing*: order the rows by piece count so that each contiguous bucket is run through the hypernetwork with
  its own (short) surface length instead of padding every token to ``max_pieces``. The hypernetwork has no
  cross-token interaction, so the result is the same.
- *Fixed bucket shapes* (``chunks > 0``): instead of one bucket per piece count (row counts that change every
  step), the sorted rows are cut into ``chunks`` buckets of one row count ``R`` chosen from the number of rows
  alone (``fixed_row_count``), each as wide as its longest token. The last bucket runs past the real rows;
  ``ZettTrainingModule.predict`` pads it to ``R`` rows and drops the padding's predictions. So every hypernetwork
  call has shape [R, w] with w in 1..max_pieces: the same few shapes step after step (``torch.compile`` and CUDA
  graphs need repeating shapes), at the price of some padding inside each bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class VocabSelection:
    """ids [S] full-vocabulary ids in prediction order; remap [V] full id -> row in ``ids`` (0 when not selected);
    buckets [n, 3] rows (start, end, pieces) over ``ids``; logit_offset [S] or None (see ``select_vocab``)."""

    ids: torch.Tensor
    remap: torch.Tensor
    buckets: torch.Tensor
    logit_offset: torch.Tensor | None = None


def fixed_row_count(n_rows: int, chunks: int, row_multiple: int = 64) -> int:
    """Rows per bucket of the fixed layout: ceil(n_rows / chunks) rounded up to a multiple of ``row_multiple``, so
    that vocabularies of nearly the same size (a subsample topped up by a batch's own tokens) share one shape."""
    per = -(-max(int(n_rows), 1) // int(chunks))
    return -(-per // int(row_multiple)) * int(row_multiple)


def buckets_by_length(lengths: torch.Tensor, bucket: bool, chunks: int = 0, row_multiple: int = 64) -> torch.Tensor:
    """Bucket layout [n, 3] rows (start, end, pieces) over ``lengths`` [S] (already sorted when ``bucket``).

    chunks 0: contiguous runs of equal piece count. chunks > 0 (with ``bucket``): buckets of
    ``fixed_row_count(S, chunks, row_multiple)`` rows each, ``pieces`` = the longest token in the bucket; the last
    bucket's ``end`` may pass S (its rows past S are padding, see the module docstring). Host data only.
    """
    n = lengths.numel()
    if n == 0:
        return torch.zeros(0, 3, dtype=torch.long)
    if not bucket:
        return torch.tensor([[0, n, int(lengths.max().clamp(min=1))]], dtype=torch.long)
    if chunks:
        rows = fixed_row_count(n, chunks, row_multiple)
        starts = torch.arange(0, n, rows)
        last = (starts + rows).clamp(max=n) - 1                      # last real row of each bucket
        return torch.stack([starts, starts + rows, lengths[last].clamp(min=1)], dim=1)
    change = torch.nonzero(lengths[1:] != lengths[:-1]).flatten() + 1
    starts = torch.cat([torch.zeros(1, dtype=torch.long), change])
    ends = torch.cat([change, torch.tensor([n])])
    return torch.stack([starts, ends, lengths[starts].clamp(min=1)], dim=1)


def select_vocab(lengths: torch.Tensor, special: torch.Tensor, used_ids: torch.Tensor | None = None,
                 n_subsample: int | None = None, bucket: bool = True,
                 generator: torch.Generator | None = None, chunks: int = 0) -> VocabSelection:
    """Choose and order the rows to predict.

    lengths [V] pieces per token; special [V] (>= 0 for special tokens); used_ids: ids occurring in the batch.
    Without ``n_subsample`` (or when it is >= V) every row is kept. chunks: the bucket layout
    (``buckets_by_length``; 0 = one bucket per piece count, > 0 = that many buckets of a fixed row count).

    Subsampling makes the softmax run over a biased subset: every target is in it, but most competitors are not,
    so an unconstrained model learns to raise all logits. Each uniformly sampled row therefore stands for
    ``(V - forced) / sampled`` rows: ``logit_offset`` [S] adds the log of that weight to their logits (0 for the
    batch's own tokens and specials), which makes the subset's partition function an unbiased estimate of the
    full one (sampled softmax with a log-Q correction).
    """
    v = lengths.numel()
    offset = None
    if n_subsample and n_subsample < v:
        keep = torch.zeros(v, dtype=torch.bool)
        if used_ids is not None:
            keep[used_ids[(used_ids >= 0) & (used_ids < v)]] = True
        keep |= special >= 0
        forced = keep.clone()
        n_extra = int(n_subsample) - int(keep.sum())
        if n_extra > 0:
            rest = torch.nonzero(~keep).flatten()
            keep[rest[torch.randperm(rest.numel(), generator=generator)[:n_extra]]] = True
        ids = torch.nonzero(keep).flatten()
        n_sampled = int(keep.sum() - forced.sum())
        if n_sampled > 0:
            weight = (v - int(forced.sum())) / n_sampled
            offset = torch.where(forced[ids], 0.0, float(torch.tensor(weight).log()))
    else:
        ids = torch.arange(v)
    if bucket:
        order = torch.argsort(lengths[ids], stable=True)
        ids = ids[order]
        offset = None if offset is None else offset[order]
    remap = torch.zeros(v, dtype=torch.long)
    remap[ids] = torch.arange(ids.numel())
    return VocabSelection(ids, remap, buckets_by_length(lengths[ids], bucket, chunks), offset)
