"""``zett-transfer``: re-embed a base model for a new tokenizer (configs/transfer.yaml).

``transfer_from_config(cfg)`` does the work and is what tests call with a composed config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from zett.cli.errors import UserError, hydra_entry, user_errors_exit
from zett.config import CONFIG_DIR  # importing zett.config registers the schemas

log = logging.getLogger(__name__)

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


class ConfigError(UserError):
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
        from zett.cli.validate import read_text_file

        texts = [read_text_file(path, "focus.corpus")]
    else:
        from zett import assets

        texts = list(assets.load_corpus(str(corpus), split=focus["split"])["text"])
    from zett.cli.validate import positive

    budget, out = int(positive(focus, "max_bytes", "focus.", allow_none=True) or 0), []
    for t in texts:
        out.append(t)
        budget -= len(t.encode())
        if focus.get("max_bytes") and budget <= 0:
            break
    return out


def _load_base(node, base_tokenizer, seed: int):
    """(model, tokenizer) from the ``base_model`` group node (the loader all commands share)."""
    from zett.tokenizers import load_tokenizer
    from zett.training.base import load_base_from_config

    model, tok = load_base_from_config(node, seed=seed)
    if not base_tokenizer:
        return model, tok
    from zett.tokenizers.fit import check_base_tokenizer

    given = load_tokenizer(base_tokenizer)
    check_base_tokenizer(given, tok, model, base_tokenizer, model_name=node.get("path") or node.get("name") or "")
    return model, given


def transfer_from_config(cfg: DictConfig) -> Path:
    """Run the transfer described by ``cfg`` and save it to ``cfg.output_dir``; returns that directory."""
    import torch

    from zett.cli.validate import boolean, check_base_model, check_hypernet_dir, check_tokenizer, positive
    from zett.outputs import check_output_dir
    from zett.transfer import save_transferred, transfer

    c = OmegaConf.to_container(cfg, resolve=False)
    c.pop("hydra", None)
    target = _required(c, "target_tokenizer", "gpt2")
    output_dir = _required(c, "output_dir", "out/my-model")
    method = str(c["method"])
    from zett.transfer import METHODS

    if method not in METHODS:
        raise ConfigError(f"unknown transfer method {method!r}; use one of {', '.join(METHODS)}")
    dtype = c["dtype"]
    if dtype is not None:
        if str(dtype) not in DTYPES:
            raise ConfigError(f"dtype={dtype!r} is unknown; use one of float32, bfloat16, float16 or null")
        dtype = getattr(torch, DTYPES[str(dtype)])
    # Everything the user typed is checked before the (slow) base model load.
    overwrite = boolean(c, "overwrite")
    check_output_dir(output_dir, overwrite)
    chunk_size = int(positive(c, "chunk_size"))
    max_pieces = positive(c, "max_pieces", allow_none=True)
    if method == "omp":
        from zett.cli.validate import check_omp

        check_omp(c["omp"])
    if method == "hypernet" and c["hypernet_path"]:  # none given: the one shipped for the base (checked below)
        check_hypernet_dir(c["hypernet_path"])
    check_tokenizer(target, "target_tokenizer")
    if c["base_tokenizer"]:
        check_tokenizer(c["base_tokenizer"], "base_tokenizer")
    if c["finetuned_model"] and not Path(str(c["finetuned_model"])).expanduser().exists():
        from zett import assets

        if str(c["finetuned_model"]) not in assets.REGISTRY:
            raise ConfigError(f"finetuned_model={c['finetuned_model']} does not exist; pass a local Hugging Face "
                              "model directory or a model asset")
    check_base_model(c["base_model"])
    focus_texts = _focus_texts(c["focus"]) if method == "focus" else None
    base, base_tok = _load_base(c["base_model"], c["base_tokenizer"], int(c["seed"]))
    if dtype is not None:
        base = base.to(dtype)
    kwargs = {}
    if method == "focus":
        kwargs = {"texts": focus_texts, **c["focus"]["options"]}
    if method == "omp":
        kwargs = {"donor_model": c["donor_model"], **c["omp"]}
    hypernet = c["hypernet_path"]
    if method == "hypernet" and (not hypernet or str(hypernet) == "shipped"):
        from zett import hypernets

        hypernet = hypernets.require_for_base(base, "hypernet_path")
    model, tok = transfer(
        base, target, method=method, hypernet=hypernet, base_tokenizer=base_tok,
        finetuned_model=c["finetuned_model"], inplace=True,
        chunk_size=chunk_size, max_pieces=max_pieces, seed=int(c["seed"]),
        progress=bool(c["progress"]), dtype=dtype, keep_chat_template=bool(c["keep_chat_template"]),
        **kwargs)
    out = save_transferred(model, tok, output_dir, overwrite=overwrite)
    info = model.zett_transfer_info
    log.info("transferred %s to %s (%s, %d tokens, added %s) -> %s", info.base_model, info.target_tokenizer,
             method, info.vocab_size, info.added_special_tokens or "no tokens", out)
    return out


@user_errors_exit("zett-transfer")
def _task(cfg: DictConfig) -> None:
    from zett.cli.validate import check_declared

    check_declared(cfg, "transfer")  # a +key=value the schema does not declare
    print(transfer_from_config(cfg))


main = hydra_entry("zett-transfer", hydra.main(version_base="1.3", config_path=str(CONFIG_DIR),
                                               config_name="transfer")(_task), _task)

if __name__ == "__main__":
    main()
