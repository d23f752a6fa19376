"""The hypernetwork (``ZettHypernet`` / ``ZettHypernetConfig``) and the base-model ``adapter``.

    hn = ZettHypernet.from_base_model(base_model)             # untrained: reproduces FVT exactly
    source = adapter.source_embeddings(base_model)            # [N_base, d] tied, [N_base, 2d] untied
    out = hn(surface_ids, surface_mask, source, special)      # out.input_embeddings [V, d], ...

Importing this package registers the classes with ``AutoConfig`` / ``AutoModel`` (model_type ``zett_hypernet``).
"""

from transformers import AutoConfig, AutoModel

from zett.models import adapter
from zett.models.adapter import UnsupportedModelError
from zett.models.configuration import ZettHypernetConfig
from zett.models.modeling import HypernetFormatError, HypernetMismatchError, HypernetOutput, ZettHypernet

AutoConfig.register(ZettHypernetConfig.model_type, ZettHypernetConfig, exist_ok=True)
AutoModel.register(ZettHypernetConfig, ZettHypernet, exist_ok=True)

__all__ = ["HypernetFormatError", "HypernetMismatchError", "HypernetOutput", "UnsupportedModelError", "ZettHypernet",
           "ZettHypernetConfig", "adapter"]
