"""Load the frozen base model and its tokenizer from the ``base_model`` config.

``name``: a zett asset (``smollm2-135m``, ``gemma3-270m``), a local Hugging Face directory, or (online only) a hub
id; ``tiny-random`` builds a tiny random Llama with a tokenizer trained in memory (tests, debug runs: seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

from zett.models.tiny import tiny_random_base  # noqa: F401 - the tiny-random base; re-exported here


class BaseModelError(ValueError):
    """The configured base model cannot be loaded."""


def _resolve(name: str, path: str | None) -> str:
    if path:
        p = Path(os.path.expanduser(str(path)))
        if not p.exists():
            raise BaseModelError(f"base_model.path {str(path)!r} does not exist; point it at a local Hugging Face "
                                 "model directory (config.json + weights + tokenizer)")
        return str(p)
    from zett.assets import REGISTRY
    from zett.assets import path as asset_path

    names = set(REGISTRY) if isinstance(REGISTRY, dict) else {getattr(a, "name", None) for a in REGISTRY}
    if name in names:
        return str(asset_path(name))
    if Path(os.path.expanduser(name)).exists():
        return str(Path(os.path.expanduser(name)))
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise BaseModelError(f"base model {name!r} is neither a zett asset nor a local directory, and the hub is "
                             "offline (HF_HUB_OFFLINE=1); give base_model.path=/path/to/model")
    return name


def load_base_from_config(node, seed: int = 0):
    """-> (model, tokenizer) from a ``base_model`` config node (``configs/base_model/*.yaml``: name, path, kind,
    load_dtype, tiny; a DictConfig or dict) or a plain name; the one loader zett-train, zett-transfer and zett-eval
    share. Settings are checked first (``zett.cli.validate.check_base_model``)."""
    from omegaconf import DictConfig, OmegaConf

    from zett.cli.validate import check_base_model

    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, str):
        node = {"name": node}
    check_base_model(node)
    # a plain dict or name gets the schema's defaults (zett.config.schema.BaseModelConfig), like a composed node
    from zett.config.schema import BaseModelConfig

    node = {k: v for k, v in vars(BaseModelConfig()).items() if v != "???"} | dict(node)
    return load_base(str(node.get("name") or ""), node.get("path"), str(node["kind"]), str(node["load_dtype"]),
                     node["tiny"], seed=seed)


def load_base(name: str, path: str | None = None, kind: str = "causal", dtype: str = "float32",
              tiny: dict | None = None, seed: int = 0):
    """-> (model in eval mode with frozen weights, its tokenizer). kind: causal | masked."""
    import torch

    if name == "tiny-random":
        model, tok = tiny_random_base(**(tiny or {}), seed=seed)
        model.config._name_or_path = "tiny-random"  # how messages and zett_transfer.json name it
    else:
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

        from zett.tokenizers import load_tokenizer

        where = _resolve(name, path)
        cls = {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM}.get(kind)
        if cls is None:
            raise BaseModelError(f"base_model.kind {kind!r} is not supported; use causal or masked")
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "auto": torch.float32}[dtype]
        from safetensors import SafetensorError

        from zett.assets import REGISTRY

        try:
            model = cls.from_pretrained(where, dtype=torch_dtype)
        except (OSError, SafetensorError) as e:  # missing or unreadable weights, a corrupted safetensors header
            raise BaseModelError(f"cannot load base model {name!r} from {where!r}: {e}"
                                 + (f" (`zett-assets verify {name}` re-hashes the cached files and re-fetches what "
                                    "differs)" if path is None and name in REGISTRY else "")) from e
        except ValueError as e:  # e.g. a causal checkpoint under base_model.kind=masked
            raise BaseModelError(f"cannot load base model {name!r} from {where!r} with base_model.kind={kind}: "
                                 f"{str(e).splitlines()[0]} (use the kind the model was trained as)") from e
        tok = load_tokenizer(where)
    model.eval()
    model.requires_grad_(False)
    return model, tok


def enable_activation_checkpointing(model) -> int:
    """Recompute the frozen base's decoder layers in the backward pass instead of storing their activations.

    The base is frozen, but the loss still backpropagates through it to the predicted input embeddings, so its
    activations are kept for backward: with a 7B base they, not the weights, fill the GPU. Hugging Face only
    checkpoints layers in training mode; the base stays in eval mode (no dropout), so only the checkpointed layer
    modules themselves are marked as training (their children, dropout included, stay in eval mode).
    -> the number of layers checkpointed. Raises BaseModelError for architectures without checkpointing support.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    if not getattr(model, "supports_gradient_checkpointing", False):
        raise BaseModelError(f"{type(model).__name__} does not support activation checkpointing; set "
                             "base_model.activation_checkpointing=false")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; the older name is deprecated
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    layers = [m for m in model.modules()
              if isinstance(m, GradientCheckpointingLayer) and getattr(m, "gradient_checkpointing", False)]
    if not layers:
        raise BaseModelError(f"{type(model).__name__} has no checkpointable layers; set "
                             "base_model.activation_checkpointing=false")
    for layer in layers:
        layer.training = True  # the flag HF checks; the layer's submodules keep training=False
    return len(layers)
