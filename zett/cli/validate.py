"""Checks of user settings, run before any model is loaded; each failure is a :class:`UserError` naming the setting.

The helpers take the plain config dict ``c`` and the key, so the message can say ``<prefix><key>=<value>`` and what
would be valid.
"""

from __future__ import annotations

import json
from pathlib import Path

from zett.cli.errors import UserError

LOAD_DTYPES = ("float32", "bfloat16", "auto")
BASE_KINDS = ("causal", "masked")
# hypernet_path / init_hypernet values that name a hypernetwork instead of a directory (add new ones here)
HYPERNET_NAMES = ("untrained", "shipped")


def positive(c: dict, key: str, prefix: str = "", allow_none: bool = False, example: int | None = None):
    """``c[key]`` as an int > 0 (or None when ``allow_none``)."""
    value = c.get(key)
    hint = f" (e.g. {prefix}{key}={example})" if example else ""
    if value is None:
        if allow_none:
            return None
        raise UserError(f"{prefix}{key} must be a positive integer{hint}; it is unset")
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value <= 0:
        null = " or null" if allow_none else ""
        raise UserError(f"{prefix}{key}={value!r} is invalid: it must be a positive integer{null}{hint}")
    return int(value)


def boolean(c: dict, key: str, prefix: str = "", default: bool = False) -> bool:
    value = c.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UserError(f"{prefix}{key}={value!r} is invalid: use {prefix}{key}=true or {prefix}{key}=false")
    return value


def one_of(c: dict, key: str, choices, prefix: str = ""):
    value = c.get(key)
    if value not in choices:
        raise UserError(f"{prefix}{key}={value!r} is invalid: use one of {', '.join(map(str, choices))}")
    return value


def read_text_file(path: Path, setting: str) -> str:
    """A local text file as str; binary or non-UTF-8 files are refused with the byte offset of the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{setting}: cannot read {path}: {e.strerror or e}") from e
    if b"\x00" in raw[:1 << 20]:
        raise UserError(f"{setting}: {path} is a binary file (it contains NUL bytes), not UTF-8 text; give a "
                        ".txt/.jsonl file of text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{setting}: {path} is not UTF-8 text (invalid byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start}); convert it, e.g. `iconv -f latin1 -t utf-8`") from e


def check_text_head(path: Path, setting: str, limit: int = 1 << 20) -> None:
    """Refuse a binary or non-UTF-8 text file, looking at its first ``limit`` bytes only (corpora can be huge)."""
    import codecs

    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(limit)
    except OSError as e:
        raise UserError(f"{setting}: cannot read {path}: {e.strerror or e}") from e
    if b"\x00" in raw:
        raise UserError(f"{setting}: {path} is a binary file (it contains NUL bytes), not UTF-8 text; give text "
                        "files (.txt/.jsonl)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=len(raw) < limit)
    except UnicodeDecodeError as e:
        raise UserError(f"{setting}: {path} is not UTF-8 text (invalid byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start}); convert it, e.g. `iconv -f latin1 -t utf-8`") from e


def check_tokenizer(spec, setting: str):
    """Load the tokenizer ``spec`` (asset name or path) once to check it; returns it."""
    from zett.tokenizers import load_tokenizer

    try:
        return load_tokenizer(str(spec))
    except UserError:
        raise
    except (ValueError, OSError) as e:
        raise UserError(f"{setting}={spec}: {e}") from e


def check_hypernet_dir(path) -> Path:
    p = Path(str(path)).expanduser()
    if str(path) in HYPERNET_NAMES and not p.exists():  # resolved by the loader, not a directory
        return p
    if not p.is_dir():
        raise UserError(f"hypernet_path={path} does not exist or is not a directory; pass the hypernet/ "
                        "directory of a zett-train run (or a ZettHypernet.save_pretrained directory)")
    try:
        json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"hypernet_path={path} has no readable config.json ({e}); pass the hypernet/ directory "
                        "of a zett-train run") from e
    if not (p / "model.safetensors").is_file() and not (p / "model.safetensors.index.json").is_file():
        raise UserError(f"hypernet_path={path} has no model.safetensors; pass the hypernet/ directory of a "
                        "finished zett-train run")
    from zett.models.digest import problem

    bad = problem(p)  # its weights against its digest.json (none: checked, with a warning, when loaded)
    if bad:
        raise UserError(f"hypernet_path={path}: {bad}; export it again (zett-train writes hypernet/) or pass "
                        "another hypernetwork directory")
    return p


def check_base_model(node) -> None:
    """The ``base_model`` group node (or a plain name): a model asset, an existing path or ``tiny-random``."""
    if node is None:
        raise UserError("missing base model: pass base_model=<preset> or base_model.path=DIR")
    if isinstance(node, str):
        node = {"name": node}
    node = dict(node)
    name, path = str(node.get("name") or ""), node.get("path")
    if path == "???":
        raise UserError(f"base_model={name} is not shipped with zett: pass base_model.path=/path/to/model")
    one_of(node, "kind", BASE_KINDS, "base_model.") if node.get("kind") is not None else None
    if node.get("load_dtype") is not None:
        one_of(node, "load_dtype", LOAD_DTYPES, "base_model.")
    if path:
        p = Path(str(path)).expanduser()
        if not p.exists():
            raise UserError(f"base_model.path={path} does not exist; point it at a local Hugging Face model "
                            "directory (config.json + weights + tokenizer)")
        if p.is_dir() and not (p / "config.json").is_file():
            raise UserError(f"base_model.path={path} has no config.json: it is not a Hugging Face model directory")
        return
    if not name:
        raise UserError("missing base model: pass base_model=<preset> or base_model.path=DIR")
    if name == "tiny-random":
        return
    from zett.assets import REGISTRY

    if name in REGISTRY and REGISTRY[name].kind != "model":
        models = ", ".join(n for n, a in REGISTRY.items() if a.kind == "model")
        raise UserError(f"base_model.name={name} is a {REGISTRY[name].kind} asset, not a model; use a model asset "
                        f"({models}) or base_model.path=DIR (a tokenizer goes in base_tokenizer= or "
                        "target_tokenizer=)")


def check_omp(omp: dict) -> None:
    """``omp.*`` (method omp): anchors per token, tokens per solve, preselected candidates (null: all)."""
    positive(omp, "k", "omp.", example=64)
    positive(omp, "batch_size", "omp.", example=256)
    positive(omp, "candidates", "omp.", allow_none=True, example=256)


def check_declared(cfg, command: str) -> None:
    """Refuse a key of the composed ``cfg`` that the ``command``'s schema does not declare: Hydra's ``+key=value``
    adds one without looking at the schema, so a misspelt ``+task_limt=5`` would otherwise be ignored. Keys added to
    a ``_target_`` node are accepted when its class takes them (e.g. ``+trainer.accumulate_grad_batches=4``)."""
    from omegaconf import OmegaConf

    from zett.cli.errors import spelling_hint
    from zett.config.keys import PRIMARY, _signature_keys, undeclared

    c = OmegaConf.to_container(cfg, resolve=False)
    c.pop("hydra", None)
    for entry in undeclared(c, PRIMARY[command]):
        path, _, reason = entry.partition(" ")
        *parents, key = path.split(".")
        node = c
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.get(part, {})
        if isinstance(node, dict) and "_target_" in node:
            accepted = _signature_keys(str(node["_target_"]))
            if accepted is None or key in accepted:
                continue
        raise UserError(f"{path} is not a setting of zett-{command} {reason}; {spelling_hint(path, f'zett-{command}')}")
