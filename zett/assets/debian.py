"""Pinned Debian packages: download one version with apt, verify its sha256, take the files an asset needs.

``apt-get download NAME=VERSION`` fetches from the machine's configured Debian mirror. When the pinned version is
not found (the machine's lists predate it, or it has left the mirror), the package lists are refreshed once into
``$ZETT_HOME/apt`` (``zett.assets.apt``) and the pin is tried again. A pin that has left the mirror is replaced by
the mirror's current version (the candidate), checked against the sha256 of the mirror's signed index; the version
and sha256 actually used are recorded in the asset's manifest (``zett.assets.store.sources``) and one warning line
says so. The pinned version, when found, must match the registry's sha256. See docs/data.md.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from zett.assets import apt
from zett.assets.registry import Asset, DebPackage


def _error(msg: str):
    from zett.assets.store import AssetError

    return AssetError(msg)


def fetch_deb(asset: str, spec: str, dest: Path, private: bool) -> tuple[Path | None, str]:
    """One ``apt-get download NAME[=VERSION]`` into ``dest`` -> (the .deb it wrote or None, apt's error text)."""
    for old in dest.glob("*.deb"):
        old.unlink()
    r = apt.download(spec, dest, private=private, asset=asset)
    debs = sorted(dest.glob(f"{spec.partition('=')[0]}_*.deb"))
    return (debs[0], "") if r.returncode == 0 and debs else (None, apt.tail(r) or "no .deb written")


def _pinned(asset: Asset, pkg: DebPackage, dest: Path) -> Path | None:
    """The pinned version from the lists at hand: the machine's, then ours, then ours refreshed (once a process)."""
    spec = f"{pkg.name}={pkg.version}"
    deb, _ = fetch_deb(asset.name, spec, dest, private=False)
    if deb is None and apt.has_private_lists():
        deb, _ = fetch_deb(asset.name, spec, dest, private=True)
    if deb is None:
        apt.refresh_lists(asset.name)
        deb, _ = fetch_deb(asset.name, spec, dest, private=True)
    return deb


def _check(asset: Asset, deb: Path, spec: str, sha256: str, size: int, against: str, fix: str) -> str:
    from zett.assets.store import sha256_file

    got_size, digest = deb.stat().st_size, sha256_file(deb)
    if got_size != size or digest != sha256:
        deb.unlink()
        raise _error(f"asset {asset.name!r}: {deb.name} has sha256 {digest} ({got_size} bytes) but {against} "
                     f"{sha256} ({size} bytes). The mirror serves different bytes for {spec}: {fix}")
    return digest


def download_deb(asset: Asset, pkg: DebPackage, dest: Path) -> tuple[Path, dict]:
    """Download ``pkg`` into ``dest`` and verify it; -> (the .deb, its record: package, pinned_version, version,
    sha256, size). The pinned version when the mirror has it, else the mirror's candidate (see the module doc)."""
    spec = f"{pkg.name}={pkg.version}"
    deb = _pinned(asset, pkg, dest)
    if deb is not None:
        digest = _check(asset, deb, spec, pkg.sha256, pkg.size, "the registry pins",
                        "check the mirror, or re-pin the package in zett/assets/registry.py after reviewing it.")
        return deb, {"package": pkg.name, "pinned_version": pkg.version, "version": pkg.version,
                     "sha256": digest, "size": pkg.size}
    # the pin has left the mirror (the lists are fresh now): take the version the mirror serves
    version = apt.candidate(pkg.name, asset.name)
    if version is None:
        raise _error(f"asset {asset.name!r}: {spec} is not on the machine's Debian mirror, and no other version of "
                     f"{pkg.name} is (`apt-cache policy {pkg.name}` has no candidate after refreshing the lists in "
                     f"{apt.apt_dir()}). Check the machine's apt sources (/etc/apt/sources.list*; the prose corpora "
                     "are Debian bookworm packages), or fetch the asset elsewhere and copy $ZETT_HOME/assets/"
                     f"{asset.name} over.")
    if version == pkg.version:  # the mirror lists the pin: the download itself failed
        _, why = fetch_deb(asset.name, spec, dest, private=True)
        raise _error(f"asset {asset.name!r}: `apt-get download {spec}` failed: {why}. The mirror lists this "
                     "version: check the network and the machine's apt sources, and retry.")
    index = apt.index_record(pkg.name, version, asset.name)
    moved = f"{pkg.name}={version}"
    deb, why = fetch_deb(asset.name, moved, dest, private=True)
    if deb is None:
        raise _error(f"asset {asset.name!r}: {spec} has left the Debian mirror and `apt-get download {moved}` "
                     f"(its replacement) failed too: {why}. Check the network and the machine's apt "
                     "sources, or re-pin the package in zett/assets/registry.py.")
    digest = _check(asset, deb, moved, index["SHA256"], int(index["Size"]), "the mirror's index gives",
                    "check the mirror and retry.")
    print(f"zett-assets: warning: asset {asset.name!r}: the pinned {spec} has left the Debian mirror; using "
          f"{version} instead (sha256 {digest}, checked against the mirror's signed index; recorded in the "
          "asset's manifest, see docs/data.md)", file=sys.stderr)
    return deb, {"package": pkg.name, "pinned_version": pkg.version, "version": version, "sha256": digest,
                 "size": int(index["Size"])}


def _wanted(rel: str, pkg: DebPackage) -> str | None:
    """The cleaner format for a path inside the package, or None when the asset does not take it."""
    if any(fnmatch.fnmatch(rel, x) for x in pkg.exclude):
        return None
    for pattern, fmt in pkg.files:
        # fnmatch's * crosses '/', so "a/**/*.html" also needs the direct-child form "a/*.html".
        if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(rel, pattern.replace("/**/", "/")):
            return fmt
    return None


def take_files(asset: Asset, pkg: DebPackage, root: Path, out: Path) -> int:
    """Copy the files of an extracted package tree ``root`` that ``pkg.files`` selects to
    ``out/src/<format>/<path in package>`` (``.gz`` decompressed); returns how many."""
    n = 0
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        rel = p.relative_to(root).as_posix()
        fmt = _wanted(rel, pkg)
        if fmt is None:
            continue
        target = out / "src" / fmt / (rel[:-3] if rel.endswith(".gz") else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        with (gzip.open(p, "rb") if rel.endswith(".gz") else open(p, "rb")) as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        n += 1
    if n == 0:
        raise _error(f"asset {asset.name!r}: no file of the package {pkg.name} matches {list(pkg.files)}; if its "
                     "version was replaced (a warning said so), re-pin it in zett/assets/registry.py")
    return n


def build_debian_prose(asset: Asset, out: Path) -> list[dict]:
    """The ``debian_prose`` build step: pinned packages -> selected raw files under ``out/src``; returns the record
    of each package used (for the manifest). Cleaning and decontamination happen when the corpus is loaded
    (``zett.assets.corpora``), keyed by the files' hashes: a replaced version is cleaned like the pinned one."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in asset.debs:
            work = Path(tmp) / pkg.name
            work.mkdir()
            deb, record = download_deb(asset, pkg, work)
            x = work / "x"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(x)], check=True)
            take_files(asset, pkg, x, out)
            records.append(record)
    return records


def build_debian_mo(asset: Asset, out: Path, domain: str) -> list[dict]:
    """Collect ``<lang>.mo`` catalogs of one gettext domain from Debian packages (downloaded with apt, the lists
    refreshed once when the machine's are stale, or, failing that, from an installed copy under /usr/share/locale);
    returns the record of each package downloaded."""
    from zett.assets.store import AssetError, sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        roots, records = [], []
        for i, pkg in enumerate(asset.debian):
            work = Path(tmp) / str(i)
            work.mkdir()
            deb, _ = fetch_deb(asset.name, pkg, work, private=False)
            if deb is None:
                with contextlib.suppress(AssetError):  # offline: the installed copy may still do
                    apt.refresh_lists(asset.name)
                    deb, _ = fetch_deb(asset.name, pkg, work, private=True)
            if deb is not None:
                x = work / "x"
                subprocess.run(["dpkg-deb", "-x", str(deb), str(x)], check=True)
                roots.append(x / "usr/share/locale")
                version = deb.name.split("_")[1] if deb.name.count("_") >= 2 else ""
                records.append({"package": pkg, "version": version.replace("%3a", ":"), "sha256": sha256_file(deb),
                                "size": deb.stat().st_size})
        roots.append(Path("/usr/share/locale"))
        for root in roots:
            catalogs = sorted(root.glob(f"*/LC_MESSAGES/{domain}.mo"))
            if catalogs:
                for c in catalogs:
                    shutil.copyfile(c, out / f"{c.parent.parent.name}.mo")
                return records if root != roots[-1] else [{"package": p, "version": "installed copy"}
                                                            for p in asset.debian]
    raise AssetError(
        f"asset {asset.name!r}: no {domain}.mo catalogs found. Install the Debian package(s) "
        f"{' '.join(asset.debian)} (`apt-get install {' '.join(asset.debian)}`, done by `make setup` as root)."
    )
