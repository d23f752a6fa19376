"""FSDP auto-wrap policy for the hypernetwork (``trainer=fsdp``).

Each hypernetwork ``EncoderLayer`` and each output head (``_Head``: input, output) is its own FSDP unit, so their
parameters are gathered one unit at a time in forward/backward and sharded otherwise; the small remainder
(input projection, fallback rows, position embeddings, norms, bias head, rescalers) stays in the root unit. The
frozen base model is not part of the LightningModule (``ZettTrainingModule`` holds it outside ``nn.Module``
registration): FSDP never sees it, and every rank keeps one replicated bf16 copy.
"""

from __future__ import annotations


def hypernet_wrap_policy():
    """``ModuleWrapPolicy`` over ``EncoderLayer`` and ``_Head`` (pass as FSDPStrategy's ``auto_wrap_policy``)."""
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from zett.models.layers import EncoderLayer
    from zett.models.modeling import _Head

    return ModuleWrapPolicy({EncoderLayer, _Head})
