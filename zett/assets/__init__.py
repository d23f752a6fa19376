"""Offline models, tokenizers and corpora: ``path(name)``, ``file(name)``, ``load_corpus(name, split=...)``."""

from zett.assets.corpora import load_corpus, read_mo, split_of
from zett.assets.registry import REGISTRY, Asset, Package
from zett.assets.store import (
    AssetError,
    asset_dir,
    fetch,
    file,
    get,
    home,
    is_cached,
    names,
    path,
    sources,
    verify,
)

__all__ = [
    "REGISTRY", "Asset", "AssetError", "Package", "asset_dir", "fetch", "file", "get", "home", "is_cached",
    "load_corpus", "names", "path", "read_mo", "sources", "split_of", "verify",
]
