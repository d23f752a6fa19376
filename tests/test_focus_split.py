"""FOCUS never trains on the text it is scored on: a local corpus is split by document (zett.eval.texts.local_part)."""

from __future__ import annotations

import json

import pytest

from zett.eval.texts import LOCAL_TRAIN_FRACTION, EvalDataError, eval_texts, local_part

DOCS = [f"Document {i}: " + " ".join(f"word{(i * 7 + j) % 53}" for j in range(40)) for i in range(30)]


def test_local_part_is_a_deterministic_disjoint_split_by_document():
    train, test = local_part(DOCS, "train"), local_part(DOCS, "test")
    assert set(train).isdisjoint(test) and sorted(train + test) == sorted(DOCS)
    assert len(train) == round(len(DOCS) * LOCAL_TRAIN_FRACTION)
    # the split depends on the texts only: the same in another order, stored order kept within a part
    assert sorted(local_part(DOCS[::-1], "train")) == sorted(train)
    assert train == [d for d in DOCS if d in set(train)]
    # copies of a document fall in the same part
    doubled = DOCS + DOCS[:5]
    assert set(local_part(doubled, "train")).isdisjoint(local_part(doubled, "test"))


def test_local_part_needs_two_distinct_documents():
    with pytest.raises(EvalDataError, match="focus.corpora"):
        local_part(["one document", "one document"], "train")
    assert local_part(["a", "b"], "train") != local_part(["a", "b"], "test")


def test_eval_texts_of_a_local_corpus_with_and_without_the_split(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    whole = eval_texts(str(path), None)
    scored = eval_texts(str(path), None, split="test", local_split=True)
    trained = eval_texts(str(path), None, split="train", local_split=True)
    assert whole == DOCS
    assert set(scored).isdisjoint(trained) and sorted(scored + trained) == sorted(DOCS)


def test_zett_eval_focus_on_a_local_corpus_scores_only_unseen_documents(tmp_path, monkeypatch):
    """methods=[original,focus] on a local .jsonl without focus.corpora: FOCUS gets the train part, and every
    method is scored on exactly the bytes of the test part."""
    from hydra import compose, initialize_config_dir

    import zett.eval.runner as runner
    from zett.cli.eval import CONFIG_DIR, evaluate

    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    seen = {}
    real_focus_texts = runner.focus_texts

    def spy(settings, corpora, languages):
        seen["focus"] = real_focus_texts(settings, corpora, languages)
        return seen["focus"]

    monkeypatch.setattr(runner, "focus_texts", spy)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("eval", [
            "base_model=tiny-random", "targets=[gpt2]", f"corpora=[{path}]", "methods=[original,focus]",
            "max_bytes=null", "focus.options.dim=8", "focus.options.epochs=1", "focus.options.min_count=1",
            "bootstrap=0", "plot=false", "progress=false", "device=cpu", f"output_dir={tmp_path / 'out'}"])
    records = evaluate(cfg)
    test_part = local_part(DOCS, "test")
    assert seen["focus"] == local_part(DOCS, "train")
    assert {r["method"] for r in records} == {"original", "focus"}
    for r in records:
        assert r["n_bytes"] == sum(len(d.encode()) for d in test_part)
