"""Read and install a Hugging Face model's token embeddings, whatever its family.

Everything goes through the generic accessors (``get_input_embeddings``, ``get_output_embeddings``, the
``base_model`` backbone) so that Llama, Mistral, Qwen2/3, Gemma 2/3, GPT-2, GPT-NeoX, BERT, RoBERTa/XLM-R,
DistilBERT and headless encoders all work; anything else raises :class:`UnsupportedModelError`.

    E_in = input_embeddings(model)                       # [N, d]
    E_out = output_embeddings(model)                     # [N, d] (the same tensor when tied)
    h = hidden_states(model, E_in[ids], attention_mask)  # [B, T, d]
    logits(model, h, E_out, output_bias(model))          # == model(ids).logits
    install(model, new_in, new_out, new_bias)            # resize to the new vocabulary, keep ties
"""

from __future__ import annotations

import inspect
import weakref
from pathlib import Path

import torch
from torch import nn


class UnsupportedModelError(ValueError):
    """The adapter cannot read or write this model's embeddings."""


def _unsupported(model, why: str) -> UnsupportedModelError:
    name = type(model).__name__
    return UnsupportedModelError(
        f"zett cannot handle {name} (model_type={getattr(getattr(model, 'config', None), 'model_type', '?')!r}): "
        f"{why}. Supported: Hugging Face causal LMs with a plain linear LM head (Llama, Mistral, Qwen, Gemma, "
        "GPT-2, GPT-NeoX, ...), BERT/RoBERTa/XLM-R/DistilBERT masked LMs and headless encoders.")


def _input_module(model) -> nn.Embedding:
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if get is not None else None
    if emb is None or not isinstance(getattr(emb, "weight", None), torch.Tensor) or emb.weight.dim() != 2:
        raise _unsupported(model, "it has no input embedding matrix (get_input_embeddings)")
    return emb


def _output_module(model):
    """The LM head module, or None for a headless encoder (its output embeddings are its input embeddings)."""
    get = getattr(model, "get_output_embeddings", None)
    out = get() if get is not None else None
    if out is None:
        return None
    if not isinstance(getattr(out, "weight", None), torch.Tensor) or out.weight.dim() != 2:
        raise _unsupported(model, f"its output embeddings are a {type(out).__name__} without a 2-D weight")
    if out.weight.shape[1] != _input_module(model).weight.shape[1]:
        raise _unsupported(model, "its LM head width differs from its embedding width (a projection in between)")
    return out


def input_embeddings(model) -> torch.Tensor:
    """The input embedding matrix (the live parameter). # [N, d]"""
    return _input_module(model).weight


def output_embeddings(model) -> torch.Tensor:
    """The output (unembedding) matrix; the input matrix for tied or headless models. # [N, d]"""
    out = _output_module(model)
    return input_embeddings(model) if out is None else out.weight


def output_bias(model) -> torch.Tensor | None:
    """The LM head's per-token logit bias (BERT, RoBERTa, ...), else None. # [N]"""
    out = _output_module(model)
    bias = getattr(out, "bias", None) if out is not None else None
    return bias if isinstance(bias, torch.Tensor) else None


def is_tied(model) -> bool:
    """True when the input and output embeddings are one matrix (or the model has no LM head)."""
    out = _output_module(model)
    return out is None or out.weight is _input_module(model).weight or \
        out.weight.data_ptr() == _input_module(model).weight.data_ptr()


def source_embeddings(model) -> torch.Tensor:
    """The hypernetwork's source matrix, detached: E_in [N, d] when tied, E_in ‖ E_out [N, 2d] when untied."""
    e_in = input_embeddings(model).detach()
    if is_tied(model):
        return e_in
    return torch.cat([e_in, output_embeddings(model).detach()], dim=1)


def _input_scale(model, emb: nn.Embedding) -> torch.Tensor | None:
    """The factor the embedding module applies to its rows (Gemma's sqrt(d)), or None.

    ``inputs_embeds`` bypasses the embedding module, so a model that scales inside it (Gemma 2/3 in
    transformers 5) would see unscaled rows; we apply the same factor to stay equal to ``model(input_ids)``.
    """
    n = min(4, emb.weight.shape[0])
    probe = torch.arange(n, device=emb.weight.device)
    with torch.no_grad():
        looked_up = emb(probe)
    rows = emb.weight[:n]
    if torch.equal(looked_up, rows):
        return None
    scale = getattr(emb, "embed_scale", None)
    if scale is None:
        raise _unsupported(model, "its embedding module transforms rows in a way zett does not know")
    return torch.as_tensor(scale, device=rows.device)


def _head_transform(model):
    """The function from backbone output to the vectors multiplied by the output embeddings."""
    out = _output_module(model)
    if out is None:
        return lambda h: h
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if predictions is not None and getattr(predictions, "decoder", None) is out:      # BERT
        return predictions.transform
    lm_head = getattr(model, "lm_head", None)
    if lm_head is not None and getattr(lm_head, "decoder", None) is out:              # RoBERTa, XLM-R, CamemBERT
        if not (hasattr(lm_head, "dense") and hasattr(lm_head, "layer_norm")):
            raise _unsupported(model, f"its LM head {type(lm_head).__name__} is not RoBERTa-shaped")
        return lambda h: lm_head.layer_norm(nn.functional.gelu(lm_head.dense(h)))
    if getattr(model, "vocab_projector", None) is out:                                  # DistilBERT
        return lambda h: model.vocab_layer_norm(model.activation(model.vocab_transform(h)))
    if any(child is out for child in model.children()):                               # plain causal LM head
        return lambda h: h
    raise _unsupported(model, f"its output embeddings sit inside an unknown head ({type(out).__name__})")


def _backbone(model):
    base = getattr(model, "base_model", model)
    return model if base is None else base


def hidden_states(model, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Final hidden states right before the output-embedding matmul. # [B, T, d]

    ``inputs_embeds`` are raw rows of an input embedding matrix (``E_in[input_ids]``, # [B, T, d]); any scale
    the model's embedding module applies is applied here. Final norm (and, for masked LMs, the head transform)
    is included, so ``logits(model, hidden, E_out, bias)`` reproduces the model's own logits.
    """
    plan = _forward_plan(model)
    emb = plan["embedding"]
    if inputs_embeds.shape[-1] != emb.weight.shape[1]:
        raise ValueError(f"inputs_embeds width {inputs_embeds.shape[-1]} != model hidden size {emb.weight.shape[1]}")
    if plan["scaled"]:  # read at call time: the factor (often a buffer) follows the model's device and dtype
        inputs_embeds = inputs_embeds * torch.as_tensor(emb.embed_scale, device=inputs_embeds.device,
                                                        dtype=inputs_embeds.dtype)
    outputs = plan["backbone"](inputs_embeds=inputs_embeds, attention_mask=attention_mask, **plan["kwargs"])
    hidden = outputs[0] if isinstance(outputs, tuple) else outputs.last_hidden_state
    return plan["head"](hidden)


class _Cut(Exception):
    """Raised by the hook on the last layer ``hidden_states_at`` runs: ends the forward pass there."""


def decoder_layers(model) -> nn.ModuleList:
    """The backbone's stack of transformer layers (Llama/Gemma/Qwen ``layers``, GPT-2 ``h``, BERT ``encoder.layer``)."""
    backbone = _backbone(model)
    for path in ("layers", "h", "encoder.layer", "decoder.layers", "block"):
        obj = backbone
        for name in path.split("."):
            obj = getattr(obj, name, None)
        if isinstance(obj, nn.ModuleList) and len(obj):
            return obj
    raise _unsupported(model, "its layer stack was not found (looked for layers, h, encoder.layer, block)")


def hidden_states_at(model, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None,
                     layer: int) -> torch.Tensor:
    """The residual stream after the first ``layer`` transformer layers (``output_hidden_states[layer]``), running
    only those layers: the model cut after layer ``layer`` (0 <= layer < the number of layers). # [B, T, d]

    The forward pass is the model's own (same embedding scale, masks and position encodings); a hook on layer
    ``layer - 1`` keeps its output and stops the pass there, so layers above it cost nothing, and autograd sees
    exactly the graph of the full model up to that layer. ``layer`` = 0 gives the (scaled) input embeddings.
    """
    return hidden_states_at_layers(model, inputs_embeds, attention_mask, [layer])[0]


def hidden_states_at_layers(model, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None,
                            layers: list[int]) -> list[torch.Tensor]:
    """``hidden_states_at`` for several layers in one pass (up to the highest). -> one [B, T, d] per layer."""
    stack = decoder_layers(model)
    for layer in layers:
        if not 0 <= layer < len(stack):
            # output_hidden_states[n_layers] is after the final norm: that is hidden_states(), the full model
            raise ValueError(f"layer={layer} is outside 0..{len(stack) - 1} (the model has {len(stack)} layers; "
                             "the last layer's state is the final hidden state of the full model)")
    plan = _forward_plan(model)
    scaled = inputs_embeds
    if plan["scaled"]:
        scaled = inputs_embeds * torch.as_tensor(plan["embedding"].embed_scale, device=inputs_embeds.device,
                                                 dtype=inputs_embeds.dtype)
    kept: dict[int, torch.Tensor] = {0: scaled}
    last = max(layers)

    def keep(index):
        def hook(_module, _args, output):
            kept[index + 1] = output[0] if isinstance(output, tuple) else output
            if index + 1 == last:
                raise _Cut

        return hook

    handles = [stack[k - 1].register_forward_hook(keep(k - 1)) for k in sorted(set(layers)) if k > 0]
    try:
        if last > 0:
            hidden_states(model, inputs_embeds, attention_mask)
    except _Cut:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in layers if k not in kept]
    if missing:
        raise _unsupported(model, f"layers {missing} did not run in its forward pass")
    return [kept[k] for k in layers]


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward_plan(model) -> dict:
    """What ``hidden_states`` needs to know about a model (embedding module, input scaling, backbone, its
    keyword arguments, head transform), worked out once per model object: the probes read tensors on the host
    and ``inspect.signature`` is slow, so a training step must not repeat them."""
    plan = _PLANS.get(model)
    emb, out = _input_module(model), _output_module(model)
    if plan is None or plan["embedding"] is not emb or plan["output"] is not out:  # new model, or a module replaced
        backbone = _backbone(model)
        plan = _PLANS[model] = {
            "embedding": emb,
            "output": out,
            "scaled": _input_scale(model, emb) is not None,
            "backbone": backbone,
            "kwargs": {"use_cache": False} if "use_cache" in inspect.signature(backbone.forward).parameters else {},
            "head": _head_transform(model),
        }
    return plan


def logits(model, hidden: torch.Tensor, output_embeddings: torch.Tensor,
           bias: torch.Tensor | None = None) -> torch.Tensor:
    """``hidden @ E_out.T (+ bias)`` plus the model's own logit post-processing (Cohere's logit_scale,
    Gemma 2's final soft-capping). # [B, T, V]"""
    out = hidden @ output_embeddings.T
    if bias is not None:
        out = out + bias
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    scale = getattr(cfg, "logit_scale", None)
    if scale is not None:
        out = out * scale
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap is not None:
        out = torch.tanh(out / cap) * cap
    return out


def _replace_parameter(model, old: torch.Tensor, new: nn.Parameter) -> None:
    """Point every module that holds ``old`` (tied copies included) at ``new``."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is old:
                module._parameters[name] = new


def install(model, input_embeddings: torch.Tensor, output_embeddings: torch.Tensor | None = None,
            bias: torch.Tensor | None = None):
    """Give ``model`` a new vocabulary: input rows # [V, d], output rows # [V, d] (untied models only; tied
    models stay tied), LM-head bias # [V] (models with one; zeros when omitted). Updates ``config.vocab_size``.
    The tensors are taken over (cast to the model's dtype), not copied. Returns the model."""
    emb = _input_module(model)
    out = _output_module(model)
    n_new, dim = input_embeddings.shape
    if dim != emb.weight.shape[1]:
        raise ValueError(f"new input embeddings have width {dim}, the model needs {emb.weight.shape[1]}")
    tied = is_tied(model)
    if tied and output_embeddings is not None and output_embeddings is not input_embeddings \
            and out is not None and not torch.equal(output_embeddings, input_embeddings):
        raise ValueError("this model ties its input and output embeddings; pass output_embeddings=None")
    if not tied and output_embeddings is None:
        raise ValueError("this model has untied output embeddings; pass output_embeddings [V, d] as well")
    if output_embeddings is not None and output_embeddings.shape != input_embeddings.shape:
        raise ValueError(f"output embeddings {tuple(output_embeddings.shape)} != input "
                         f"{tuple(input_embeddings.shape)}")
    old_bias = getattr(out, "bias", None) if out is not None else None
    if bias is not None and old_bias is None:
        raise ValueError(f"{type(model).__name__} has no LM-head bias; pass bias=None")
    if bias is not None and bias.shape != (n_new,):
        raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({n_new},)")

    dtype, device = emb.weight.dtype, emb.weight.device
    new_in = nn.Parameter(input_embeddings.detach().to(device=device, dtype=dtype).contiguous(),
                          requires_grad=emb.weight.requires_grad)
    old_in = emb.weight
    old_out = out.weight if out is not None else None
    _replace_parameter(model, old_in, new_in)
    if out is not None and not tied:
        new_out = nn.Parameter(output_embeddings.detach().to(device=device, dtype=out.weight.dtype).contiguous(),
                               requires_grad=old_out.requires_grad)
        _replace_parameter(model, old_out, new_out)
    if old_bias is not None:
        new_bias = bias if bias is not None else torch.zeros(n_new)
        new_bias = nn.Parameter(new_bias.detach().to(device=device, dtype=old_bias.dtype).contiguous(),
                                requires_grad=old_bias.requires_grad)
        _replace_parameter(model, old_bias, new_bias)

    emb.num_embeddings = n_new
    if emb.padding_idx is not None and emb.padding_idx >= n_new:
        emb.padding_idx = None
    if out is not None and hasattr(out, "out_features"):
        out.out_features = n_new
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cfg.vocab_size = n_new
    model.config.vocab_size = n_new
    if hasattr(model, "vocab_size"):
        model.vocab_size = n_new
    return model


def describe(model) -> dict:
    """What the hypernetwork config records about a base model."""
    e_in = input_embeddings(model)
    return {
        "base_model_name": model_name(model),
        "base_model_type": getattr(model.config, "model_type", None),
        "base_hidden_size": int(e_in.shape[1]),
        "base_vocab_size": int(e_in.shape[0]),
        "base_tied": is_tied(model),
        "base_has_bias": output_bias(model) is not None,
        "base_fingerprint": fingerprint(source_embeddings(model)),
    }


def model_name(model) -> str:
    """The name a record should carry for a model: its zett asset name when it was loaded from the asset cache
    (not the machine's cache path), else its name or path, else its class name."""
    name = str(getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "") or "")
    if name:
        from zett.assets import REGISTRY, home

        p = Path(name).expanduser()
        try:
            if p.is_absolute() and p.parent.resolve() == (home() / "assets").resolve() and p.name in REGISTRY:
                return p.name
        except OSError:
            pass
    return name or type(model).__name__


def fingerprint(source: torch.Tensor) -> list[float]:
    """A few float64 statistics of the source matrix # [N, n_in]: stable across dtype casts and devices,
    different for any two real base models. Compared with a relative tolerance, not for equality."""
    x = source.detach().to(torch.float64)
    head, tail = x[:64], x[-64:]
    return [float(f"{float(v):.6g}") for v in (x.mean(), x.std(), x.abs().mean(), head.mean(), head.abs().mean(),
                                         tail.mean(), tail.abs().mean(), x[:, 0].mean(), x[:, -1].mean())]
