"""Which keys of a config file no schema declares (``tests/test_config_schema.py`` runs it over ``configs/``).

A key is declared by a dataclass field of :mod:`zett.config.schema`, by the constructor signature of a node's
``_target_`` (logger, callbacks, loss terms, the trainer's strategy), by ``SOURCE_KEYS`` (data sources and
validation texts) or by ``zett.transfer.focus.focus_transfer``'s keywords (``focus.options``).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any

from zett.config.schema import SOURCE_KEYS, BaseModelConfig, EvalConfig, TrainConfig, TransferConfig

PRIMARY = {"train": TrainConfig, "transfer": TransferConfig, "eval": EvalConfig}


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp):
    """Optional[X] / X | None -> X; other types unchanged."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _signature_keys(target: str) -> set[str] | None:
    """Keyword names ``target`` accepts; None when it takes ``**kwargs`` (anything goes) or cannot be imported."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception:  # noqa: BLE001 - an optional dependency (wandb, ...) missing: its keys are not checked
        return None
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _target_node(value: dict, where: str) -> list[str]:
    accepted = _signature_keys(str(value["_target_"]))
    out = []
    for key, sub in value.items():
        if key.startswith("_") and key.endswith("_"):
            continue
        if accepted is not None and key not in accepted:
            out.append(f"{where}{key} (not an argument of {value['_target_']})")
        out += undeclared(sub, Any, f"{where}{key}.")
    return out


def undeclared(value, schema, where: str = "") -> list[str]:
    """Dotted paths (with a reason) of the keys in ``value`` (a plain YAML mapping) that ``schema`` (a dataclass
    type, or a typing annotation of one) does not declare."""
    schema = _unwrap(schema)
    if isinstance(value, dict) and "_target_" in value and not dataclasses.is_dataclass(schema):
        return _target_node(value, where)
    if dataclasses.is_dataclass(schema) and isinstance(value, dict):
        hints, out = _hints(schema), []
        for key, sub in value.items():
            if key not in hints:
                out.append(f"{where}{key} (not in {schema.__name__})")
                continue
            path = f"{where}{key}"
            if path in ("data.sources", "focus.corpora") or path.endswith("validation.texts"):
                out += _sources(sub, path)
            elif path == "focus.options":
                out += _keywords(sub, "zett.transfer.focus.focus_transfer", path)
            else:
                out += undeclared(sub, hints[key], f"{path}.")
        return out
    origin = typing.get_origin(schema)
    if isinstance(value, dict) and (schema is Any or origin is dict):
        args = typing.get_args(schema)
        inner = args[1] if len(args) == 2 else Any
        return [p for key, sub in value.items() for p in undeclared(sub, inner, f"{where}{key}.")]
    if isinstance(value, list) and origin is list:
        (inner,) = typing.get_args(schema) or (Any,)
        return [p for i, sub in enumerate(value) for p in undeclared(sub, inner, f"{where}{i}.")]
    return []


def _sources(value, where: str) -> list[str]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [f"{where}.{name}.{key} (not a source key: {', '.join(SOURCE_KEYS)})"
            for name, spec in items if isinstance(spec, dict) for key in spec if key not in SOURCE_KEYS]


def _keywords(value, target: str, where: str) -> list[str]:
    accepted = _signature_keys(target) or set()
    return [f"{where}.{key} (not an argument of {target})" for key in (value or {}) if key not in accepted]


def schema_for_file(rel: str, text_package: str | None):
    """(schema type, path prefix) a config file under ``configs/`` merges into: a primary config, a group option
    (``<group>/<option>.yaml``) or a ``# @package _global_`` file (experiment, debug: the train config's root)."""
    parts = rel.split("/")
    if len(parts) == 1:
        return PRIMARY[parts[0].removesuffix(".yaml")], ""
    if text_package == "_global_":
        return TrainConfig, ""
    group = parts[0]
    if group == "base_model":
        return BaseModelConfig, "base_model."
    return _hints(TrainConfig)[group], f"{group}."


def declared_at(schema, parents: list[str]) -> list[str]:
    """The keys ``schema`` declares under the dotted path ``parents`` ([] for the top level); [] where that node
    is open (a ``_target_`` node, a dict, ``Any``)."""
    for part in parents:
        schema = _unwrap(schema)
        if not dataclasses.is_dataclass(schema):
            return []
        hints = _hints(schema)
        if part not in hints:
            return []
        schema = hints[part]
    schema = _unwrap(schema)
    return [k for k in _hints(schema) if not k.startswith("_")] if dataclasses.is_dataclass(schema) else []


def closest_key(path: str, schema) -> str | None:
    """The declared dotted key closest in spelling to ``path`` (difflib), e.g. task_limt -> task_limit; None when
    none is close."""
    import difflib

    parts = path.split(".")
    match = difflib.get_close_matches(parts[-1], declared_at(schema, parts[:-1]), n=1, cutoff=0.6)
    return ".".join([*parts[:-1], match[0]]) if match else None
