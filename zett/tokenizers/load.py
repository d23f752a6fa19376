"""``load_tokenizer(spec)``: one entry point for every tokenizer format zett accepts, always a fast tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

ACCEPTED = (
    "a zett asset name (see `zett-assets list`: e.g. 'gpt2', 'llama3', 'sp-botchan-unigram-1k', 'smollm2-135m'), "
    "a local Hugging Face tokenizer directory, a tokenizer.json file, a SentencePiece .model file, a .tiktoken "
    "file, a GGUF file (vocab-only or full model), a tokenizers.Tokenizer or an already loaded fast tokenizer; "
    "a hub name works only when online"
)


class TokenizerLoadError(ValueError):
    """A tokenizer spec that cannot be resolved or read; the message names it and lists what is accepted."""


def _fail(spec, reason: str) -> TokenizerLoadError:
    return TokenizerLoadError(f"cannot load tokenizer {spec!r}: {reason}. Accepted: {ACCEPTED}.")


def _wrap(backend, **names):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, **names)


def _guess_names(backend) -> dict[str, str]:
    """Special-token attributes for a bare tokenizer.json (no tokenizer_config.json beside it), from the
    conventional spellings of its special added tokens."""
    specials = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
    conventions = {
        "bos_token": ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<|im_start|>", "[CLS]"],
        "eos_token": ["</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|im_end|>", "[SEP]"],
        "pad_token": ["<pad>", "[PAD]", "<|pad|>"],
        "unk_token": ["<unk>", "[UNK]", "<|unk|>"],
        "mask_token": ["<mask>", "[MASK]"],
        "cls_token": ["[CLS]"],
        "sep_token": ["[SEP]"],
    }
    names = {}
    for attr, candidates in conventions.items():
        for c in candidates:
            if c in specials:
                names[attr] = c
                break
    if "<|endoftext|>" in specials and "bos_token" not in names:  # GPT-2 family: one token for both ends
        names["bos_token"] = "<|endoftext|>"
    return names


def _from_json_file(path: Path):
    from tokenizers import Tokenizer

    if path.name == "tokenizer.json" and (path.parent / "tokenizer_config.json").exists():
        return _from_directory(path.parent)
    backend = Tokenizer.from_file(str(path))
    return _wrap(backend, **_guess_names(backend))


def _from_directory(path: Path):
    from transformers import AutoTokenizer

    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt",
                                              "tokenizer.model")):
        for pattern in ("*.gguf", "*.model", "*.tiktoken"):
            found = sorted(path.glob(pattern))
            if len(found) == 1:
                return _from_file(found[0])
        raise FileNotFoundError("the directory holds no tokenizer files")
    tok = AutoTokenizer.from_pretrained(str(path))
    return _ensure_fast(tok, path)


def _from_file(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".gguf":
        from zett.tokenizers.gguf import tokenizer_from_gguf

        return tokenizer_from_gguf(path)
    if suffix == ".model":
        from zett.tokenizers.spm import tokenizer_from_spm

        return tokenizer_from_spm(path)
    if suffix == ".tiktoken":
        from zett.tokenizers.tiktoken_file import tokenizer_from_tiktoken

        return tokenizer_from_tiktoken(path)
    if suffix == ".json":
        return _from_json_file(path)
    raise ValueError(f"unsupported file type {suffix or '(none)'!r}")


def _ensure_fast(tok, spec):
    from transformers import PreTrainedTokenizerFast

    if isinstance(tok, PreTrainedTokenizerFast):
        return tok
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:  # transformers 5 "TokenizersBackend" subclasses that are not PreTrainedTokenizerFast
        names = {f"{r}_token": getattr(tok, f"{r}_token") for r in ("bos", "eos", "pad", "unk", "mask", "cls", "sep")
                 if getattr(tok, f"{r}_token", None)}
        fast = _wrap(backend, **names)
        if getattr(tok, "chat_template", None):
            fast.chat_template = tok.chat_template
        return fast
    try:
        from transformers.convert_slow_tokenizer import convert_slow_tokenizer

        fast = _wrap(convert_slow_tokenizer(tok), **{k: v for k, v in tok.special_tokens_map.items()
                                                     if isinstance(v, str)})
    except Exception as e:
        raise _fail(spec, f"it is a slow tokenizer ({type(tok).__name__}) with no fast conversion ({e})") from e
    return fast


def load_tokenizer(spec, **kwargs):
    """Resolve ``spec`` to a ``transformers.PreTrainedTokenizerFast``.

    A fast tokenizer is returned as is; a ``tokenizers.Tokenizer`` is wrapped. Strings and paths are tried as an
    existing file or directory first, then as a zett asset name, then (only when online) as a hub name.
    ``kwargs`` go to ``AutoTokenizer.from_pretrained`` for directories and hub names.
    Raises ``TokenizerLoadError`` (a ``ValueError``) naming the spec and what is accepted.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

    if isinstance(spec, PreTrainedTokenizerFast):
        return spec
    if isinstance(spec, Tokenizer):
        return _wrap(spec, **_guess_names(spec))
    if isinstance(spec, PreTrainedTokenizerBase):
        return _ensure_fast(spec, spec)
    if not isinstance(spec, str | os.PathLike):
        raise _fail(spec, f"a {type(spec).__name__} is not a tokenizer spec")

    path = Path(spec).expanduser()
    if path.exists():
        try:
            return _from_directory(path) if path.is_dir() else _from_file(path)
        except TokenizerLoadError:
            raise
        except Exception as e:
            raise _fail(str(spec), f"the path exists but could not be read as a tokenizer ({type(e).__name__}: "
                                   f"{e})") from e

    name = str(spec)
    from zett import assets

    if name in assets.REGISTRY:
        asset = assets.get(name)
        if asset.kind == "corpus":
            raise _fail(name, "it is a corpus asset, not a tokenizer or model")
        try:
            target = assets.file(name)
        except Exception as e:
            raise _fail(name, f"the asset could not be fetched ({e}); run `zett-assets fetch {name}`") from e
        return load_tokenizer(target, **kwargs)

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "0") not in ("0", "", "false", "False")
    if offline or os.sep in name or name.startswith("."):
        raise _fail(name, "no such file, directory or zett asset (hub names need network access; "
                          "HF_HUB_OFFLINE is set)" if offline else "no such file, directory or zett asset")
    try:
        from transformers import AutoTokenizer

        return _ensure_fast(AutoTokenizer.from_pretrained(name, **kwargs), name)
    except Exception as e:
        raise _fail(name, f"not a local path or zett asset, and the hub lookup failed ({type(e).__name__})") from e
