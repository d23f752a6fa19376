"""Pinned Debian packages: download one exact version with apt, verify its sha256, take the files an asset needs.

``apt-get download NAME=VERSION`` fetches from the machine's configured Debian mirror (it needs ``apt-get update``
once, and root or the ``_apt`` user's access to the working directory). A package whose pinned version is no longer
on the mirror, or whose bytes differ from the recorded sha256, is an error that names the asset and the fix.
"""

from __future__ import annotations

import fnmatch
import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

from zett.assets.registry import Asset, DebPackage


def _error(msg: str):
    from zett.assets.store import AssetError

    return AssetError(msg)


def download_deb(asset: Asset, pkg: DebPackage, dest: Path) -> Path:
    """Download ``pkg`` (its pinned version) into ``dest`` and verify size and sha256; return the .deb path."""
    from zett.assets.store import sha256_file

    spec = f"{pkg.name}={pkg.version}"
    try:
        r = subprocess.run(["apt-get", "download", spec], cwd=dest, capture_output=True, text=True)
    except FileNotFoundError:
        raise _error(f"asset {asset.name!r} needs the Debian package {spec}, but apt-get is not available. "
                     "Fetch it on a Debian/Ubuntu machine (as root) and copy $ZETT_HOME/assets/"
                     f"{asset.name} over.") from None
    debs = sorted(dest.glob(f"{pkg.name}_*.deb"))
    if r.returncode != 0 or not debs:
        raise _error(
            f"asset {asset.name!r}: `apt-get download {spec}` failed: {(r.stderr or r.stdout).strip()[-300:]}. "
            "Run `apt-get update` (as root) and retry; if this version has left the mirror, pin the current one "
            f"in zett/assets/registry.py (version and sha256 from `apt-cache show {pkg.name}`) and re-check its text."
        )
    deb = debs[0]
    size, digest = deb.stat().st_size, sha256_file(deb)
    if size != pkg.size or digest != pkg.sha256:
        deb.unlink()
        raise _error(
            f"asset {asset.name!r}: {deb.name} has sha256 {digest} ({size} bytes) but the registry pins "
            f"{pkg.sha256} ({pkg.size} bytes). The mirror serves different bytes for {spec}: check the mirror, "
            "or re-pin the package in zett/assets/registry.py after reviewing it."
        )
    return deb


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
        raise _error(f"asset {asset.name!r}: no file of {pkg.name}={pkg.version} matches {list(pkg.files)}")
    return n


def build_debian_prose(asset: Asset, out: Path) -> None:
    """The ``debian_prose`` build step: pinned packages -> selected raw files under ``out/src``. Cleaning happens
    when the corpus is loaded (``zett.assets.corpora``), so a better cleaner needs no new download."""
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in asset.debs:
            work = Path(tmp) / pkg.name
            work.mkdir()
            work.chmod(0o777)  # apt drops to the _apt user when it can
            deb = download_deb(asset, pkg, work)
            x = work / "x"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(x)], check=True)
            take_files(asset, pkg, x, out)
