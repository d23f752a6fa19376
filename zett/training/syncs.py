"""Count host syncs of a training step on any device, CPU included.

On a GPU, reading a tensor's value on the host (``.item()``, ``int(t)``, ``bool(t)``, ``.tolist()``, ``.cpu()``,
``torch.equal``) or making a shape depend on values (``nonzero``, boolean-mask indexing, ``unique``,
``masked_select``) waits for every queued kernel: the step stops feeding the GPU. ``torch.cuda.set_sync_debug_mode``
reports them on a GPU only; ``count_host_syncs`` finds the same calls on the CPU by wrapping those entry points for
the duration of a ``with`` block and recording the calling source line, so a CPU test can hold the step to zero.

    with count_host_syncs() as syncs:
        loss = module.training_step(batch, 0); loss.backward(); opt.step()
    syncs.total, syncs.by_site  # {"zett/models/modeling.py:231 forward": 2, ...}
"""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

_TENSOR_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "nonzero",
                   "masked_select")
_TORCH_FUNCTIONS = ("equal", "nonzero", "unique", "masked_select", "argwhere")


@dataclass
class SyncCount:
    by_site: Counter = field(default_factory=Counter)  # "path:line function" -> calls

    @property
    def total(self) -> int:
        return sum(self.by_site.values())

    def within(self, fragment: str) -> int:
        """Calls whose caller's path contains ``fragment`` (e.g. ``"/zett/"``)."""
        return sum(n for site, n in self.by_site.items() if fragment in site.replace("\\", "/"))


def _site(depth: int = 2) -> str:
    f = sys._getframe(depth)
    return f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}"


def _is_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(torch.is_tensor(i) and i.dtype == torch.bool for i in items)


@contextmanager
def count_host_syncs():
    """Record host-sync calls made inside the block (any thread's calls count; use it around one step)."""
    count = SyncCount()
    saved: list[tuple[object, str, object]] = []

    def wrap(owner, name, condition=None):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if condition is None or condition(*args, **kwargs):
                count.by_site[_site()] += 1
            return original(*args, **kwargs)

        saved.append((owner, name, original))
        setattr(owner, name, wrapper)

    try:
        for name in _TENSOR_METHODS:
            wrap(torch.Tensor, name)
        for name in _TORCH_FUNCTIONS:
            wrap(torch, name)
        wrap(torch.Tensor, "__getitem__", lambda self, index: _is_mask(index))
        wrap(torch.Tensor, "__setitem__", lambda self, index, value: _is_mask(index))
        yield count
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
