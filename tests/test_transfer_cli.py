"""zett-transfer: the Hydra config composes, transfer_from_config writes a loadable directory, errors are one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from zett.cli.errors import UserError
from zett.cli.transfer import CONFIG_DIR, ConfigError, transfer_from_config
from zett.testing import tiny_llama, train_tokenizer


def _cfg(overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="transfer", overrides=overrides)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    tok = train_tokenizer(vocab_size=300)
    tok.chat_template = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"
    path = tmp_path_factory.mktemp("base")
    tiny_llama(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_config_defaults():
    cfg = _cfg([])
    assert cfg.base_model.name == "smollm2-135m" and cfg.method == "fvt" and cfg.chunk_size == 8192
    assert (Path(CONFIG_DIR) / "transfer.yaml").exists()


@pytest.mark.parametrize("method", ["fvt", "lexical"])
def test_transfer_from_config_writes_a_model_directory(base_dir, tmp_path, method):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = transfer_from_config(_cfg([f"base_model.path={base_dir}", "target_tokenizer=sp-botchan-unigram-1k",
                                     f"method={method}", f"output_dir={tmp_path / 'out'}", "progress=false"]))
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tok) >= 1000
    assert json.loads((out / "zett_transfer.json").read_text())["method"] == method
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<s>hi</s>"


def test_transfer_from_config_with_hypernet(base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from zett.models import ZettHypernet

    ZettHypernet.from_base_model(AutoModelForCausalLM.from_pretrained(base_dir)).save_pretrained(tmp_path / "hn")
    out = transfer_from_config(_cfg([f"base_model.path={base_dir}", "target_tokenizer=sp-botchan-bpe-1k",
                                     "method=hypernet", f"hypernet_path={tmp_path / 'hn'}",
                                     f"output_dir={tmp_path / 'out'}", "progress=false", "dtype=bfloat16"]))
    model = AutoModelForCausalLM.from_pretrained(out)
    assert str(model.dtype) == "torch.bfloat16"
    assert json.loads((out / "zett_transfer.json").read_text())["hypernet"] == str(tmp_path / "hn")


def test_tiny_random_preset(tmp_path):
    from transformers import AutoModelForCausalLM

    out = transfer_from_config(_cfg(["base_model=tiny-random", "target_tokenizer=sp-botchan-unigram-1k",
                                     f"output_dir={tmp_path}", "progress=false"]))
    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 32


def test_config_errors(base_dir, tmp_path, monkeypatch):
    from zett import hypernets

    monkeypatch.setattr(hypernets, "available", lambda: [])  # nothing shipped for this base
    with pytest.raises(UserError, match="base_model=FacebookAI/xlm-roberta-base is not shipped with zett"):
        transfer_from_config(_cfg(["base_model=xlm-r", "target_tokenizer=gpt2", f"output_dir={tmp_path}"]))
    with pytest.raises(UserError, match="base_model.path=/nowhere does not exist"):
        transfer_from_config(_cfg(["base_model.path=/nowhere", "target_tokenizer=gpt2", f"output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="missing option target_tokenizer"):
        transfer_from_config(_cfg([f"output_dir={tmp_path}"]))
    with pytest.raises(hypernets.ShippedHypernetError, match="no shipped hypernetwork fits.*hypernet_path=DIR"):
        transfer_from_config(_cfg(["target_tokenizer=gpt2", "method=hypernet", f"output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="dtype='fp8' is unknown"):
        transfer_from_config(_cfg(["target_tokenizer=gpt2", "dtype=fp8", f"output_dir={tmp_path}"]))


def test_console_script_prints_one_clear_line(base_dir, tmp_path):
    script = Path(sys.executable).parent / "zett-transfer"
    if not script.exists():
        pytest.skip("zett-transfer console script not installed (pip install -e .)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([str(script), f"base_model.path={base_dir}", "target_tokenizer=gpt2", "method=magic",
                          f"output_dir={tmp_path / 'x'}"], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "zett-transfer: error: unknown transfer method 'magic'; use one of fvt, hypernet, lexical, random, focus, omp")
    assert not (tmp_path / "x").exists() and not (tmp_path / "outputs").exists()
