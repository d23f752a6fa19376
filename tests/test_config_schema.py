"""The typed configuration: schemas (zett/config/schema.py) hold every key and default, YAML files only override.

- every YAML file under configs/ uses only declared keys (a bogus key in a copy of configs/ is found, and refused
  by composition);
- files merged straight over a schema do not repeat its defaults (one place for each default);
- the commands written in README.md and docs/*.md compose;
- a wrong type or an unknown key on the command line exits 2 with a last line naming the setting.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from zett.config import CONFIG_DIR
from zett.config.keys import schema_for_file, undeclared

ROOT = Path(__file__).resolve().parents[1]


def _files(config_dir: Path) -> list[Path]:
    return sorted(config_dir.rglob("*.yaml"))


def _package(text: str) -> str | None:
    m = re.search(r"^#\s*@package\s+(\S+)", text, re.M)
    return m.group(1) if m else None


def _undeclared_in(config_dir: Path) -> dict[str, list[str]]:
    out = {}
    for path in _files(config_dir):
        rel = path.relative_to(config_dir).as_posix()
        text = path.read_text()
        data = yaml.safe_load(text) or {}
        data.pop("defaults", None)
        if "/" not in rel:
            data.pop("hydra", None)
        schema, prefix = schema_for_file(rel, _package(text))
        bad = undeclared(data, schema, prefix)
        if bad:
            out[rel] = bad
    return out


def test_every_yaml_key_is_declared_by_a_schema():
    assert len(_files(CONFIG_DIR)) > 40
    assert _undeclared_in(CONFIG_DIR) == {}


@pytest.fixture
def bogus_configs(tmp_path):
    """A copy of configs/ with an undeclared key in a group option, in an experiment, in a loss term's arguments
    and in a data source."""
    d = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, d)
    with open(d / "hypernet" / "small.yaml", "a") as f:
        f.write("num_layerz: 2\n")
    with open(d / "experiment" / "debug.yaml", "a") as f:
        f.write("data_typo: {batch_size: 2}\n")
    (d / "loss" / "clm.yaml").write_text((d / "loss" / "clm.yaml").read_text().replace(
        "weight: 1.0", "weight: 1.0\n    wieght: 2.0"))
    (d / "data" / "en_code.yaml").write_text((d / "data" / "en_code.yaml").read_text().replace(
        "{corpus: botchan, split: train, weight: 1.0}", "{corpus: botchan, splt: train, weight: 1.0}"))
    return d


def test_a_bogus_key_is_found(bogus_configs):
    found = _undeclared_in(bogus_configs)
    assert sorted(found) == ["data/en_code.yaml", "experiment/debug.yaml", "hypernet/small.yaml", "loss/clm.yaml"]
    assert found["hypernet/small.yaml"] == ["hypernet.num_layerz (not in HypernetConfig)"]
    assert found["experiment/debug.yaml"] == ["data_typo (not in TrainConfig)"]
    assert found["loss/clm.yaml"] == ["loss.terms.clm.wieght (not an argument of zett.training.losses.CausalLMLoss)"]
    assert found["data/en_code.yaml"][0].startswith("data.sources.0.splt")


def test_composition_refuses_a_bogus_key(bogus_configs):
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(version_base="1.3", config_dir=str(bogus_configs)):
        with pytest.raises(ConfigCompositionException, match="num_layerz") as e:
            compose("train", overrides=["hypernet=small"])
        compose("train", overrides=["hypernet=default"])  # the rest of the copy composes
    from zett.cli.errors import composition_error

    # the console scripts' last line names the key and the file that sets it
    assert composition_error(str(e.value)).startswith(
        "hypernet.num_layerz (set in configs/hypernet/small.yaml) is not a setting")


def test_yaml_files_do_not_repeat_schema_defaults():
    """A group option merged straight over its schema (no defaults list, not @package _global_) and the three
    primary configs set only values that differ from the schema's: each default lives in the schema only."""
    def repeats(value, default, where):
        if isinstance(value, dict) and isinstance(default, dict):
            return [p for k, v in value.items() if k in default for p in repeats(v, default[k], f"{where}{k}.")]
        same = value == default and type(value) is type(default) and value != "???"  # ???: "must be given"
        return [where[:-1]] if same else []

    found = {}
    for path in _files(CONFIG_DIR):
        rel = path.relative_to(CONFIG_DIR).as_posix()
        data = yaml.safe_load(path.read_text()) or {}
        if _package(path.read_text()) == "_global_" or ("/" in rel and "defaults" in data):
            continue
        data.pop("defaults", None)
        data.pop("hydra", None)
        schema, _ = schema_for_file(rel, None)
        if not dataclasses.is_dataclass(schema):  # logger, callbacks: _target_ nodes, no defaults of their own
            continue
        default = OmegaConf.to_container(OmegaConf.structured(schema))
        if repeats(data, default, ""):
            found[rel] = repeats(data, default, "")
    assert found == {}


def _documented_commands() -> list[tuple[str, list[str], str]]:
    """(command, overrides, where) for every zett-train / zett-transfer / zett-eval command in README and docs."""
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())  # shell line continuations
        for n, line in enumerate(text.splitlines(), 1):
            for m in re.finditer(r"\bzett-(train|transfer|eval)((?:[ \t]+[^\s`#|;]+)*)", line):
                args = [a for a in m.group(2).split() if "=" in a and "..." not in a and not a.startswith("$")]
                # placeholders: <m> for a preset, <run> for a directory
                args = [re.sub(r"^base_model=<[^>]*>", "base_model=smollm2-135m", a) for a in args]
                args = [re.sub(r"<[^>]*>", "x", a).rstrip(",.") for a in args]
                if args:
                    out.append((m.group(1), args, f"{doc.name}:{n}"))
    return out


def test_documented_commands_compose():
    commands = _documented_commands()
    assert len(commands) >= 15
    failures = []
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        for command, args, where in commands:
            try:
                compose(command, overrides=[a for a in args if not a.startswith("hydra.")])
            except Exception as e:  # noqa: BLE001 - collected, reported together
                failures.append(f"{where}: zett-{command} {' '.join(args)}: {str(e).splitlines()[0]}")
    assert failures == []


@pytest.mark.parametrize("args,setting", [
    (["max_pieces=seven"], "max_pieces=seven is invalid"),
    (["overwrite=maybe"], "overwrite=maybe is invalid"),
    (["base_model.kindd=causal"], "base_model.kindd is not a setting"),
    (["focus.option={}"], "focus.option is not a setting"),
])
def test_type_and_key_errors_name_the_setting(args, setting, monkeypatch, capsys, tmp_path):
    import zett.cli.transfer as cli

    monkeypatch.setattr(sys, "argv", ["zett-transfer", "target_tokenizer=gpt2", f"output_dir={tmp_path / 'o'}",
                                      *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert setting in err.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()

