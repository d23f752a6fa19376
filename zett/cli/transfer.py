"""``zett-transfer``: re-embed a base model for a new tokenizer (configs/transfer.yaml).

``transfer_from_config(cfg)`` does the work and is what tests call with a composed config.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

log = logging.getLogger(__name__)

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


class ConfigError(ValueError):
    """A zett-transfer option is missing or invalid."""


def _required(c: dict, key: str, example: str) -> str:
    value = c.get(key)
    if value in (None, "", "???"):
        raise ConfigError(f"missing option {key}: pass {key}={example}")
    return str(value)


def _focus_texts(focus: dict) -> list[str]:
    corpus = focus.get("corpus")
    if not corpus:
        raise ConfigError("method=focus needs training text: pass focus.corpus=<corpus asset or .txt file>")
    path = Path(str(corpus)).expanduser()
    if path.is_file():
        texts = [path.read_text(encoding="utf-8")]
    else:
        from zett import assets

        texts = list(assets.load_corpus(str(corpus), split=focus.get("split", "train"))["text"])
    budget, out = int(focus.get("max_bytes") or 0), []
    for t in texts:
        out.append(t)
        budget -= len(t.encode())
        if focus.get("max_bytes") and budget <= 0:
            break
    return out


def _load_base(node, base_tokenizer, seed: int):
    """(model, tokenizer) from the ``base_model`` group node (name / path / kind / load_dtype / tiny)."""
    from zett.tokenizers import load_tokenizer
    from zett.training.base import BaseModelError, load_base

    if isinstance(node, str):  # a config composed without the group: a plain name or directory
        node = {"name": node}
    node = dict(node or {})
    name = str(node.get("name") or "")
    path = node.get("path")
    if path == "???":
        raise ConfigError(f"base_model={name} is not shipped with zett: pass base_model.path=/path/to/model")
    if not name and not path:
        raise ConfigError("missing base model: pass base_model=<preset> or base_model.path=DIR")
    try:
        model, tok = load_base(name, path, kind=str(node.get("kind") or "causal"),
                               dtype=str(node.get("load_dtype") or "float32"), tiny=node.get("tiny"), seed=seed)
    except BaseModelError as e:
        raise ConfigError(str(e)) from e
    return model, (load_tokenizer(base_tokenizer) if base_tokenizer else tok)


def transfer_from_config(cfg: DictConfig) -> Path:
    """Run the transfer described by ``cfg`` and save it to ``cfg.output_dir``; returns that directory."""
    import torch

    from zett.transfer import save_transferred, transfer

    c = OmegaConf.to_container(cfg, resolve=False)
    c.pop("hydra", None)
    target = _required(c, "target_tokenizer", "gpt2")
    output_dir = _required(c, "output_dir", "out/my-model")
    method = str(c.get("method", "fvt"))
    from zett.transfer import METHODS

    if method not in METHODS:
        raise ConfigError(f"unknown transfer method {method!r}; use one of {', '.join(METHODS)}")
    dtype = c.get("dtype")
    if dtype is not None:
        if str(dtype) not in DTYPES:
            raise ConfigError(f"dtype={dtype!r} is unknown; use one of float32, bfloat16, float16 or null")
        dtype = getattr(torch, DTYPES[str(dtype)])
    base, base_tok = _load_base(c.get("base_model"), c.get("base_tokenizer"), int(c.get("seed") or 0))
    if dtype is not None:
        base = base.to(dtype)
    kwargs = {}
    if method == "focus":
        focus = c.get("focus") or {}
        kwargs = {"texts": _focus_texts(focus), **(focus.get("options") or {})}
    if method == "omp":
        kwargs = {"donor_model": c.get("donor_model"), **(c.get("omp") or {})}
    if method == "hypernet" and not c.get("hypernet_path"):
        raise ConfigError("method=hypernet needs hypernet_path=DIR (a directory written by zett-train)")
    model, tok = transfer(
        base, target, method=method, hypernet=c.get("hypernet_path"), base_tokenizer=base_tok,
        finetuned_model=c.get("finetuned_model"), inplace=True,
        chunk_size=int(c.get("chunk_size") or 8192), max_pieces=c.get("max_pieces"), seed=int(c.get("seed") or 0),
        progress=bool(c.get("progress", True)), dtype=dtype, keep_chat_template=bool(c.get("keep_chat_template", True)),
        **kwargs)
    out = save_transferred(model, tok, output_dir)
    info = model.zett_transfer_info
    log.info("transferred %s to %s (%s, %d tokens, added %s) -> %s", info.base_model, info.target_tokenizer,
             method, info.vocab_size, info.added_special_tokens or "no tokens", out)
    return out


def _user_errors() -> tuple[type[BaseException], ...]:
    from zett.models import HypernetMismatchError, UnsupportedModelError
    from zett.tokenizers import TokenizerLoadError
    from zett.transfer import TransferError

    return (ConfigError, TransferError, HypernetMismatchError, UnsupportedModelError, TokenizerLoadError,
            FileNotFoundError)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="transfer")
def main(cfg: DictConfig) -> None:
    try:
        out = transfer_from_config(cfg)
    except _user_errors() as e:
        print(f"zett-transfer: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(out)
