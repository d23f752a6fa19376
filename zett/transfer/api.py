"""``transfer(base_model, target_tokenizer, method=...)``: a base model re-embedded for a new tokenizer."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zett.models import HypernetMismatchError, ZettHypernet, adapter
from zett.transfer import specials as sp
from zett.transfer.agree import agree_special_ids
from zett.transfer.finite import check_finite_rows
from zett.transfer.predict import Rows, predict_fvt, predict_hypernet

log = logging.getLogger(__name__)

METHODS = ("fvt", "hypernet", "lexical", "random", "focus", "omp")


class TransferError(ValueError):
    """A transfer request that cannot be carried out; the message names the input and the fix."""


@dataclass
class TransferInfo:
    """What a transfer did; ``save_transferred`` writes it as ``zett_transfer.json``."""

    method: str
    base_model: str
    target_tokenizer: str
    vocab_size: int
    hypernet: str | None = None
    finetuned_model: str | None = None
    added_special_tokens: list[str] = field(default_factory=list)
    special_rows_from_base: int = 0
    n_truncated: int = 0
    n_byte_fallback_tokens: int = 0
    n_unemitted_byte_pieces: int = 0
    n_copied: int | None = None
    config_ids: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ loading

def _name(spec) -> str:
    if isinstance(spec, str | Path):
        return str(spec)
    if getattr(spec, "config", None) is not None:  # a loaded model: its asset name when it came from the cache
        return adapter.model_name(spec)
    return str(getattr(spec, "name_or_path", "") or type(spec).__name__)


def _model_dir(spec) -> Path:
    from zett import assets

    path = Path(spec).expanduser()
    if path.exists():
        return path
    if str(spec) in assets.REGISTRY:
        asset = assets.get(str(spec))
        if asset.kind != "model":
            raise TransferError(f"asset {spec!r} is a {asset.kind}, not a model; pass a model asset "
                                "(e.g. smollm2-135m) or a Hugging Face model directory")
        return Path(assets.path(str(spec)))
    raise TransferError(f"cannot find model {spec!r}: no such directory or zett asset (see `zett-assets list`); "
                        "pass a local Hugging Face model directory, an asset name or a loaded model")


def load_model(spec, dtype: torch.dtype | None = None):
    """A model from an asset name or local directory, built with the class its config names (so masked LMs keep
    their heads). Returns ``(model, loaded_here)``."""
    if not isinstance(spec, str | Path):
        return spec, False
    import transformers

    path = _model_dir(spec)
    try:
        config = transformers.AutoConfig.from_pretrained(path)
    except Exception as e:
        raise TransferError(f"{spec!r} ({path}) is not a Hugging Face model directory ({e})") from e
    classes = [getattr(transformers, a, None) for a in (config.architectures or [])]
    classes = [c for c in classes if c is not None] + [transformers.AutoModelForCausalLM,
                                                        transformers.AutoModelForMaskedLM, transformers.AutoModel]
    last = None
    for cls in classes:
        try:
            kwargs = {"dtype": dtype} if dtype is not None else {}
            return cls.from_pretrained(path, **kwargs).eval(), True
        except (ValueError, OSError, KeyError) as e:  # wrong auto class for this config: try the next
            last = e
    raise TransferError(f"cannot load model {spec!r} from {path}: {last}")


def _load_base_tokenizer(base_spec, base_model, base_tokenizer):
    from zett.tokenizers import load_tokenizer

    if base_tokenizer is not None:
        return load_tokenizer(base_tokenizer)
    candidates = [base_spec] if isinstance(base_spec, str | Path) else []
    candidates.append(getattr(base_model, "name_or_path", None))
    for c in candidates:
        if c and (Path(str(c)).expanduser().exists() or isinstance(base_spec, str | Path)):
            try:
                return load_tokenizer(c)
            except ValueError:
                continue
    raise TransferError(f"cannot find the tokenizer of base model {_name(base_model)!r}; pass base_tokenizer=...")


def load_hypernet(spec, base_model=None) -> ZettHypernet:
    """A hypernetwork from a directory, a ``ZettHypernet``, or (``spec`` None or ``"shipped"``) the one shipped with
    zett for ``base_model`` (``zett.hypernets``)."""
    if isinstance(spec, ZettHypernet):
        return spec
    if spec is None or str(spec) == "shipped":
        from zett import hypernets

        if base_model is None:
            raise TransferError("method='hypernet' needs a trained hypernetwork: pass hypernet=DIR (a directory "
                                "written by ZettHypernet.save_pretrained / zett-train) or a ZettHypernet")
        try:
            return hypernets.require_for_base(base_model, "hypernet")
        except hypernets.ShippedHypernetError as e:
            raise TransferError(str(e)) from e
    path = Path(str(spec)).expanduser()
    if not (path / "config.json").exists():
        raise TransferError(f"hypernetwork {str(spec)!r} not found: expected a directory with config.json and "
                            "model.safetensors written by ZettHypernet.save_pretrained (zett-train exports one)")
    try:
        return ZettHypernet.from_pretrained(path).eval()
    except Exception as e:
        raise TransferError(f"cannot load the hypernetwork in {path}: {e}") from e


# ------------------------------------------------------------------------------------------------ main

def transfer(base_model, target_tokenizer, method: str = "fvt", hypernet=None, *, base_tokenizer=None,
             finetuned_model=None, chunk_size: int = 8192, max_pieces: int | None = None, seed: int = 0,
             progress: bool = True, inplace: bool = False, dtype: torch.dtype | None = None,
             keep_chat_template: bool = True, device=None, **method_kwargs):
    """Re-embed ``base_model`` for ``target_tokenizer``; returns ``(model, tokenizer)``.

    base_model, target_tokenizer, finetuned_model, hypernet: asset names, local paths or loaded objects.
    method: ``fvt`` | ``hypernet`` | ``lexical`` | ``random`` | ``focus`` (FOCUS needs ``texts=[...]``) | ``omp``
        (needs ``donor_model=...``, a model using the target tokenizer; ``k=64``; see ``zett.transfer.omp``).
    finetuned_model: a model fine-tuned from the base (same vocabulary): it receives the rows predicted for the
        base and keeps its own chat template.
    chunk_size: tokens predicted at once (bounds peak memory). max_pieces: surface-form length (default: the
        hypernetwork's, else 7). inplace: modify a loaded ``base_model`` instead of a copy.
    device: where the hypernetwork runs (e.g. ``"cuda"``; the hypernetwork is moved there); the returned model
        stays where the base model was.

    The returned tokenizer tokenizes text exactly as the target does; base special tokens written in the chat
    template are added to it when missing. Special tokens copy the base rows of their role counterparts.
    """
    from zett.tokenizers import byte_vocab, load_tokenizer, surface_forms

    if method not in METHODS:
        raise TransferError(f"unknown transfer method {method!r}; use one of {', '.join(METHODS)}")
    if method_kwargs and method not in ("focus", "omp"):
        raise TransferError(f"unexpected argument(s) {sorted(method_kwargs)} for method {method!r}")
    base, loaded_here = load_model(base_model, dtype)
    base_tok = _load_base_tokenizer(base_model, base, base_tokenizer)
    try:
        target = load_tokenizer(target_tokenizer)
    except ValueError as e:
        raise TransferError(str(e)) from e

    hn = None
    if method == "hypernet":
        hn = load_hypernet(hypernet, base)
        hn.check_compatible(base)
        if device is not None:
            hn.to(device)

    receiver, ft_tok = base, None
    if finetuned_model is not None:
        receiver, _ = load_model(finetuned_model, dtype)
        ft_tok = _load_base_tokenizer(finetuned_model, receiver, None)
        _check_same_vocabulary(base, base_tok, receiver, ft_tok, finetuned_model)
    elif not inplace and not loaded_here:
        receiver = copy.deepcopy(base)

    template_tok = ft_tok if ft_tok is not None and ft_tok.chat_template else base_tok
    template = template_tok.chat_template if keep_chat_template else None
    tokens = sp.template_tokens(template_tok, template)
    tok, added = sp.with_added_specials(target, tokens)
    tok.chat_template = template if template else getattr(target, "chat_template", None)

    n_pieces = max_pieces or (hn.config.max_pieces if hn is not None else 7)
    source = adapter.source_embeddings(base)
    n_rows, d = source.shape[0], adapter.input_embeddings(base).shape[1]
    try:
        sf = surface_forms(tok, base_tok, max_pieces=n_pieces, n_base_rows=n_rows)
    except ValueError as e:
        raise TransferError(str(e)) from e
    special = sp.content_special_rows(tok, base_tok, tokens, sf.special)
    ids, overflow = sf.ids, (sf.overflow_ids, sf.overflow_mask)
    bias = adapter.output_bias(base)
    source_bias = None if bias is None else bias.detach()
    info = TransferInfo(method=method, base_model=_name(base_model), target_tokenizer=_name(target_tokenizer),
                        vocab_size=len(tok), added_special_tokens=added,
                        special_rows_from_base=int((special >= 0).sum()), n_truncated=sf.n_truncated,
                        n_byte_fallback_tokens=int(((ids >= n_rows) & sf.mask).any(1).sum()),
                        finetuned_model=None if finetuned_model is None else _name(finetuned_model))
    if sf.n_truncated:
        log.info("%d target tokens have more than %d base pieces: the hypernetwork reads their first %d, the FVT "
                 "mean all of them", sf.n_truncated, n_pieces, n_pieces)

    if method == "hypernet":
        info.hypernet = _name(hypernet) if isinstance(hypernet, str | Path) and str(hypernet) != "shipped" else \
            str(hn.name_or_path or "ZettHypernet")
        rows = predict_hypernet(hn, ids, sf.mask, source, special, source_bias, chunk_size, progress, *overflow)
    elif method == "fvt":
        rows = predict_fvt(ids, sf.mask, source, d, special, source_bias, chunk_size, progress, *overflow)
    elif method in ("lexical", "random"):
        from zett.transfer.baselines import lexical_rows, random_rows

        if method == "lexical":
            from zett.tokenizers.bytes import byte_fallback_ids

            joint, info.n_copied = lexical_rows(byte_vocab(tok), byte_vocab(base_tok), source, special, source_bias,
                                                seed, byte_fallback_ids(base_tok))
        else:
            joint = random_rows(len(tok), source, special, source_bias, seed)
        rows = _split(joint, d, adapter.is_tied(base), source_bias is not None)
    elif method == "omp":
        from zett.transfer.omp import omp_transfer_rows

        joint, info.n_copied = omp_transfer_rows(tok, target, base_tok, source, special, source_bias, dtype,
                                                 device, progress, **method_kwargs)
        rows = _split(joint, d, adapter.is_tied(base), source_bias is not None)
    else:
        rows = _focus(base, base_tok, tok, sf, source, d, special, source_bias, chunk_size, seed, method_kwargs)

    check_finite_rows(rows, method, info.base_model, info.target_tokenizer)
    info.n_unemitted_byte_pieces = _mean_rows_for_unemitted(rows, tok, source, d, source_bias)
    if ft_tok is not None:
        # rows copied (not predicted) for special tokens come from the fine-tuned model, which may have trained them
        ft_source = adapter.source_embeddings(receiver)
        rows.input_embeddings = _copy(rows.input_embeddings, ft_source[:, :d], special)
        if rows.output_embeddings is not None:
            rows.output_embeddings = _copy(rows.output_embeddings, ft_source[:, d:], special)
    adapter.install(receiver, rows.input_embeddings, rows.output_embeddings, rows.bias)
    id_source = ft_tok if ft_tok is not None else base_tok
    info.config_ids = {k: v[1] for k, v in sp.remap_config_ids(receiver.config, id_source, tok).items()}
    if getattr(receiver, "generation_config", None) is not None:
        sp.remap_config_ids(receiver.generation_config, id_source, tok)
    agree_special_ids(receiver.config, tok, len(tok))  # tokenizer and config: same bos/eos/pad
    _set_padding_idx(receiver)
    if dtype is not None:
        receiver.to(dtype)
    receiver.zett_transfer_info = info
    return receiver, tok


def _mean_rows_for_unemitted(rows: Rows, tok, source: torch.Tensor, d: int, source_bias) -> int:
    """Byte-fallback pieces the tokenizer never emits (``shadowed_byte_fallback_ids``) get the row FVT gives a token
    with no base piece, the mean source row, whatever the method: a copy of their regular twin's row would take half
    of that token's probability. Returns how many rows were set (SmolLM2 -> Gemma-3 tokenizer: 110)."""
    from zett.models.pieces import source_mean
    from zett.tokenizers.bytes import shadowed_byte_fallback_ids

    ids = torch.tensor(shadowed_byte_fallback_ids(tok), dtype=torch.long)
    if not len(ids):
        return 0
    mean = source_mean(source)
    rows.input_embeddings[ids] = mean[:d].to(rows.input_embeddings)
    if rows.output_embeddings is not None:
        rows.output_embeddings[ids] = mean[d:2 * d].to(rows.output_embeddings)
    if rows.bias is not None:
        rows.bias[ids] = source_bias.float().mean().to(rows.bias)
    return len(ids)


def _set_padding_idx(model) -> None:
    """The embedding's padding_idx (rows that get no gradient) follows the remapped pad id, as on reload."""
    emb = model.get_input_embeddings()
    pad = getattr(model.config, "pad_token_id", None)
    if hasattr(emb, "padding_idx"):
        emb.padding_idx = pad if isinstance(pad, int) and 0 <= pad < emb.weight.shape[0] else None


def _copy(values, table, special):
    from zett.models.pieces import copy_special_rows

    return copy_special_rows(values, table.float(), special)


def _split(joint: torch.Tensor, d: int, tied: bool, has_bias: bool) -> Rows:
    return Rows(joint[:, :d], None if tied else joint[:, d:2 * d], joint[:, -1] if has_bias else None)


def _focus(base, base_tok, tok, sf, source, d, special, source_bias, chunk_size, seed, kwargs) -> Rows:
    try:
        from zett.transfer.focus import focus_embeddings
    except ImportError as e:
        raise TransferError("method='focus' needs zett.transfer.focus.focus_embeddings, which this installation "
                            f"lacks ({e}); use method='fvt' or 'lexical'") from e
    if "texts" not in kwargs:
        raise TransferError("method='focus' needs texts=[...] in the target language to train its auxiliary "
                            "embeddings, e.g. texts=zett.assets.load_corpus('botchan')['text']")
    kwargs = dict(kwargs)
    texts = kwargs.pop("texts")
    e_in, e_out = focus_embeddings(base, base_tok, tok, texts, seed=seed, **kwargs)
    bias = None
    if source_bias is not None:  # FOCUS does not define a bias: use the FVT bias
        bias = predict_fvt(sf.ids, sf.mask, source, d, special, source_bias, chunk_size, False, sf.overflow_ids,
                           sf.overflow_mask).bias
    e_in = _copy(e_in.float(), source[:, :d], special)
    if e_out is not None:
        e_out = _copy(e_out.float(), source[:, d:], special)
    return Rows(e_in, None if adapter.is_tied(base) else e_out, bias)


def _check_same_vocabulary(base, base_tok, finetuned, ft_tok, spec) -> None:
    n_base, n_ft = adapter.input_embeddings(base).shape[0], adapter.input_embeddings(finetuned).shape[0]
    problems = []
    if n_base != n_ft:
        problems.append(f"{n_ft} embedding rows vs the base's {n_base}")
    if adapter.input_embeddings(base).shape[1] != adapter.input_embeddings(finetuned).shape[1]:
        problems.append("a different hidden size")
    if base_tok.get_vocab() != ft_tok.get_vocab():
        problems.append("a different tokenizer vocabulary")
    if problems:
        raise TransferError(f"finetuned_model {_name(spec)!r} was not fine-tuned from base model "
                            f"{_name(base)!r}: it has {'; '.join(problems)}. Pass the model it was fine-tuned from "
                            "as base_model.")


__all__ = ["METHODS", "HypernetMismatchError", "TransferError", "TransferInfo", "load_hypernet", "load_model",
           "transfer"]
