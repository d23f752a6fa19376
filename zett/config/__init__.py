"""zett's configuration: the YAML files under ``configs/`` and their typed schemas (``zett.config.schema``).

Importing this package stores the schemas in Hydra's ConfigStore, which ``configs/train.yaml``, ``transfer.yaml``
and ``eval.yaml`` name first in their defaults lists: compose them (``hydra.compose`` or the console scripts) after
importing ``zett.config`` (every module that exports ``CONFIG_DIR`` does).
"""

from __future__ import annotations

from pathlib import Path

from zett.config.schema import SCHEMAS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        cs.store(name=name, node=schema)


register()

__all__ = ["CONFIG_DIR", "SCHEMAS", "register"]
