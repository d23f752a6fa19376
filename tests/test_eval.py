"""zett-eval end to end on a tiny base model saved to disk: numbers, files, tables, multilingual records."""

import csv
import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from zett.cli.eval import CONFIG_DIR, evaluate
from zett.eval.report import markdown_table
from zett.eval.texts import _rows, eval_texts, join_lines, language_lines, take_bytes
from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer

DOCS = [
    "The quick brown fox jumps over the lazy dog. The dog did not mind.\n" * 2,
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    "Zero-shot tokenizer transfer predicts embeddings for any vocabulary. Élève, naïve café.",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    base_tok = train_tokenizer(vocab_size=300, kind="bpe")
    model = tiny_llama(base_tok)
    model.save_pretrained(root / "base")
    base_tok.save_pretrained(root / "base")
    target = train_tokenizer(SAMPLE_TEXTS[:3] * 4, vocab_size=280, kind="bpe")
    target.save_pretrained(root / "target")
    (root / "corpus.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    (root / "other.txt").write_text("import os\nimport sys\n\nclass Foo:\n    pass\n" * 3)
    (root / "focus_train.txt").write_text("\n".join(SAMPLE_TEXTS))  # FOCUS never trains on the scored text
    return root


def _cfg(workdir, tmp_path, *overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("eval", overrides=[
            f"base_model.path={workdir / 'base'}", f"targets=[{workdir / 'target'}]",
            f"corpora=[{workdir / 'corpus.jsonl'},{workdir / 'other.txt'}]", "max_bytes=null",
            f"output_dir={tmp_path / 'out'}", "progress=false", "device=cpu", *overrides])


def test_original_equals_the_models_own_loss(workdir, tmp_path):
    records = evaluate(_cfg(workdir, tmp_path, "methods=[original]", "max_length=512"))
    rec = next(r for r in records if r["corpus"] == "corpus")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(workdir / "base").eval()
    tok = AutoTokenizer.from_pretrained(workdir / "base")
    bits = n_bytes = n_tokens = 0
    for d in DOCS:
        ids = [tok.bos_token_id] + tok(d, add_special_tokens=False).input_ids
        x = torch.tensor([ids])
        with torch.no_grad():
            loss = model(input_ids=x, labels=x).loss.item()  # mean nats over len(ids) - 1 predictions
        bits += loss * (len(ids) - 1) / math.log(2)
        n_bytes += len(d.encode())
        n_tokens += len(ids) - 1
    assert rec["method"] == "original" and rec["tokenizer"] == "base"
    assert rec["n_bytes"] == n_bytes and rec["n_tokens"] == n_tokens
    assert rec["bits_per_byte"] == pytest.approx(bits / n_bytes, rel=1e-5)
    assert rec["bytes_per_token"] == pytest.approx(n_bytes / n_tokens)


def test_methods_write_json_csv_markdown_and_plot(workdir, tmp_path):
    records = evaluate(_cfg(workdir, tmp_path, "methods=[original,fvt,lexical,random,hypernet]",
                            "hypernet_path=untrained", "+hypernet_overrides.hidden_size=16",
                            "+hypernet_overrides.num_layers=1"))
    out = tmp_path / "out"
    assert len(records) == 2 * 5
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(records))
    for r in saved:
        for key in ("method", "tokenizer", "corpus", "bits_per_byte", "bytes_per_token", "n_bytes", "n_tokens"):
            assert key in r
        assert math.isfinite(r["bits_per_byte"]) and r["bits_per_byte"] > 0
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records) and float(rows[0]["bits_per_byte"]) == pytest.approx(records[0]["bits_per_byte"])
    # every tokenizer and method saw exactly the same text
    for corpus in ("corpus", "other"):
        sizes = {r["n_text_bytes"] for r in records if r["corpus"] == corpus}
        assert len(sizes) == 1
    by = {(r["method"], r["corpus"]): r for r in records}
    # an untrained residual hypernetwork is FVT exactly
    assert by["hypernet", "corpus"]["bits_per_byte"] == pytest.approx(by["fvt", "corpus"]["bits_per_byte"], rel=1e-4)
    # deltas against original
    ref = by["original", "corpus"]["bits_per_byte"]
    assert by["fvt", "corpus"]["delta_bits_per_byte"] == pytest.approx(by["fvt", "corpus"]["bits_per_byte"] - ref)
    md = (out / "results.md").read_text()
    assert "| base | original |" in md and "| target | fvt |" in md
    ci = by["fvt", "corpus"]["ci_delta_bits_per_byte"]  # paired bootstrap over the corpus's 3 documents
    assert f"({by['fvt', 'corpus']['delta_bits_per_byte']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}])" in md
    png = (out / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_focus_through_the_eval_path(workdir, tmp_path):
    records = evaluate(_cfg(workdir, tmp_path, "methods=[focus]",
                            f"focus.corpora=[{workdir / 'focus_train.txt'}]", "focus.options.dim=8",
                            "focus.options.epochs=1", "focus.options.min_count=1"))
    assert {r["method"] for r in records} == {"focus"} and len(records) == 2
    assert all(math.isfinite(r["bits_per_byte"]) for r in records)


def test_max_bytes_cuts_the_same_text_for_everyone(workdir, tmp_path):
    records = evaluate(_cfg(workdir, tmp_path, "methods=[original,fvt]", "max_bytes=100"))
    assert {r["n_text_bytes"] for r in records} == {100}


def test_take_bytes_and_join_lines():
    texts = ["abc", "défg", "hij"]
    assert take_bytes(texts, None) == texts
    assert take_bytes(texts, 5) == ["abc", "d"]  # 'é' is two bytes: never cut inside a character
    assert take_bytes(texts, 6) == ["abc", "dé"]
    assert take_bytes(texts, 3) == ["abc"]
    assert sum(len(t.encode()) for t in take_bytes(texts, 7)) == 7
    docs = join_lines(["a" * 10] * 10, doc_bytes=33)
    assert docs == ["\n".join(["a" * 10] * 3)] * 3 + ["a" * 10]


def test_botchan_test_split_in_order():
    texts = eval_texts("botchan", 3000)
    assert sum(len(t.encode()) for t in texts) == 3000
    assert texts[0].startswith(eval_texts("botchan", 50)[0])


def test_multilingual_records_carry_languages(workdir, tmp_path):
    records = evaluate(_cfg(workdir, tmp_path, "methods=[original,fvt]", "corpora=[glib]", "languages=[en,de,ru]",
                            "max_bytes=1500"))
    assert {r["language"] for r in records} == {"en", "de", "ru"}
    assert all(r["corpus"] == "glib" for r in records)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| tokenizer | method | en | de | ru |" in md
    # parallel: every language evaluates translations of the same English strings
    rows = _rows("glib", "test")
    de = language_lines(rows, "de", ["en", "de", "ru"])
    ru = language_lines(rows, "ru", ["en", "de", "ru"])
    assert len(de) > 20 and [k for _, k in de] == [k for _, k in ru]
    assert len(language_lines(rows, "de")) >= len(de)


def test_markdown_table_layout():
    recs = [
        {"method": "original", "tokenizer": "base", "corpus": "a", "language": None, "bits_per_byte": 1.0,
         "bytes_per_token": 4.0, "delta_bits_per_byte": 0.0},
        {"method": "fvt", "tokenizer": "t", "corpus": "a", "language": None, "bits_per_byte": 1.25,
         "bytes_per_token": 3.5, "delta_bits_per_byte": 0.25},
        {"method": "fvt", "tokenizer": "t", "corpus": "b", "language": None, "bits_per_byte": 2.0,
         "bytes_per_token": 3.0, "delta_bits_per_byte": None},
    ]
    lines = markdown_table(recs).splitlines()
    assert lines[0] == "| tokenizer | method | a | b |"
    assert lines[2] == "| base | original | 1.000 | – |"
    assert lines[3] == "| t | fvt | 1.250 (+0.250) | 2.000 |"


@pytest.mark.parametrize("override,match", [
    ("methods=[nope]", "unknown method"),
    ("methods=[hypernet]", "hypernet_path=DIR"),
    ("corpora=[glib]", "languages="),
    ("corpora=[no-such-corpus]", "no-such-corpus"),
])
def test_user_errors_are_clear(workdir, tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        evaluate(_cfg(workdir, tmp_path, override))


def test_hypernet_from_a_directory_and_a_mismatched_one(workdir, tmp_path):
    from zett.models import ZettHypernet

    base = tiny_llama(train_tokenizer(vocab_size=300, kind="bpe"))  # same weights as the saved base (seed 0)
    ZettHypernet.from_base_model(base, hidden_size=16, num_layers=1).save_pretrained(tmp_path / "hn")
    records = evaluate(_cfg(workdir, tmp_path, "methods=[hypernet,fvt]", f"hypernet_path={tmp_path / 'hn'}"))
    by = {(r["method"], r["corpus"]): r["bits_per_byte"] for r in records}
    assert by["hypernet", "other"] == pytest.approx(by["fvt", "other"], rel=1e-4)

    other = tiny_llama(train_tokenizer(vocab_size=300, kind="bpe"), hidden_size=48)
    ZettHypernet.from_base_model(other, hidden_size=16, num_layers=1).save_pretrained(tmp_path / "hn2")
    with pytest.raises(ValueError, match="hypernet"):
        evaluate(_cfg(workdir, tmp_path, "methods=[hypernet]", f"hypernet_path={tmp_path / 'hn2'}"))


def test_local_corpora_and_text_errors(tmp_path):
    from zett.eval.texts import EvalDataError

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("second")
    (tmp_path / "d" / "a.txt").write_text("first")
    assert eval_texts(str(tmp_path / "d")) == ["first", "second"]
    (tmp_path / "bad.jsonl").write_text('{"txt": "x"}\n')
    with pytest.raises(EvalDataError, match="'text' field"):
        eval_texts(str(tmp_path / "bad.jsonl"))
    with pytest.raises(EvalDataError, match="no languages"):
        eval_texts("botchan", 100, language="de")
    with pytest.raises(EvalDataError, match="available:"):
        eval_texts("glib", 100, language="xx-nope")
