"""Debian-sourced assets when the mirror moves on: stale package lists are refreshed once into $ZETT_HOME/apt, a pin
that has left the mirror is replaced by the mirror's version (checked against its index, recorded, warned about).
apt is a fake script first on PATH: no network, no root."""

import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from fakedeb import build_deb

from zett import assets
from zett.assets import apt, corpora
from zett.assets.registry import REGISTRY, Asset, DebPackage

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")

WORDS = ("the scheduler decides which task runs next on each processor and it tries to keep every one busy while "
         "giving all of them a fair share of time that is available").split()

FAKE_APT = f"""#!{sys.executable}
# A fake apt-get / apt-cache. Package lists: the machine's (no Dir::State::Lists option) offer FAKE_APT_SYSTEM;
# private ones offer FAKE_APT_MIRROR once `apt-get update` has filled them. Every call is logged.
import json, os, shutil, sys
from pathlib import Path

tool, args, opts = Path(sys.argv[0]).name, sys.argv[1:], {{}}
while args[:1] == ["-o"]:
    key, _, value = args[1].partition("=")
    opts[key], args = value, args[2:]
with open(os.environ["FAKE_APT_LOG"], "a") as f:
    f.write(json.dumps([tool, *sys.argv[1:]]) + "\\n")
lists = opts.get("Dir::State::Lists")
if lists is None:
    offered = os.environ["FAKE_APT_SYSTEM"]
else:
    offered = os.environ["FAKE_APT_MIRROR"] if (Path(lists) / "Packages").exists() else ""
versions = [v for v in offered.split(",") if v]
command = args[0]
if command == "update":
    if os.environ.get("FAKE_APT_UPDATE_FAILS"):
        sys.exit("E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Could not resolve host")
    (Path(lists) / "Packages").write_text("fake")
    sys.exit(0)
name, _, version = args[1].partition("=")
version = version or (versions[-1] if versions else "")
deb = Path(os.environ["FAKE_APT_DEB"])
if version not in versions:
    sys.exit(f"E: Version '{{version}}' for '{{name}}' was not found")
if command == "download":
    shutil.copy(deb, Path.cwd() / f"{{name}}_{{version.replace(':', '%3a')}}_all.deb")
elif command == "policy":
    print(f"{{name}}:\\n  Installed: (none)\\n  Candidate: {{versions[-1]}}\\n  Version table:")
elif command == "show":
    sha = os.environ.get("FAKE_APT_INDEX_SHA256") or __import__("hashlib").sha256(deb.read_bytes()).hexdigest()
    print(f"Package: {{name}}\\nVersion: {{version}}\\nSize: {{deb.stat().st_size}}\\nSHA256: {{sha}}\\n")
"""


def _deb(tmp_path: Path, files: dict[str, bytes]) -> Path:
    return build_deb(tmp_path, files, "2.0-1")


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """Put the fake apt first on PATH; -> (configure(system=..., mirror=..., **env), calls(tool, command))."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("apt-get", "apt-cache"):
        (bin_dir / tool).write_text(FAKE_APT)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "apt.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_APT_LOG", str(log))
    monkeypatch.setenv("ZETT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(apt, "_REFRESHED", {})
    monkeypatch.setattr(corpora, "_eval_texts", lambda: ["def f():\n    return 1\n"])

    def configure(system: str, mirror: str, deb: Path, **env: str) -> None:
        monkeypatch.setenv("FAKE_APT_SYSTEM", system)
        monkeypatch.setenv("FAKE_APT_MIRROR", mirror)
        monkeypatch.setenv("FAKE_APT_DEB", str(deb))
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    def calls(tool: str, command: str) -> list[list[str]]:
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        return [r for r in rows if r[0] == tool and command in r]

    return configure, calls


@pytest.fixture
def prose_deb(tmp_path):
    rng = random.Random(0)

    def paragraph() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + "."

    files = {f"usr/share/doc/fake/doc{i:02d}.txt": f"Part {i}. {paragraph()}\n\n{paragraph()}\n".encode()
             for i in range(30)}
    return _deb(tmp_path, files)


def _register(monkeypatch, name: str, deb: Path, version: str = "1.0-1", right_sha: bool = False) -> DebPackage:
    sha = hashlib.sha256(deb.read_bytes()).hexdigest() if right_sha else "ab" * 32
    pkg = DebPackage(f"{name}-pkg", version, sha, deb.stat().st_size, (("usr/share/doc/fake/*.txt", "text"),))
    monkeypatch.setitem(REGISTRY, name, Asset(name, "corpus", "test", "MIT", debs=(pkg,), build="debian_prose"))
    return pkg


def test_a_pin_the_machines_lists_have_needs_no_refresh(fake_apt, prose_deb, monkeypatch):
    configure, calls = fake_apt
    configure(system="1.0-1", mirror="1.0-1", deb=prose_deb)
    _register(monkeypatch, "fake-a", prose_deb, right_sha=True)
    assets.fetch("fake-a")
    assert calls("apt-get", "update") == [] and len(calls("apt-get", "download")) == 1


def test_a_missing_pin_refreshes_the_private_lists_exactly_once(fake_apt, prose_deb, monkeypatch, capsys):
    configure, calls = fake_apt
    configure(system="", mirror="1.0-1", deb=prose_deb)  # the machine's lists predate the pin
    for name in ("fake-a", "fake-b"):
        _register(monkeypatch, name, prose_deb, right_sha=True)
        assets.fetch(name)
    updates = calls("apt-get", "update")
    assert len(updates) == 1
    home = assets.home()
    assert f"Dir::State::Lists={home / 'apt' / 'lists'}" in updates[0]
    assert f"Dir::Cache={home / 'apt' / 'cache'}" in updates[0]
    assert "has left" not in capsys.readouterr().err  # the pin itself was found: no warning
    assert [s["version"] for s in assets.sources("fake-b")] == ["1.0-1"]


def test_a_pin_that_left_the_mirror_is_replaced_checked_recorded_and_cleaned(fake_apt, prose_deb, monkeypatch,
                                                                               capsys):
    configure, calls = fake_apt
    configure(system="", mirror="2.0-1", deb=prose_deb)  # after the refresh the mirror offers only 2.0-1
    pkg = _register(monkeypatch, "fake-a", prose_deb)
    root = assets.fetch("fake-a")
    assert [c[-1] for c in calls("apt-get", "download")][-1] == "fake-a-pkg=2.0-1"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "has left the Debian mirror" in line]
    assert len(warnings) == 1 and "fake-a-pkg=1.0-1" in warnings[0] and "using 2.0-1" in warnings[0]
    _register(monkeypatch, "fake-b", prose_deb)
    assets.fetch("fake-b")
    assert len(calls("apt-get", "update")) == 1  # one refresh for both assets
    assert sum("has left" in line for line in capsys.readouterr().err.splitlines()) == 1
    sha = hashlib.sha256(prose_deb.read_bytes()).hexdigest()
    want = {"source": "debian", "asset": "fake-a", "package": pkg.name, "pinned_version": "1.0-1",
            "version": "2.0-1", "sha256": sha, "size": prose_deb.stat().st_size}
    assert json.loads((root / ".zett-asset.json").read_text())["debian"] == [
        {k: v for k, v in want.items() if k not in {"source", "asset"}}]
    assert assets.sources("fake-a") == [want]
    train = assets.load_corpus("fake-a", "train")  # the same cleaning and decontamination as the pinned version
    assert len(train) > 10 and all(t.startswith("Part ") for t in train["text"])
    assert corpora.decontamination_stats("fake-a")["train_docs"] == len(train)


def test_a_replacement_whose_bytes_differ_from_the_index_is_refused(fake_apt, prose_deb, monkeypatch):
    configure, _ = fake_apt
    configure(system="", mirror="2.0-1", deb=prose_deb, FAKE_APT_INDEX_SHA256="0" * 64)
    _register(monkeypatch, "fake-a", prose_deb)
    with pytest.raises(assets.AssetError, match=r"'fake-a'.*the mirror's index gives 0{64}"):
        assets.fetch("fake-a")
    assert not assets.asset_dir("fake-a").exists()


def test_a_package_gone_from_the_mirror_names_the_sources_to_check(fake_apt, prose_deb, monkeypatch):
    configure, _ = fake_apt
    configure(system="", mirror="", deb=prose_deb)
    _register(monkeypatch, "fake-a", prose_deb)
    with pytest.raises(assets.AssetError, match=r"'fake-a'.*no candidate.*sources\.list"):
        assets.fetch("fake-a")


def test_a_failed_refresh_is_one_clear_error_and_is_not_retried(fake_apt, prose_deb, monkeypatch):
    configure, calls = fake_apt
    configure(system="", mirror="1.0-1", deb=prose_deb, FAKE_APT_UPDATE_FAILS="1")
    for name in ("fake-a", "fake-b"):
        _register(monkeypatch, name, prose_deb, right_sha=True)
        with pytest.raises(assets.AssetError, match=rf"'{name}'.*`apt-get update`\) failed.*Could not resolve host"
                                                    r".*network"):
            assets.fetch(name)
    assert len(calls("apt-get", "update")) == 1


def test_gettext_catalogs_come_from_the_refreshed_lists_and_are_recorded(fake_apt, tmp_path, monkeypatch):
    configure, calls = fake_apt
    deb = _deb(tmp_path, {"usr/share/locale/de/LC_MESSAGES/fakedomain.mo": b"catalog"})
    configure(system="", mirror="1:2.0-1", deb=deb)
    monkeypatch.setitem(REGISTRY, "fake-mo", Asset("fake-mo", "corpus", "test", "LGPL", debian=("fake-mo-data",),
                                                   build="debian_mo:fakedomain"))
    root = assets.fetch("fake-mo")
    assert (root / "de.mo").read_bytes() == b"catalog" and len(calls("apt-get", "update")) == 1
    assert assets.sources("fake-mo") == [{"source": "debian", "asset": "fake-mo", "package": "fake-mo-data",
                                          "version": "1:2.0-1", "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
                                          "size": deb.stat().st_size}]
