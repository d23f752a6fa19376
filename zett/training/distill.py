"""Cross-tokenizer distillation losses: ALM, aligned KL, latent alignment, and gradient-magnitude balancing.

Teacher = the frozen base model with its own embeddings on the base tokenizer's encoding; student = the same frozen
model with the hypernetwork's embeddings on the sampled tokenizer's encoding of the same texts. The chunks of
``zett.training.alignment`` (spans spelling identical bytes on both sides) make the two comparable.

Conventions for the tensors below (B batch, T_t / T_s teacher / student length, C chunks, d width):

- ``lp[b, t]`` = log p(token t | tokens < t): the log-probability of *token* t, stored at the token's own position
  (position 0 has no prediction and is never read);
- ``space[b, t]`` = log p(the token after t starts with whitespace or is special | tokens <= t);
- ``a_t [B, T_t, C]`` / ``a_s [B, T_s, C]`` boolean token-to-chunk matrices, ``chunk_mask [B, C]``.

All functions are plain tensor code; the ``LossTerm`` modules at the end read what they need from the step
context (``zett.training.context.StepContext``).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from zett.training.chunked_ce import IGNORE_INDEX
from zett.training.losses import LossTerm

ALM_KINDS = ("binary_kl", "bce", "abs")
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- log-probabilities
def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends (Mächler 2012)."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _chunk_logprobs(h, weight, bias, targets, space_mask, logit_fn):
    logits = h.float() @ weight.float().T  # [rows, V]
    if bias is not None:
        logits = logits + bias.float()
    if logit_fn is not None:
        logits = logit_fn(logits)
    lse = torch.logsumexp(logits, dim=-1)  # [rows]
    lp = logits.gather(1, targets.clamp(min=0)[:, None])[:, 0] - lse
    lp = torch.where(targets == IGNORE_INDEX, torch.zeros_like(lp), lp)
    if space_mask is None:
        return lp, lp.new_zeros(0)
    space = torch.logsumexp(logits.masked_fill(~space_mask, float("-inf")), dim=-1) - lse
    return lp, space


def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                   bias: torch.Tensor | None = None, space_mask: torch.Tensor | None = None,
                   logit_fn=None, max_chunk_elements: int = 1 << 24):
    """Log-probabilities of ``targets`` and (optionally) of the whitespace/special set, memory-bounded.

    hidden [N, d]; weight [V, d]; targets [N] (``IGNORE_INDEX`` -> 0); bias [V] | None; space_mask [V] bool | None;
    logit_fn: the base model's logit post-processing (scale, soft-cap) or None.
    -> lp [N], space [N] | None (float32). Logits are built ``max_chunk_elements // V`` rows at a time; with
    gradients enabled each chunk is checkpointed, so the [N, V] matrix never exists, not even for backward.
    """
    n, v = hidden.shape[0], weight.shape[0]
    rows = max(1, max_chunk_elements // max(1, v))
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, weight, bias))
    lps, spaces = [], []
    for s in range(0, n, rows):
        args = (hidden[s:s + rows], weight, bias, targets[s:s + rows], space_mask, logit_fn)
        if need_grad:
            lp, sp = checkpoint(_chunk_logprobs, *args, use_reentrant=False)
        else:
            lp, sp = _chunk_logprobs(*args)
        lps.append(lp)
        spaces.append(sp)
    if not lps:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, (None if space_mask is None else empty)
    return torch.cat(lps), (None if space_mask is None else torch.cat(spaces))


def sequence_logprobs(hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      weight: torch.Tensor, bias: torch.Tensor | None = None,
                      space_mask: torch.Tensor | None = None, logit_fn=None, max_chunk_elements: int = 1 << 24):
    """Per-token log-probs of a causal LM's own input sequence, in the layout of this module's docstring.

    hidden [B, T, d] final hidden states; input_ids / attention_mask [B, T] (ids = rows of ``weight``).
    -> lp [B, T] (lp[:, 0] = 0, padding 0), space [B, T] | None (every position, padding included).
    """
    b, t, d = hidden.shape
    nxt = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
    targets = torch.cat([nxt, torch.full_like(input_ids[:, :1], IGNORE_INDEX)], dim=1)  # [B, T]
    lp_next, space = token_logprobs(hidden.reshape(b * t, d), weight, targets.reshape(-1), bias, space_mask,
                                    logit_fn, max_chunk_elements)
    lp_next = lp_next.view(b, t)
    lp = torch.cat([lp_next.new_zeros(b, 1), lp_next[:, :-1]], dim=1)
    return lp, (None if space is None else space.view(b, t))


# ----------------------------------------------------------------------------------------------- chunk helpers
def chunk_sums(values: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Σ over each chunk's tokens. values [B, T], a [B, T, C] -> [B, C]."""
    return torch.einsum("bt,btc->bc", values, a.to(values.dtype))


def chunk_last_token(a: torch.Tensor) -> torch.Tensor:
    """Position of each chunk's last token. a [B, T, C] -> [B, C] long (-1 for an empty chunk)."""
    pos = torch.arange(a.shape[1], device=a.device).view(1, -1, 1)
    return torch.where(a, pos, -1).amax(dim=1)


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, T] or [B, T, d], index [B, C] (-1 allowed, gives row 0) -> [B, C] or [B, C, d]."""
    idx = index.clamp(min=0)
    if x.dim() == 2:
        return x.gather(1, idx)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def predicted_chunks(a_t: torch.Tensor, a_s: torch.Tensor, chunk_mask: torch.Tensor) -> torch.Tensor:
    """Chunks whose every token is predicted on both sides: not holding position 0 (which a causal LM never
    predicts; without a BOS token the first chunk would otherwise compare a partial likelihood). -> [B, C] bool"""
    return chunk_mask & ~a_t[:, 0] & ~a_s[:, 0]


def merge_by_space(values: list[torch.Tensor], end_space: torch.Tensor, valid: torch.Tensor,
                   chunk_mask: torch.Tensor, threshold: float):
    """Merge consecutive chunks until one ends where the teacher expects a token boundary with probability >
    ``threshold`` (reference mode ``merge_by_space_prob``).

    values: [B, C] tensors summed per merged group; end_space [B, C]: the teacher's space log-prob at each chunk's
    end; valid / chunk_mask [B, C]. A group is kept when it ends at such a boundary and all its chunks are valid;
    chunks after the last boundary are dropped. -> (merged values [B, G], kept [B, G], ends [B, C] bool) with
    G = C (groups right-padded); ``ends`` marks the chunk closing each group (to gather end quantities).
    """
    keep = chunk_mask & (end_space.exp() > threshold)  # [B, C]
    group = torch.cumsum(keep.long(), dim=1) - keep.long()  # exclusive: the group a chunk falls into
    c = chunk_mask.shape[1]
    member = F.one_hot(group.clamp(max=c), c + 1)[..., :c].float() * chunk_mask.unsqueeze(-1)  # [B, C, G]
    merged = [torch.einsum("bc,bcg->bg", v, member) for v in values]
    n_groups = keep.sum(1, keepdim=True)  # [B, 1]
    bad = torch.einsum("bc,bcg->bg", (chunk_mask & ~valid).float(), member)
    kept = (torch.arange(c, device=keep.device).unsqueeze(0) < n_groups) & (bad == 0)
    return merged, kept, keep


def group_end_values(x: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Values at each group's closing chunk, left-packed. x [B, C], ends [B, C] bool -> [B, C]."""
    order = torch.argsort((~ends).to(torch.int8), dim=1, stable=True)  # closing chunks first, in order
    return x.gather(1, order)


# --------------------------------------------------------------------------------------------------- ALM loss
def binary_distance(log_a: torch.Tensor, log_b: torch.Tensor, kind: str = "binary_kl") -> torch.Tensor:
    """Distance between Bernoulli(a) (teacher) and Bernoulli(b) (student), given log a, log b < 0. Elementwise.

    ``bce``: -[a log b + (1 - a) log(1 - b)]; ``binary_kl``: bce minus the teacher's binary entropy (>= 0, zero
    iff a = b; same gradient); ``abs``: |log a - log b| (the reference's logged "legacy" metric).
    """
    if kind == "abs":
        return (log_a - log_b).abs()
    a = log_a.exp()
    bce = -(a * log_b + (1 - a) * log1mexp(log_b))
    if kind == "bce":
        return bce
    if kind == "binary_kl":
        entropy = -(a * log_a + (1 - a) * log1mexp(log_a))
        return bce - entropy
    raise ValueError(f"ALM distance {kind!r} is not supported; use one of {ALM_KINDS}")


def alm_loss(lp_t: torch.Tensor, lp_s: torch.Tensor, a_t: torch.Tensor, a_s: torch.Tensor,
             chunk_mask: torch.Tensor, space_t: torch.Tensor | None = None, space_s: torch.Tensor | None = None,
             temperature: float = 100.0, merge_by_space_prob: bool = False, append_space: bool = False,
             threshold: float = 0.1, kind: str = "binary_kl", eps: float = 1e-6):
    """ALM: match chunk likelihoods of teacher and student by a binary distance at a temperature.

    lp_t [B, T_t], lp_s [B, T_s] token log-probs; a_t, a_s, chunk_mask: the alignment; space_t / space_s
    [B, T_t] / [B, T_s] space log-probs (needed by ``merge_by_space_prob`` / ``append_space``).
    L_X[c] = Σ_{tokens of c} lp_X; with ``append_space`` L_X[c] += space_X[last token of c] ("these bytes, then a
    token boundary"); then ℓ_c = distance(exp(L_T/T - ε), exp(L_S/T - ε)), averaged over the chunks kept.
    -> (loss scalar, stats dict of detached scalars: chunks, abs (mean |L_T - L_S|)).
    """
    if (merge_by_space_prob or append_space) and (space_t is None or space_s is None):
        raise ValueError("ALM modes merge_by_space_prob / append_space need the space log-probs of both sides")
    valid = predicted_chunks(a_t, a_s, chunk_mask)
    big_t = chunk_sums(lp_t.float(), a_t).clamp(max=0.0)  # [B, C]
    big_s = chunk_sums(lp_s.float(), a_s).clamp(max=0.0)
    if merge_by_space_prob or append_space:
        end_t = _gather_tokens(space_t.float(), chunk_last_token(a_t))  # [B, C]
        end_s = _gather_tokens(space_s.float(), chunk_last_token(a_s))
    if merge_by_space_prob:
        (big_t, big_s), valid, ends = merge_by_space([big_t, big_s], end_t.detach(), valid, chunk_mask, threshold)
        end_t, end_s = group_end_values(end_t, ends), group_end_values(end_s, ends)
    if append_space:
        big_t, big_s = big_t + end_t, big_s + end_s
    log_a = big_t.detach() / temperature - eps  # the teacher is a target, never trained
    log_b = big_s / temperature - eps
    dist = binary_distance(log_a, log_b, kind)
    w = valid.float()
    n = w.sum()
    loss = (dist * w).sum() / n.clamp(min=1.0)
    with torch.no_grad():
        gap = ((big_t - big_s).abs() * w).sum() / n.clamp(min=1.0)
    return loss, {"chunks": n.detach(), "abs": gap.detach()}


# ---------------------------------------------------------------------------------------------- aligned KL
def one_to_one_positions(a_t: torch.Tensor, a_s: torch.Tensor, chunk_mask: torch.Tensor):
    """Token pairs that form a chunk alone on both sides (so they spell the same bytes after the same bytes),
    excluding position 0. -> (batch [K], teacher position [K], student position [K]) of those tokens."""
    single = predicted_chunks(a_t, a_s, chunk_mask) & (a_t.sum(1) == 1) & (a_s.sum(1) == 1)  # [B, C]
    b, c = torch.nonzero(single, as_tuple=True)
    pos_t = chunk_last_token(a_t)[b, c]
    pos_s = chunk_last_token(a_s)[b, c]
    return b, pos_t, pos_s


def shared_kl(logits_t: torch.Tensor, logits_s: torch.Tensor, shared_t: torch.Tensor,
              shared_s: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over the tokens both vocabularies spell identically, plus one "other" event.

    logits_t [K, V_t], logits_s [K, V_s]; shared_t [M] / shared_s [M]: ids of the same M byte strings in each
    vocabulary. Both next-token distributions are coarsened onto the same M + 1 events ("the next token is string
    m" for each shared string, and "anything else"), which both models assign a probability to, so the KL is
    proper (>= 0, zero iff the coarsened distributions agree). -> [K]
    """
    lt = torch.log_softmax(logits_t.float(), dim=-1)[:, shared_t]  # [K, M]
    ls = torch.log_softmax(logits_s.float(), dim=-1)[:, shared_s]
    rest_t = log1mexp(torch.logsumexp(lt, dim=-1).clamp(max=-1e-6))  # [K]
    rest_s = log1mexp(torch.logsumexp(ls, dim=-1).clamp(max=-1e-6))
    lt = torch.cat([lt, rest_t[:, None]], dim=1)
    ls = torch.cat([ls, rest_s[:, None]], dim=1)
    return (lt.exp() * (lt - ls)).sum(-1)


# ------------------------------------------------------------------------------------------------- latents
def latent_loss(h_t: torch.Tensor, h_s: torch.Tensor, a_t: torch.Tensor, a_s: torch.Tensor,
                chunk_mask: torch.Tensor, eps: float = 1e-6, scale: torch.Tensor | None = None,
                skip_first: bool = False) -> torch.Tensor:
    """Hidden states at chunk ends: squared error per channel, divided by a per-channel scale, averaged over
    channels and chunks. h_t [B, T_t, d], h_s [B, T_s, d]. scale [d]: the teacher's mean square per channel (a
    teacher cache's, over its whole span set), or None: over the batch's chunk ends. skip_first: leave out chunks
    ending at the teacher's first token (its attention-sink state in early layers)."""
    last_t = chunk_last_token(a_t)  # [B, C]
    mask = chunk_mask & (last_t > 0) if skip_first else chunk_mask
    ht = _gather_tokens(h_t, last_t)[mask].float()  # [K, d]
    hs = _gather_tokens(h_s, chunk_last_token(a_s))[mask].float()
    if ht.shape[0] == 0:
        return h_s.sum() * 0.0
    scale = (ht.detach().pow(2).mean(0) if scale is None else scale.float()) + eps  # [d]
    return ((hs - ht.detach()).pow(2) / scale).mean()


# ------------------------------------------------------------------------------------------ loss balancing
def gradmag_weights(losses: list[torch.Tensor], params: list[torch.Tensor], eps: float = 1e-8,
                    reduce=None) -> torch.Tensor:
    """Weights that give every loss an equal gradient norm on ``params`` (the hypernetwork's last layer).

    w_k = 1 / (||∇_params L_k|| + eps), detached, normalised to sum 1; a loss with no gradient there gets 0
    (it cannot be balanced and would otherwise take all the weight). Costs one extra backward per loss (from the
    loss down to ``params`` only: the hypernetwork's body is not traversed). reduce: e.g. a mean over DDP ranks,
    applied to the [K] norms so that every rank uses the same weights. -> [K]
    """
    params = [p for p in params if p.requires_grad]
    norms = []
    for loss in losses:
        if not loss.requires_grad or not params:
            norms.append(0.0)
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        sq = sum(float(g.float().pow(2).sum()) for g in grads if g is not None)
        norms.append(math.sqrt(sq))
    norm = torch.tensor(norms, dtype=torch.float64)
    if reduce is not None:
        device = params[0].device if params else None
        norm = reduce(norm.float().to(device)).double().cpu()
    w = torch.where(norm > 0, 1.0 / (norm + eps), torch.zeros_like(norm))
    if w.sum() == 0:
        w = torch.ones_like(w)
    return (w / w.sum()).float()


# ------------------------------------------------------------------------------------------------ loss terms
class ALMLoss(LossTerm):
    """``alm``: chunk log-likelihoods of teacher and student matched by a binary distance at ``temperature``.

    chunks: alignment granularity (``unconstrained`` | ``space``); mode: ``""`` or any of ``merge_by_space_prob``,
    ``append_space`` joined by ``+`` (the reference's recommended setting is both, with unconstrained chunks and
    threshold 0.1); kind: ``binary_kl`` (default, 0 at the optimum) | ``bce`` | ``abs``.
    """

    def __init__(self, weight: float = 1.0, start_step: int = 0, end_step: int | None = None,
                 temperature: float = 100.0, chunks: str = "unconstrained", mode: str = "",
                 threshold: float = 0.1, kind: str = "binary_kl"):
        super().__init__(weight, start_step, end_step)
        modes = {m for m in str(mode or "").split("+") if m}
        unknown = modes - {"merge_by_space_prob", "append_space"}
        if unknown:
            raise ValueError(f"unknown ALM mode(s) {sorted(unknown)} in {mode!r}; use merge_by_space_prob and/or "
                             "append_space joined by '+'")
        if kind not in ALM_KINDS:
            raise ValueError(f"ALM kind {kind!r} is not supported; use one of {ALM_KINDS}")
        if temperature <= 0:
            raise ValueError(f"ALM temperature must be > 0, got {temperature}")
        self.temperature, self.chunks, self.threshold, self.kind = float(temperature), chunks, threshold, kind
        self.merge = "merge_by_space_prob" in modes
        self.append = "append_space" in modes
        self.last_stats: dict = {}
        self._empty_steps = torch.zeros((), dtype=torch.long)  # consecutive steps comparing no chunk (device)
        self._calls, self._warned = 0, False

    def forward(self, ctx) -> torch.Tensor:
        a_t, a_s, mask = ctx.alignment(self.chunks)
        space = self.merge or self.append
        lp_t, sp_t = ctx.teacher_logprobs(space)
        lp_s, sp_s = ctx.student_logprobs(space)
        loss, self.last_stats = alm_loss(lp_t, lp_s, a_t, a_s, mask, sp_t, sp_s, self.temperature, self.merge,
                                         self.append, self.threshold, self.kind)
        self._check_chunks(self.last_stats["chunks"], mask.sum())
        return loss

    def _check_chunks(self, compared, aligned, patience: int = 10) -> None:
        """Warn once when ALM has compared nothing for ``patience`` steps although the texts aligned: with
        ``merge_by_space_prob`` a teacher that never puts > ``threshold`` on a boundary (e.g. a random tiny model)
        leaves no group to compare, and the term silently contributes nothing.

        compared / aligned: chunk counts of this step (tensors or ints). The streak is counted on their device and
        read on the host every ``patience`` calls only, so the training step does not wait for the device."""
        compared, aligned = torch.as_tensor(compared), torch.as_tensor(aligned)
        empty = (compared == 0) & (aligned > 0)
        streak = self._empty_steps.to(compared.device)
        self._empty_steps = torch.where(empty, streak + 1, torch.zeros_like(streak))
        self._calls += 1
        if self._calls % patience:
            return
        stuck = int(self._empty_steps) >= patience
        if stuck and not self._warned:
            hint = (f"lower loss.terms.<alm>.threshold (now {self.threshold}; 0 merges nothing away)"
                    if self.merge else "check the alignment (data.block_size too short?)")
            log.warning("ALM compared no chunk in %d consecutive steps although %d chunks aligned: it contributes "
                        "nothing to training; %s", int(self._empty_steps), int(aligned), hint)
        self._warned = stuck


class _ChunkTerm(LossTerm):
    """A loss term over the teacher/student alignment at one chunk granularity (``chunks``)."""

    def __init__(self, weight: float = 1.0, start_step: int = 0, end_step: int | None = None,
                 chunks: str = "unconstrained"):
        super().__init__(weight, start_step, end_step)
        self.chunks = chunks


class AlignedKLLoss(_ChunkTerm):
    """``kl_aligned``: KL(teacher || student) of the next-token distributions at positions where both
    tokenizations predict a one-token chunk (same bytes before, same bytes next), coarsened onto the tokens the
    two vocabularies share (``shared_kl``), averaged over those positions."""

    def forward(self, ctx) -> torch.Tensor:
        a_t, a_s, mask = ctx.alignment(self.chunks)
        b, pos_t, pos_s = one_to_one_positions(a_t, a_s, mask)
        if b.numel() == 0:
            return ctx.zero()
        # the distribution over token p is predicted at position p - 1
        logits_t = ctx.teacher_logits_at(b, pos_t - 1)  # [K, V_base]
        logits_s = ctx.student_logits_at(b, pos_s - 1)  # [K, S]
        rows, base_ids = ctx.shared_rows()
        return shared_kl(logits_t, logits_s, base_ids, rows).mean()


class LatentLoss(_ChunkTerm):
    """``latents``: hidden states of teacher and student at chunk ends (``latent_loss``).

    layer: None = the final hidden states of the full model; k = the states after the first k layers, with only
    those layers run on the student side (the cut model) and the teacher's states read from the run's teacher
    cache (``zett.training.teacher_cache``) when there is one. At a layer the first chunk is left out (the
    attention sink) and channels are scaled by the cache's per-channel mean square when there is a cache."""

    def __init__(self, weight: float = 1.0, start_step: int = 0, end_step: int | None = None,
                 chunks: str = "unconstrained", layer: int | None = None):
        super().__init__(weight, start_step, end_step, chunks)
        if layer is not None and int(layer) < 1:
            raise ValueError(f"loss.layer={layer} is invalid: give a layer >= 1 (states after that many layers)")
        self.layer = None if layer is None else int(layer)

    def forward(self, ctx) -> torch.Tensor:
        a_t, a_s, mask = ctx.alignment(self.chunks)
        if self.layer is None:
            return latent_loss(ctx.teacher_hidden, ctx.hidden, a_t, a_s, mask)
        return latent_loss(ctx.teacher_hidden_at(self.layer), ctx.hidden_at(self.layer), a_t, a_s, mask,
                           scale=ctx.latent_scale(self.layer), skip_first=True)
