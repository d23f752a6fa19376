"""Memory-bounded cross-entropy against a (predicted) output-embedding matrix.

``logits = hidden @ weight.T + bias`` for a vocabulary of V rows would be a [N, V] tensor; for N = 16k positions and
V = 32k that is 2 GiB in float32, and autograd would keep it for the backward pass. Here the logits are built one
chunk of positions at a time in the forward pass (keeping only the per-position log-sum-exp, [N]) and rebuilt chunk by
chunk in the backward pass, so peak memory is ``chunk_size * V`` floats whatever N is.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def _chunk_rows(n_vocab: int, chunk_size: int | None, max_chunk_elements: int) -> int:
    if chunk_size:
        return max(1, int(chunk_size))
    return max(1, max_chunk_elements // max(1, n_vocab))


def _no_autocast(device: torch.device):
    # The softmax must run in float32 even inside a bf16 autocast region (a 32k-way logsumexp in bf16 is too coarse).
    return torch.autocast(device_type=device.type, enabled=False)


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, rows, matmul_dtype=torch.float32):
        with _no_autocast(hidden.device):
            return _ChunkedCrossEntropy._forward(ctx, hidden, weight, bias, targets, rows, matmul_dtype)

    @staticmethod
    def backward(ctx, grad_nll):
        with _no_autocast(grad_nll.device):
            return _ChunkedCrossEntropy._backward(ctx, grad_nll)

    @staticmethod
    def _forward(ctx, hidden, weight, bias, targets, rows, matmul_dtype):
        # hidden [N, d] (any float dtype), weight [V, d], bias [V] | None, targets [N] (IGNORE_INDEX = skip)
        n = hidden.shape[0]
        w = weight.to(matmul_dtype)
        b = bias.float() if bias is not None else None
        nll = torch.zeros(n, dtype=torch.float32, device=hidden.device)  # [N]
        lse = torch.zeros(n, dtype=torch.float32, device=hidden.device)  # [N]
        valid = targets != IGNORE_INDEX  # [N]
        safe_targets = targets.clamp(min=0)
        for s in range(0, n, rows):
            e = min(n, s + rows)
            logits = (hidden[s:e].to(matmul_dtype) @ w.T).float()  # [rows, V]
            if b is not None:
                logits = logits + b
            chunk_lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, safe_targets[s:e, None])[:, 0]
            lse[s:e] = chunk_lse
            nll[s:e] = (chunk_lse - picked) * valid[s:e]
        ctx.save_for_backward(hidden, weight, bias if bias is not None else torch.empty(0), targets, lse)
        ctx.has_bias = bias is not None
        ctx.rows, ctx.matmul_dtype = rows, matmul_dtype
        return nll

    @staticmethod
    def _backward(ctx, grad_nll):  # grad_nll [N]
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        mm = ctx.matmul_dtype
        w = weight.to(mm)
        b = bias.float() if ctx.has_bias else None
        valid = targets != IGNORE_INDEX
        safe_targets = targets.clamp(min=0)
        scale = grad_nll.float() * valid  # [N]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        grad_h = torch.zeros_like(hidden, dtype=torch.float32) if need_h else None
        grad_w = torch.zeros_like(w, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(b) if need_b else None
        n = hidden.shape[0]
        for s in range(0, n, ctx.rows):
            e = min(n, s + ctx.rows)
            h = hidden[s:e].to(mm)
            logits = (h @ w.T).float()
            if b is not None:
                logits = logits + b
            # d nll / d logits = softmax - onehot(target), scaled by the incoming gradient of each position
            g = torch.exp(logits - lse[s:e, None])
            g[torch.arange(e - s, device=g.device), safe_targets[s:e]] -= 1.0
            g *= scale[s:e, None]
            if need_h:
                grad_h[s:e] = g.to(mm) @ w
            if need_w:
                if mm == torch.float32:
                    grad_w.addmm_(g.T, h)
                else:  # bf16 product, float32 accumulation over chunks
                    grad_w += (g.to(mm).T @ h).float()
            if need_b:
                grad_b += g.sum(0)
        return (
            grad_h.to(hidden.dtype) if need_h else None,
            grad_w.to(weight.dtype) if need_w else None,
            grad_b.to(bias.dtype) if need_b else None,
            None,
            None,
            None,
        )


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          bias: torch.Tensor | None = None, chunk_size: int | None = None,
                          max_chunk_elements: int = 1 << 24, matmul_dtype: torch.dtype | None = None
                          ) -> torch.Tensor:
    """Per-position negative log-likelihood ``-log softmax(hidden @ weight.T + bias)[target]``.

    hidden  [N, d]  final hidden states (e.g. bfloat16 from a frozen base; the softmax runs in float32)
    weight  [V, d]  output embeddings; bias [V] or None
    targets [N]     target ids in [0, V); ``IGNORE_INDEX`` (-100) positions give 0 and no gradient
    Returns nll [N] (float32). Peak extra memory: ``rows * V`` floats with ``rows = chunk_size`` or
    ``max_chunk_elements // V``. matmul_dtype: dtype of the hidden @ weight products (None = float32); the
    softmax statistics are float32 whatever it is.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"chunked_cross_entropy: hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)} "
                         "must be [N, d] and [V, d]")
    rows = _chunk_rows(weight.shape[0], chunk_size, max_chunk_elements)
    return _ChunkedCrossEntropy.apply(hidden, weight, bias, targets, rows, matmul_dtype or torch.float32)
