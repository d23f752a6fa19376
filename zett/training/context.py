"""Per-step context shared by the loss terms: computes each expensive quantity at most once, only if asked for."""

from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F

from zett.training.chunked_ce import IGNORE_INDEX, chunked_cross_entropy


class StepContext:
    """What loss terms may use in one step.

    embeddings  (E_in [S, d], E_out [S, d], bias [S] | None) for the batch's selected vocabulary rows
    hidden      [B, T, d] frozen base-model hidden states on E_in[input_ids]
    token_nll() per-position NLL of the objective's targets and their count
    source      [N_base, d | 2d] base source embeddings; tied: bool
    """

    def __init__(self, module, batch: dict, step: int, embeddings=None):
        self.module, self.batch, self.step = module, batch, int(step)
        if embeddings is not None:
            self.__dict__["embeddings"] = embeddings

    @property
    def source(self) -> torch.Tensor:
        return self.module.source

    @property
    def tied(self) -> bool:
        return self.module.tied

    def zero(self) -> torch.Tensor:
        return self.module.source.new_zeros(())

    @cached_property
    def embeddings(self):
        b = self.batch
        return self.module.predict(b["surface_ids"], b["surface_mask"], b["special"], b.get("buckets"))

    @cached_property
    def hidden(self) -> torch.Tensor:
        e_in = self.embeddings[0]
        return self.module.base_hidden(e_in[self.batch["input_ids"]], self.batch["attention_mask"])

    def token_nll(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> nll [N] over the predicted positions (0 on ignored ones), count (scalar) of predicted positions."""
        hidden, labels = self.hidden, self.batch["labels"]
        if self.module.objective == "clm":
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        labels = labels.reshape(-1)
        keep = labels != IGNORE_INDEX
        h = hidden.reshape(-1, hidden.shape[-1])[keep]  # drop padding before the expensive part
        targets = labels[keep]
        _, e_out, bias = self.embeddings
        offset = self.batch.get("logit_offset")  # sampled-softmax correction when the vocabulary is subsampled
        if offset is not None:
            bias = offset.to(e_out.dtype) if bias is None else bias + offset.to(bias.dtype)
        nll = self.module.cross_entropy(h, e_out, targets, bias)
        return nll, keep.sum()

    def shared_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the selection that are one base token (not special, not a byte fallback) and their base ids."""
        mask, ids = self.batch["surface_mask"], self.batch["surface_ids"]
        one = (mask.sum(1) == 1) & mask[:, 0] & (self.batch["special"] < 0) & (ids[:, 0] < self.source.shape[0])
        rows = torch.nonzero(one).flatten()
        return rows, ids[rows, 0]

    def random_base_ids(self, n: int) -> torch.Tensor:
        g = torch.Generator(device="cpu")
        g.manual_seed(hash((self.module.seed, self.module.global_rank, self.step)) & 0x7FFFFFFF)
        n_base = self.source.shape[0]
        ids = torch.randperm(n_base, generator=g)[: min(n, n_base)]
        return ids.to(self.source.device)

    def predict_base_tokens(self, ids: torch.Tensor):
        """Predict base tokens from themselves (surface length 1). ids [n] -> (E_in, E_out, bias)."""
        surface = ids[:, None]
        return self.module.predict(surface, torch.ones_like(surface, dtype=torch.bool), None, None)


def plain_cross_entropy(hidden, weight, targets, bias, model) -> torch.Tensor:
    """Unchunked fallback for bases with logit post-processing the chunked kernel does not know (soft-capping)."""
    from zett.models import adapter

    logits = adapter.logits(model, hidden.float(), weight.float(), None if bias is None else bias.float())
    return F.cross_entropy(logits, targets, reduction="none")


__all__ = ["StepContext", "chunked_cross_entropy", "plain_cross_entropy"]
