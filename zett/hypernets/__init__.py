"""Pretrained hypernetworks shipped with zett: one directory per base model, bf16 safetensors + a model card.

    zett.hypernets.available()                 # ["smollm2-135m"]
    hn = zett.hypernets.for_base(base_model)   # the shipped hypernetwork whose base fingerprint matches, or None
    hn = zett.hypernets.load("smollm2-135m")   # float32, eval mode

A shipped directory is what ``ZettHypernet.save_pretrained`` writes (``config.json``, safetensors shards of at most
16 MiB with their index, ``digest.json`` with their sha256, checked on every load) plus ``README.md``, the model
card. ``zett-transfer method=hypernet``, ``zett-eval
methods=[hypernet]`` (or ``shipped``) and ``zett-train init_hypernet=shipped`` use the one built for the base model
when no hypernetwork is named; the base is recognised by the fingerprint of its embedding matrix
(``ZettHypernet.check_compatible``), not by its name or path. ``ship(...)`` writes a new one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

SHIPPED_DIR = Path(__file__).resolve().parent
MAX_SHARD = "16MB"


class ShippedHypernetError(ValueError):
    """No shipped hypernetwork fits the request; the message names the base and what to do."""


def available() -> list[str]:
    """Names of the shipped hypernetworks (directories holding a config.json)."""
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())


def path(name: str) -> Path:
    p = SHIPPED_DIR / name
    if not (p / "config.json").is_file():
        raise ShippedHypernetError(f"no shipped hypernetwork named {name!r}; shipped: {available() or 'none'}")
    return p


def config(name: str):
    from zett.models import ZettHypernetConfig

    return ZettHypernetConfig.from_pretrained(path(name))


def load(name: str, dtype: torch.dtype = torch.float32):
    """The shipped hypernetwork ``name`` in ``dtype`` (stored in bf16), eval mode."""
    from zett.models import ZettHypernet

    hn = ZettHypernet.from_pretrained(path(name), dtype=dtype)
    return hn.to(dtype).eval()


def match(base_model) -> str | None:
    """Name of the shipped hypernetwork built for ``base_model`` (fingerprint and shapes agree), else None."""
    from zett.models import adapter

    info = adapter.describe(base_model)
    for name in available():
        if not config(name).mismatches(info):
            return name
    return None


def for_base(base_model, dtype: torch.dtype = torch.float32):
    """The shipped hypernetwork for ``base_model``, or None when none was built for it."""
    name = match(base_model)
    return None if name is None else load(name, dtype)


def require_for_base(base_model, what: str = "hypernet_path"):
    """``for_base`` or a clear error naming the base model and the shipped ones."""
    hn = for_base(base_model)
    if hn is None:
        from zett.models import adapter

        info = adapter.describe(base_model)
        shipped = ", ".join(f"{n} (for {config(n).describe_base()})" for n in available()) or "none"
        raise ShippedHypernetError(
            f"no shipped hypernetwork fits the base model {info['base_model_name']} ({info['base_model_type']}, "
            f"vocab {info['base_vocab_size']}); shipped: {shipped}. Give {what}=DIR (a hypernetwork trained for "
            "this base with zett-train).")
    return hn


def ship(hypernet, out_dir: str | Path, card: str, base_model_name: str | None = None) -> Path:
    """Write ``hypernet`` as a shipped hypernetwork: bf16 safetensors shards of at most 16 MiB, config (with the base
    named by ``base_model_name``, e.g. its asset name) and ``README.md`` = ``card``. Written into a temporary
    sibling directory and renamed into place, replacing ``out_dir`` whole."""
    from zett.models import ZettHypernet

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cfg = type(hypernet.config).from_dict(hypernet.config.to_dict())
    if base_model_name:
        cfg.base_model_name = base_model_name
    plain = ZettHypernet(cfg)
    state = {k: v.detach().float() for k, v in hypernet.state_dict().items()}
    if any(not bool(torch.isfinite(v).all()) for v in state.values()):
        raise ValueError("the hypernetwork has non-finite weights; nothing was written")
    plain.load_state_dict(state)
    plain.to(torch.bfloat16)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        plain.save_pretrained(tmp, max_shard_size=MAX_SHARD)
        (tmp / "README.md").write_text(card)
        umask = os.umask(0)
        os.umask(umask)
        for f in tmp.iterdir():
            f.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def shard_sizes(name: str) -> dict[str, int]:
    """File name -> bytes of every weight file of a shipped hypernetwork (for the card and the size test)."""
    p = path(name)
    return {f.name: f.stat().st_size for f in sorted(p.glob("*.safetensors"))}


def card_metadata(name: str | Path) -> dict:
    """The JSON block between ``<!-- zett-card`` and ``-->`` in the card (training facts a test can check) of the
    hypernetwork shipped as ``name``, or of a hypernetwork directory given as a ``Path`` ({} without a card)."""
    card = (name if isinstance(name, Path) else path(name)) / "README.md"
    if not card.exists():
        return {}
    text = card.read_text()
    start = text.find("<!-- zett-card")
    if start < 0:
        return {}
    end = text.index("-->", start)
    return json.loads(text[start + len("<!-- zett-card"):end])


__all__ = ["MAX_SHARD", "SHIPPED_DIR", "ShippedHypernetError", "available", "card_metadata", "config", "for_base",
           "load", "match", "path", "require_for_base", "ship", "shard_sizes"]
