"""Non-hypernetwork initialisations: ``lexical`` (copy exact byte matches, sample the rest) and ``random``.

Samples come from a Gaussian with the base embeddings' mean and full covariance (input ‖ output ‖ bias jointly
for untied / biased models), seeded, drawn in chunks so memory does not grow with the vocabulary beyond the
output matrix.
"""

from __future__ import annotations

import torch

from zett.models.pieces import copy_special_rows
from zett.tokenizers.bytes import base_id_by_bytes


class GaussianSampler:
    """Rows from N(mean, cov) of a matrix # [N, n]."""

    def __init__(self, matrix: torch.Tensor, seed: int = 0):
        x = matrix.detach().to(torch.float64)
        self.mean = x.mean(0)                                                   # [n]
        centred = x - self.mean
        cov = centred.T @ centred / max(x.shape[0] - 1, 1)                      # [n, n]
        jitter = 1e-6 * float(cov.diagonal().mean().clamp(min=1e-12))
        eye = torch.eye(cov.shape[0], dtype=cov.dtype)
        for _ in range(6):  # degenerate covariances (fewer rows than dims, duplicated rows): add jitter until PD
            factor, info = torch.linalg.cholesky_ex(cov + jitter * eye)
            if int(info) == 0:
                break
            jitter *= 10
        self.factor = factor.to(torch.float32)                                 # [n, n] lower triangular
        self.mean32 = self.mean.to(torch.float32)
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, n: int, chunk: int = 65536) -> torch.Tensor:
        """n rows # [n, dim] float32."""
        out = torch.empty(n, self.factor.shape[0])
        for start in range(0, n, chunk):
            z = torch.randn(min(chunk, n - start), self.factor.shape[0], generator=self.gen)
            out[start:start + chunk] = self.mean32 + z @ self.factor.T
        return out


def _joint(source: torch.Tensor, source_bias: torch.Tensor | None) -> torch.Tensor:
    source = source.detach().float()
    return source if source_bias is None else torch.cat([source, source_bias.detach().float()[:, None]], 1)


def lexical_rows(target_bytes: list, base_bytes: list, source: torch.Tensor, special: torch.Tensor,
                 source_bias: torch.Tensor | None = None, seed: int = 0, avoid: set | None = None):
    """Rows # [V, n_in (+1 for bias)]: a target token whose exact bytes are a base token copies that base row;
    every other (non-special) token is a Gaussian sample. ``avoid``: base ids copied only when no other base token
    has their bytes (the base's byte-fallback pieces). Returns ``(rows, n_copied)``."""
    joint = _joint(source, source_bias)
    lookup = base_id_by_bytes(base_bytes, avoid, n_rows=joint.shape[0])
    match = torch.tensor([lookup.get(b, -1) if b is not None else -1 for b in target_bytes], dtype=torch.long)
    match = torch.where(special >= 0, torch.full_like(match, -1), match)
    rows = torch.empty(len(target_bytes), joint.shape[1])
    need = (match < 0) & (special < 0)
    rows[need] = GaussianSampler(joint, seed).sample(int(need.sum()))
    copied = match >= 0
    rows[copied] = joint[match[copied]]
    rows = copy_special_rows(rows, joint, special)
    return rows, int(copied.sum())


def random_rows(n_tokens: int, source: torch.Tensor, special: torch.Tensor,
                source_bias: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """Rows # [V, n_in (+1)]: Gaussian samples with the base statistics; special tokens copy their base rows."""
    joint = _joint(source, source_bias)
    rows = torch.empty(n_tokens, joint.shape[1])
    need = special < 0
    rows[need] = GaussianSampler(joint, seed).sample(int(need.sum()))
    return copy_special_rows(rows, joint, special)
