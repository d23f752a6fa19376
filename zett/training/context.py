"""Per-step context shared by the loss terms: computes each expensive quantity at most once, only if asked for."""

from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F

from zett.training.chunked_ce import IGNORE_INDEX, chunked_cross_entropy
from zett.training.distill import sequence_logprobs


class StepContext:
    """What loss terms may use in one step.

    embeddings  (E_in [S, d], E_out [S, d], bias [S] | None) for the batch's selected vocabulary rows
    hidden      [B, T, d] frozen base-model hidden states on E_in[input_ids]
    token_nll() per-position NLL of the objective's targets and their count
    source      [N_base, d | 2d] base source embeddings; tied: bool

    Distillation (batches from a collator with a ``TeacherAligner``; see ``zett.training.distill``):
    alignment(mode)        (teacher [B, T_t, C], student [B, T, C], mask [B, C]) token-to-chunk matrices
    teacher_hidden         [B, T_t, d] the frozen base on its own embeddings and tokenization (no grad)
    teacher_logprobs(space) / student_logprobs(space)   (lp [B, T], space log-prob [B, T] | None)
    teacher_logits_at(b, pos) [K, N_base] / student_logits_at(b, pos) [K, S] next-token logits at positions
    hidden_at(k) / teacher_hidden_at(k)   [B, T, d] / [B, T_t, d] states after the first k layers (the cut model;
                           the teacher's from the module's ``teacher_cache`` when the batch has ``span_ids``)
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
        return self.module.predict(b["surface_ids"], b["surface_mask"], b["special"],
                                   b.get("bucket_spans", b.get("buckets")), b.get("overflow_ids"),
                                   b.get("overflow_mask"))

    @cached_property
    def hidden(self) -> torch.Tensor:
        e_in = self.embeddings[0]
        # The collator says on the host whether anything is padded; an all-ones mask equals no mask.
        mask = None if self.batch.get("padded") is False else self.batch["attention_mask"]
        return self.module.base_hidden(e_in[self.batch["input_ids"]], mask)

    def token_nll(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> nll [N] over the predicted positions (0 on ignored ones), count (scalar) of predicted positions."""
        hidden, labels = self.hidden, self.batch["labels"]
        if self.module.objective == "clm":
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        labels = labels.reshape(-1)
        keep = labels != IGNORE_INDEX
        # CLM: every position goes through the cross-entropy (ignored ones give 0 and no gradient): dropping them
        # first would be a data-dependent shape, i.e. a host sync each step, to save the few padded positions.
        # MLM predicts ~15% of the positions: there the selection saves more than the sync costs.
        h = hidden.reshape(-1, hidden.shape[-1])
        if self.module.objective == "mlm":
            h, labels = h[keep], labels[keep]
        e_out, bias = self.student_out()
        nll = self.module.cross_entropy(h, e_out, labels, bias)
        return nll, keep.sum()

    def student_out(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output rows [S, d] and logit bias [S] | None of the step's vocabulary, the bias including the
        sampled-softmax correction when the vocabulary is subsampled."""
        _, e_out, bias = self.embeddings
        offset = self.batch.get("logit_offset")
        if offset is not None:
            bias = offset.to(e_out.dtype) if bias is None else bias + offset.to(bias.dtype)
        return e_out, bias

    # ------------------------------------------------------------------ distillation
    def alignment(self, mode: str):
        """-> (teacher [B, T_t, C], student [B, T, C], mask [B, C]) for chunk granularity ``mode``."""
        al = self.batch.get("alignment")
        if not al or mode not in al:
            have = sorted(al) if al else []
            raise KeyError(f"the batch has no {mode!r} alignment (has {have}); distillation terms need a collator "
                           "built with a TeacherAligner for that mode (train() sets this up from loss.terms)")
        a = al[mode]
        return a["teacher"], a["student"], a["mask"]

    @cached_property
    def teacher_hidden(self) -> torch.Tensor:
        # Same frozen weights, original embeddings: no second copy of the base model.
        with torch.no_grad():
            e_in = self.source[:, : self.module.hypernet.config.base_hidden_size]
            return self.module.base_hidden(e_in[self.batch["teacher_input_ids"]],
                                           self.batch["teacher_attention_mask"])

    def hidden_at(self, layer: int) -> torch.Tensor:
        """[B, T, d] the frozen base cut after ``layer`` layers on E_in[input_ids] (only those layers run)."""
        key = f"_hidden_at_{layer}"
        if key not in self.__dict__:
            mask = None if self.batch.get("padded") is False else self.batch["attention_mask"]
            self.__dict__[key] = self.module.base_hidden_at(self.embeddings[0][self.batch["input_ids"]], mask, layer)
        return self.__dict__[key]

    def teacher_hidden_at(self, layer: int) -> torch.Tensor:
        """[B, T_t, d] the teacher's layer-``layer`` states (no grad): read from the module's teacher cache when
        the batch names its spans (``span_ids``), else computed by the cut model."""
        key = f"_teacher_hidden_at_{layer}"
        if key not in self.__dict__:
            cache, ids = self.module.teacher_cache, self.batch["teacher_input_ids"]
            mask = self.batch["teacher_attention_mask"]
            if cache is not None and "span_ids" in self.batch:
                h = cache.lookup(self.batch["span_ids"], layer, ids, mask)
            else:
                with torch.no_grad():
                    e_in = self.source[:, : self.module.hypernet.config.base_hidden_size]
                    h = self.module.base_hidden_at(e_in[ids], mask, layer)
            self.__dict__[key] = h.detach()
        return self.__dict__[key]

    def latent_scale(self, layer: int) -> torch.Tensor | None:
        """[d] the cached per-channel mean square of the teacher's layer states, or None (no cache)."""
        cache = self.module.teacher_cache
        if cache is None or "span_ids" not in self.batch:
            return None
        return cache.scale(layer).to(self.source.device)

    def _teacher_out(self):
        d = self.teacher_hidden.shape[-1]
        return (self.source if self.tied else self.source[:, d:]), self.module._frozen["source_bias"]

    def teacher_logprobs(self, space: bool = False):
        """Teacher token log-probs [B, T_t] (and space log-probs [B, T_t] when ``space``), no grad, cached."""
        key = "_teacher_lp"
        cached = self.__dict__.get(key)
        if cached is None or (space and cached[1] is None):
            weight, bias = self._teacher_out()
            with torch.no_grad():
                cached = sequence_logprobs(
                    self.teacher_hidden, self.batch["teacher_input_ids"], self.batch["teacher_attention_mask"],
                    weight, bias, self.module.teacher_space_mask() if space else None, self.module.logit_fn,
                    self.module.ce_max_chunk_elements)
            self.__dict__[key] = cached
        return cached[0], (cached[1] if space else None)

    def student_logprobs(self, space: bool = False):
        """Student token log-probs [B, T] (and space log-probs when ``space``) over the step's vocabulary rows."""
        key = "_student_lp"
        cached = self.__dict__.get(key)
        if cached is None or (space and cached[1] is None):
            e_out, bias = self.student_out()
            cached = sequence_logprobs(self.hidden, self.batch["input_ids"], self.batch["attention_mask"], e_out,
                                       bias, self.batch["student_space"] if space else None, self.module.logit_fn,
                                       self.module.ce_max_chunk_elements)
            self.__dict__[key] = cached
        return cached[0], (cached[1] if space else None)

    def teacher_logits_at(self, b: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Teacher next-token logits at (row b, position pos) pairs: [K, N_base], no grad."""
        weight, bias = self._teacher_out()
        with torch.no_grad():
            return self.module.full_logits(self.teacher_hidden[b, pos], weight, bias)

    def student_logits_at(self, b: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Student next-token logits over the step's vocabulary rows: [K, S]."""
        e_out, bias = self.student_out()
        return self.module.full_logits(self.hidden[b, pos], e_out, bias)

    def shared_mask(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[S] bool: rows of the selection that are one base token (not special, not a byte fallback), and [S]
        their base ids (clamped into range where the mask is False). No data-dependent shapes (no host sync)."""
        mask, ids = self.batch["surface_mask"], self.batch["surface_ids"]
        n_base = self.source.shape[0]
        one = (mask.sum(1) == 1) & mask[:, 0] & (self.batch["special"] < 0) & (ids[:, 0] < n_base)
        return one, ids[:, 0].clamp(0, n_base - 1)

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
