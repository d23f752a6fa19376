"""AdamW over the hypernetwork's trainable parameters with the original weight-decay mask (zett-method.md §4.1):
no decay on biases and normalisation parameters; frozen parameters (the calibrated rescalers) are left out."""

from __future__ import annotations

import re

import torch

# A parameter is never decayed when one component of its dotted name matches (whatever its shape).
_NO_DECAY_PART = re.compile(r"^(bias|ln(_\w+|\d*)|.*norm.*|.*scaler.*)$", re.IGNORECASE)


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """Vectors (biases, norm gains), norms and rescalers are not decayed."""
    return param.ndim < 2 or any(_NO_DECAY_PART.match(part) for part in name.split("."))


def param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed group (matrices) and an undecayed one (vectors, norms, biases)."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if is_no_decay(name, p):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(module: torch.nn.Module, weight_decay: float = 0.01, betas=(0.9, 0.95), eps: float = 1e-8,
                    fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW with ``lr=1.0``: the scheduler's lambda supplies the absolute learning rate. ``fused``: None = fused
    when every parameter is on a GPU."""
    groups = param_groups(module, weight_decay)
    if not groups:
        raise ValueError("the hypernetwork has no trainable parameters; check hypernet config (all frozen?)")
    if fused is None:  # fused AdamW keeps its step counters on the GPU: no per-parameter host read per step
        fused = all(p.is_cuda for g in groups for p in g["params"])
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=1.0, betas=tuple(betas), eps=eps, **kwargs)
