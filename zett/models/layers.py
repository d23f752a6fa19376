"""Building blocks of the hypernetwork: frozen rescaler, projector block, post-LN encoder layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Rescaler(nn.Module):
    """Frozen per-dimension affine ``w * x + b`` (buffers, so no optimizer ever touches it). x # [..., dim]"""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("weight", torch.ones(dim))
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias

    @torch.no_grad()
    def set_(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight.copy_(weight)
        self.bias.copy_(bias)


class ProjectorBlock(nn.Module):
    """``LN(x + W2 gelu(W1 x))``: a residual two-layer MLP followed by LayerNorm. x # [..., dim]"""

    def __init__(self, dim: int, intermediate: int, eps: float):
        super().__init__()
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.down(F.gelu(self.up(x), approximate="tanh")))


class EncoderLayer(nn.Module):
    """Post-LN transformer encoder layer (BERT/RoBERTa order): attention, add & norm, MLP, add & norm."""

    def __init__(self, dim: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """x # [V, L, dim]; attend # [V, L] bool, True on positions that may be attended to (never all False)."""
        n, length, dim = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :])   # [V, heads, L, hd]
        x = self.attn_norm(x + self.attn_out(att.transpose(1, 2).reshape(n, length, dim)))
        return self.mlp_norm(x + self.down(F.gelu(self.up(x))))
