"""Predict a whole vocabulary's embedding rows in memory-bounded chunks (hypernetwork or FVT).

Tokens are grouped by piece count and processed at most ``chunk_size`` at a time, each chunk cut to its own
width, so a vocabulary of mostly 1-3-piece tokens never pays for 7-piece padding. Peak memory beyond the
output matrices is one chunk's activations, whatever the vocabulary size.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from zett.models.pieces import copy_special_rows, fvt_mean


@dataclass
class Rows:
    """Predicted rows for a target vocabulary."""

    input_embeddings: torch.Tensor                 # [V, d]
    output_embeddings: torch.Tensor | None         # [V, d]; None for tied bases
    bias: torch.Tensor | None = None               # [V]


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tok", unit_scale=True, disable=not enabled, file=sys.stderr,
                leave=False)


def length_chunks(surface_mask: torch.Tensor, chunk_size: int) -> list[torch.Tensor]:
    """Token indices in chunks of at most ``chunk_size`` whose tokens all have the same piece count, so no chunk
    pays for padding. surface_mask # [V, L]"""
    lengths = surface_mask.sum(1)
    order = torch.argsort(lengths, stable=True)
    counts = torch.bincount(lengths, minlength=surface_mask.shape[1] + 1).tolist()
    chunks, start = [], 0
    for count in counts:
        for offset in range(0, count, chunk_size):
            chunks.append(order[start + offset:start + min(offset + chunk_size, count)])
        start += count
    return chunks


def chunked(fn: Callable, surface_ids: torch.Tensor, surface_mask: torch.Tensor, special: torch.Tensor | None,
            chunk_size: int = 8192, progress: bool = True, desc: str = "predicting embeddings",
            overflow_ids: torch.Tensor | None = None, overflow_mask: torch.Tensor | None = None) -> Rows:
    """Run ``fn(ids [C, L], mask [C, L], special [C] | None, overflow_ids [C, E], overflow_mask [C, E])
    -> (in [C, d], out [C, d] | None, bias [C] | None)`` over the vocabulary in length-sorted chunks and scatter
    the results back into vocabulary order. overflow_ids/overflow_mask # [V, E]: pieces past ``max_pieces``
    (``SurfaceForms``), cut to each chunk's own width; None = no token is truncated."""
    n_tokens = surface_ids.shape[0]
    if overflow_ids is None:
        overflow_ids = torch.zeros((n_tokens, 0), dtype=surface_ids.dtype)
        overflow_mask = torch.zeros((n_tokens, 0), dtype=torch.bool)
    e_in = e_out = bias = None
    with _progress(n_tokens, desc, progress) as bar:
        for idx in length_chunks(surface_mask, chunk_size):
            width = max(int(surface_mask[idx].sum(1).max()), 1)
            extra = int(overflow_mask[idx].sum(1).max()) if overflow_mask.shape[1] else 0
            chunk_in, chunk_out, chunk_bias = fn(surface_ids[idx, :width], surface_mask[idx, :width],
                                                 None if special is None else special[idx],
                                                 overflow_ids[idx, :extra], overflow_mask[idx, :extra])
            if e_in is None:  # results live on the CPU whatever device computes them
                e_in = torch.empty((n_tokens, chunk_in.shape[1]), dtype=chunk_in.dtype)
                e_out = None if chunk_out is None else torch.empty((n_tokens, chunk_out.shape[1]),
                                                                   dtype=chunk_out.dtype)
                bias = None if chunk_bias is None else torch.empty(n_tokens, dtype=chunk_bias.dtype)
            e_in[idx] = chunk_in.cpu()
            if e_out is not None:
                e_out[idx] = chunk_out.cpu()
            if bias is not None:
                bias[idx] = chunk_bias.cpu()
            bar.update(len(idx))
    return Rows(e_in, e_out, bias)


def predict_hypernet(hypernet, surface_ids, surface_mask, source: torch.Tensor, special=None,
                     source_bias: torch.Tensor | None = None, chunk_size: int = 8192,
                     progress: bool = True, overflow_ids=None, overflow_mask=None) -> Rows:
    """All rows from a hypernetwork, computed on the hypernetwork's device (results on the CPU).
    source # [N_base, n_in]; source_bias # [N_base] or None; overflow_ids/overflow_mask # [V, E] (``chunked``)."""
    tied = hypernet.config.base_tied
    device = next(hypernet.parameters()).device
    source = source.to(device)
    source_bias = None if source_bias is None else source_bias.to(device)

    def fn(ids, mask, spec, ov_ids, ov_mask):
        ids, mask = ids.to(device), mask.to(device)
        spec = None if spec is None else spec.to(device)
        out = hypernet(ids, mask, source, spec, source_bias=source_bias, overflow_ids=ov_ids.to(device),
                       overflow_mask=ov_mask.to(device))
        return out.input_embeddings, None if tied else out.output_embeddings, out.bias

    with torch.no_grad():
        return chunked(fn, surface_ids, surface_mask, special, chunk_size, progress, "hypernetwork",
                       overflow_ids, overflow_mask)


def predict_fvt(surface_ids, surface_mask, source: torch.Tensor, hidden_size: int, special=None,
                source_bias: torch.Tensor | None = None, chunk_size: int = 8192, progress: bool = True,
                overflow_ids=None, overflow_mask=None) -> Rows:
    """All rows by fast vocabulary transfer (mean of all the pieces' base rows; ``zett.models.pieces.fvt_mean``).

    Runs the same code, chunking and dtype as the residual hypernetwork, so an untrained one matches it exactly.
    """
    tied = source.shape[1] == hidden_size
    table = source.float()
    bias_table = None if source_bias is None else source_bias.float()

    def fn(ids, mask, spec, ov_ids, ov_mask):
        rows = copy_special_rows(fvt_mean(source, ids, mask, torch.float32, ov_ids, ov_mask), table, spec)
        bias = None
        if source_bias is not None:
            bias = fvt_mean(source_bias[:, None], ids, mask, torch.float32, ov_ids, ov_mask)[:, 0]
            bias = copy_special_rows(bias, bias_table, spec)
        return rows[:, :hidden_size], None if tied else rows[:, hidden_size:], bias

    with torch.no_grad():
        return chunked(fn, surface_ids, surface_mask, special, chunk_size, progress, "fvt",
                       overflow_ids, overflow_mask)
