"""A tiny Debian package built with dpkg-deb, for tests of Debian-sourced assets (no mirror involved)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def build_deb(tmp_path: Path, files: dict[str, bytes], version: str, name: str = "fake.deb") -> Path:
    """``fake-doc`` at ``version`` holding ``files`` (path inside the package -> bytes), written to tmp_path/name."""
    root = tmp_path / "pkgroot"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: fake-doc\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n")
    deb = tmp_path / name
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb
