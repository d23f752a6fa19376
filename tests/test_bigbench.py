"""BIG-bench JSON tasks -> multiple-choice records, and the bigbench asset entry (no 358 MB download here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zett.assets.cli import main as cli_main
from zett.assets.registry import REGISTRY
from zett.eval.bigbench import BigBenchError, load_task, multiple_choice_tasks

FIXTURES = Path(__file__).parent / "fixtures" / "bigbench" / "tasks"


def test_default_prefixes_and_gold_index():
    recs = load_task("toy_mc", FIXTURES)
    assert len(recs) == 6
    r = recs[1]
    assert r["choices"] == ["two", "four", "six"] and r["target"] == 1
    assert r["prompt"].startswith("Q: How many legs does a cat have?\n  choice: ")
    assert r["prompt"].endswith("\nA: ")
    listed = r["prompt"].split("\n  choice: ")[1:]
    listed[-1] = listed[-1].removesuffix("\nA: ")
    assert sorted(listed) == sorted(r["choices"])  # every choice listed once, in some order
    assert [x["target"] for x in recs] == [0, 1, 2, 0, 1, 0]


def test_subtasks_keep_their_own_prefixes_and_skip_non_mc_examples():
    recs = load_task("toy_sub", FIXTURES)
    assert [(r["subtask"], r["index"]) for r in recs] == [("custom", 0), ("custom", 1), ("plain", 0), ("plain", 3)]
    custom = recs[0]
    assert custom["prompt"] == "Complete the sentence.\n\nSentence: The dog\nEnding:"
    assert custom["choices"] == [" barked.", " meowed.", " flew."] and custom["target"] == 0
    assert recs[1]["target"] == 0  # 0.9 beats 0.1
    assert recs[3]["target"] == 1 and recs[3]["prompt"].startswith("Q: Is fire wet?")
    only = load_task("toy_sub/plain", FIXTURES)
    assert [r["index"] for r in only] == [0, 3]


def test_choice_listing_is_deterministic():
    assert load_task("toy_mc", FIXTURES) == load_task("toy_mc", FIXTURES)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(BigBenchError, match="toy_mc"):
        load_task("no_such_task", FIXTURES)
    assert multiple_choice_tasks(FIXTURES) == ["toy_mc", "toy_sub"]
    assert multiple_choice_tasks(FIXTURES, min_examples=5) == ["toy_mc"]


def test_bigbench_asset_is_large_and_keeps_only_task_json():
    a = REGISTRY["bigbench"]
    assert a.large and a.licence.startswith("Apache-2.0") and a.build == "keep_task_json"
    assert [p.filename for p in a.packages] == ["bigbench-1.0.0.tar.gz"]
    from zett.assets.registry import EN_PROSE

    # the other large assets are the Debian prose corpora; models, tokenizers and the test corpora are not
    assert {n for n, x in REGISTRY.items() if x.large} == {"bigbench", "en-prose", *EN_PROSE}


def test_keep_task_json_build_step(tmp_path):
    from zett.assets.store import _build_keep_task_json

    (tmp_path / "t" / "sub").mkdir(parents=True)
    (tmp_path / "t" / "task.json").write_text("{}")
    (tmp_path / "t" / "sub" / "task.json").write_text("{}")
    (tmp_path / "t" / "README.md").write_text("x")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "task.py").write_text("x")
    _build_keep_task_json(REGISTRY["bigbench"], tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "t", "t/sub", "t/sub/task.json", "t/task.json"]


def test_fetch_all_leaves_large_assets_out(monkeypatch, capsys):
    import zett.assets.cli as cli

    fetched = []
    monkeypatch.setattr(cli, "fetch", lambda n, **kw: fetched.append(n) or Path("/x"))
    assert cli_main(["fetch", "--all", "--accept-licence"]) == 0
    assert "bigbench" not in fetched and "botchan" in fetched
    assert "skipping bigbench" in capsys.readouterr().err
    fetched.clear()
    assert cli_main(["fetch", "--all", "--accept-licence", "--include-large"]) == 0
    assert "bigbench" in fetched
