"""Integrity of a hypernetwork directory: ``digest.json`` holds the sha256 of each of its safetensors files.

``ZettHypernet.save_pretrained`` (so a zett-train export and ``zett.hypernets.ship``) writes it; every load from a
directory (``ZettHypernet.from_pretrained``, the shipped ones included) checks it first, so a flipped bit is refused
with a message naming the directory instead of predicting garbage. A directory without ``digest.json`` (an export
from before digests) still loads, with one warning per directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

DIGEST_FILE = "digest.json"
log = logging.getLogger("zett.models")
_warned: set[str] = set()
_verified: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256: a directory checked before is not hashed again


def sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _verified[key] = h.hexdigest()
    return _verified[key]


def compute(directory: str | Path) -> dict[str, str]:
    """{file name: sha256} of every ``*.safetensors`` file in ``directory``."""
    d = Path(directory)
    return {p.name: sha256_file(p) for p in sorted(d.glob("*.safetensors"))}


def write(directory: str | Path) -> Path:
    """Write ``<directory>/digest.json`` for the safetensors files there now."""
    out = Path(directory) / DIGEST_FILE
    out.write_text(json.dumps({"algorithm": "sha256", "files": compute(directory)}, indent=2) + "\n")
    return out


def problem(directory: str | Path) -> str | None:
    """What is wrong with ``directory``'s weights against its digest (None: they match, or there is no digest)."""
    d = Path(directory)
    try:
        recorded = json.loads((d / DIGEST_FILE).read_text())["files"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its {DIGEST_FILE} is unreadable ({type(e).__name__})"
    actual = compute(d)
    for name, sha in sorted(recorded.items()):
        if name not in actual:
            return f"{name}, listed in {DIGEST_FILE}, is missing"
        if actual[name] != sha:
            return f"{name} does not match its sha256 in {DIGEST_FILE} (the file is corrupted or was changed)"
    extra = sorted(set(actual) - set(recorded))
    return f"{extra[0]} is not listed in {DIGEST_FILE}" if extra else None


def verify(directory: str | Path, what: str | None = None) -> None:
    """Raise ``HypernetFormatError`` naming ``what`` (default: the directory) when the weights do not match the
    digest; warn once when the directory has none."""
    d = Path(directory)
    what = what or f"hypernetwork directory {d}"
    if not (d / DIGEST_FILE).exists():
        key = str(d.resolve())
        if key not in _warned:
            _warned.add(key)
            log.warning("%s has no %s (an export from before digests): its weights cannot be checked; save it "
                        "again with ZettHypernet.save_pretrained to add one", what, DIGEST_FILE)
        return
    bad = problem(d)
    if bad:
        from zett import hypernets
        from zett.models.modeling import HypernetFormatError

        fix = ("reinstall zett (pip install --force-reinstall zett)" if d.resolve().is_relative_to(
            hypernets.SHIPPED_DIR) else "export it again (zett-train writes hypernet/) or give another directory")
        raise HypernetFormatError(f"{what}: {bad}; {fix}")
