"""Loss terms: one weighted ``nn.Module`` each, chosen and weighted by the ``loss`` config group.

A term receives a ``StepContext`` (``zett.training.context``), which computes the hypernetwork's predictions and the
frozen base model's hidden states lazily and at most once per step, so terms that do not need the language model
(lexical, identity) cost nothing extra. Adding an objective = a ``LossTerm`` subclass here (or anywhere importable)
plus a yaml entry under ``loss.terms``. The step's loss is ``Σ weight · term`` over the terms active at that step
(``start_step <= step < end_step``).
"""

from __future__ import annotations

import torch
from torch import nn


class LossTerm(nn.Module):
    """Base class. ``weight`` scales the term; it is active for ``start_step <= step < end_step``."""

    def __init__(self, weight: float = 1.0, start_step: int = 0, end_step: int | None = None):
        super().__init__()
        self.weight = float(weight)
        self.start_step = int(start_step or 0)
        self.end_step = None if end_step is None else int(end_step)

    def active(self, step: int) -> bool:
        return step >= self.start_step and (self.end_step is None or step < self.end_step)

    def forward(self, ctx) -> torch.Tensor:  # scalar, unweighted
        raise NotImplementedError


class CausalLMLoss(LossTerm):
    """Next-token cross-entropy of the frozen base model fed the predicted embeddings (zett-method.md §3.1),
    averaged over predicted positions; the softmax runs over the step's (sub)vocabulary, chunked."""

    objective = "clm"

    def forward(self, ctx) -> torch.Tensor:
        nll, count = ctx.token_nll()
        return nll.sum() / count.clamp(min=1)


class MaskedLMLoss(CausalLMLoss):
    """Cross-entropy at the masked positions (BERT-style bases; the collator does the 15% masking)."""

    objective = "mlm"


def _normalised_sq_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Σ_t ||pred_t - target_t||² / |T| / mean_t ||target_t||   (scale-free across base models)
    sq = (pred.float() - target.float()).pow(2).sum(-1)
    return sq.sum() / (sq.numel() + 1e-8) / target.float().norm(dim=-1).mean().clamp(min=1e-8)


def _masked_normalised_sq_error(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``_normalised_sq_error`` over the rows where ``mask`` [S] is True (0 when none is)."""
    w = mask.float()
    n = w.sum()
    sq = (pred.float() - target.float()).pow(2).sum(-1)
    norm = (target.float().norm(dim=-1) * w).sum() / n.clamp(min=1)
    return (sq * w).sum() / (n + 1e-8) / norm.clamp(min=1e-8)


class LexicalLoss(LossTerm):
    """Auxiliary loss toward the base embeddings of tokens shared with the base vocabulary (zett-method.md §3.2):
    tokens whose surface form is a single base piece (specials excluded: they are copied anyway). Input and output
    sides are averaged for untied bases."""

    def forward(self, ctx) -> torch.Tensor:
        # Masked over all rows rather than indexing the shared ones: no data-dependent shape, no host sync.
        shared, base_ids = ctx.shared_mask()  # [S] bool, [S]
        e_in, e_out, _ = ctx.embeddings
        d = e_in.shape[1]
        src = ctx.source[base_ids]  # [S, d] tied, [S, 2d] untied (in ‖ out)
        loss = _masked_normalised_sq_error(e_in, src[:, :d], shared)
        if not ctx.tied:
            loss = 0.5 * (loss + _masked_normalised_sq_error(e_out, src[:, d:], shared))
        return loss


class IdentityLoss(LossTerm):
    """Identity warm-up (zett-method.md §3.3): predict base tokens from themselves (surface length 1) and regress
    onto the base embeddings with unnormalised MSE (Σ over dimensions, mean over tokens). ``n_subsample`` random base
    ids per step. Meant for the first ``end_step`` steps of the non-residual hypernetwork."""

    def __init__(self, weight: float = 1.0, start_step: int = 0, end_step: int | None = None,
                 n_subsample: int = 16384):
        super().__init__(weight, start_step, end_step)
        self.n_subsample = int(n_subsample)

    def forward(self, ctx) -> torch.Tensor:
        ids = ctx.random_base_ids(self.n_subsample)  # [n]
        e_in, e_out, _ = ctx.predict_base_tokens(ids)
        d = e_in.shape[1]
        src = ctx.source[ids]
        loss = (e_in.float() - src[:, :d].float()).pow(2).sum(-1).mean()
        if not ctx.tied:
            loss = 0.5 * (loss + (e_out.float() - src[:, d:].float()).pow(2).sum(-1).mean())
        return loss
