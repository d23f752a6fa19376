"""The original ZeTT learning-rate schedule (zett-method.md §4.2): joined linear warm-ups, then cosine decay.

Boundaries ``[0, *warmup_steps]`` split training into phases. Phase k warms up linearly from 0 to
``learning_rates[k]`` between ``warmup_steps[k-1]`` and ``warmup_steps[k]``; after the last boundary the rate follows
a cosine from ``learning_rates[-1]`` down to ``alpha * learning_rates[-1]`` at ``total_steps``. With an identity
warm-up of 10k steps: ``warmup_steps=[10000, 20000]``, ``learning_rates=[3e-4, 6e-5]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class JoinedWarmupCosine:
    """Callable ``step -> learning rate`` (absolute, not a multiplier)."""

    def __init__(self, learning_rates: Sequence[float], warmup_steps: Sequence[int], total_steps: int,
                 alpha: float = 0.1):
        lrs, warm = [float(x) for x in learning_rates], [int(x) for x in warmup_steps]
        if not lrs:
            raise ValueError("scheduler.learning_rates must hold at least one learning rate")
        if warm and len(warm) not in (len(lrs), len(lrs) - 1):
            raise ValueError(f"scheduler.warmup_steps {warm} needs one boundary per learning rate {lrs} "
                             "(or one fewer: the last phase then starts without a warm-up)")
        if any(b <= a for a, b in zip([0] + warm, warm, strict=False)):
            raise ValueError(f"scheduler.warmup_steps {warm} must be positive and strictly increasing")
        self.lrs, self.warm, self.total, self.alpha = lrs, warm, int(total_steps), float(alpha)

    def __call__(self, step: int) -> float:
        start = 0
        for k, end in enumerate(self.warm):
            if step < end:
                lr = self.lrs[min(k, len(self.lrs) - 1)]
                return lr * (step - start + 1) / max(1, end - start)
            start = end
        peak = self.lrs[-1]
        span = max(1, self.total - start)
        progress = min(1.0, (step - start) / span)
        return peak * (self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, learning_rates: Sequence[float], warmup_steps: Sequence[int],
                    total_steps: int, alpha: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping every optimizer step. The optimizer must be built with ``lr=1.0`` so that the lambda's
    value is the learning rate itself (AdamW's decoupled weight decay is multiplied by it as usual)."""
    fn = JoinedWarmupCosine(learning_rates, warmup_steps, total_steps, alpha)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
