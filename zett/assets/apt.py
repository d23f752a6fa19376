"""Running apt for Debian-sourced assets, with package lists that can be refreshed without touching the system's.

The machine's own lists (``/var/lib/apt/lists``) may predate the versions zett pins, and refreshing them needs root.
So when a package is not found, zett refreshes a private copy once per process, under ``$ZETT_HOME/apt``
(``apt-get update -o Dir::State::Lists=... -o Dir::Cache=...``, the machine's sources and keys), as root or not.
apt checks what it downloads against the sha256 of the mirror's signed index, with these lists as with the system's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from zett.outputs import file_lock

# private apt dirs this process refreshed (at most one `apt-get update` each) -> the error of a failed refresh or ""
_REFRESHED: dict[str, str] = {}


def _error(msg: str):
    from zett.assets.store import AssetError

    return AssetError(msg)


def apt_dir() -> Path:
    from zett.assets.store import home

    return home() / "apt"


def private_options() -> list[str]:
    """apt options that point its package lists and caches at ``$ZETT_HOME/apt``."""
    d = apt_dir()
    return ["-o", f"Dir::State::Lists={d / 'lists'}", "-o", f"Dir::Cache={d / 'cache'}"]


def has_private_lists() -> bool:
    lists = apt_dir() / "lists"
    return lists.is_dir() and any(p.is_file() and p.name != "lock" for p in lists.iterdir())


def run(tool: str, args: list[str], *, private: bool, cwd: Path | None = None,
        asset: str = "") -> subprocess.CompletedProcess:
    """``tool [private options] args``; a machine without apt is one clear error naming the asset."""
    cmd = [tool, *(private_options() if private else []), *args]
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise _error(f"asset {asset!r} comes from Debian packages, but {tool} is not available. Fetch it on a "
                     f"Debian/Ubuntu machine and copy $ZETT_HOME/assets/{asset} over.") from None


def tail(r: subprocess.CompletedProcess, n: int = 300) -> str:
    return " ".join((r.stderr or r.stdout or "").split())[-n:]


def refresh_lists(asset: str) -> None:
    """Refresh the private package lists, once per process (later calls return at once)."""
    d = apt_dir()
    if str(d) not in _REFRESHED:
        for sub in ("lists/partial", "cache/archives/partial"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        with file_lock(d / ".lock"):
            if str(d) not in _REFRESHED:
                r = run("apt-get", ["update", "-q"], private=True, asset=asset)
                _REFRESHED[str(d)] = "" if r.returncode == 0 else tail(r)
    if _REFRESHED[str(d)]:  # a failed refresh is not retried by this process: every asset gets its error
        raise _error(f"asset {asset!r}: its Debian package is not in this machine's package lists, and refreshing "
                     f"them into {d / 'lists'} (`apt-get update`) failed: {_REFRESHED[str(d)]}. Check the network "
                     "and the machine's apt sources (/etc/apt/sources.list*), or fetch the asset on a machine that "
                     f"can and copy $ZETT_HOME/assets/{asset} over.")


def download(spec: str, dest: Path, *, private: bool, asset: str) -> subprocess.CompletedProcess:
    """``apt-get download NAME[=VERSION]`` into ``dest`` (made writable for apt's unprivileged _apt user)."""
    os.chmod(dest, 0o777)
    return run("apt-get", ["download", spec], private=private, cwd=dest, asset=asset)


def candidate(name: str, asset: str) -> str | None:
    """The version of ``name`` apt would take now (``apt-cache policy``, private lists), or None when none."""
    r = run("apt-cache", ["policy", name], private=True, asset=asset)
    m = re.search(r"^\s*Candidate:\s*(\S+)", r.stdout or "", re.M)
    return None if r.returncode != 0 or not m or m.group(1) == "(none)" else m.group(1)


def index_record(name: str, version: str, asset: str) -> dict[str, str]:
    """The mirror's index record of ``name=version`` (``apt-cache show``): its fields, SHA256 and Size included."""
    r = run("apt-cache", ["show", f"{name}={version}"], private=True, asset=asset)
    fields: dict[str, str] = {}
    for line in (r.stdout or "").split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            fields[key.strip()] = value.strip()
    if r.returncode != 0 or "SHA256" not in fields or "Size" not in fields:
        raise _error(f"asset {asset!r}: the package index has no sha256 for {name}={version} "
                     f"(`apt-cache show {name}={version}`: {tail(r) or 'no record'}). Re-pin the package in "
                     "zett/assets/registry.py after reviewing it.")
    return fields
