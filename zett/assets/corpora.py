"""Text corpora from the offline assets, as ``datasets.Dataset`` objects with a ``text`` column.

Every corpus has deterministic ``train`` / ``validation`` / ``test`` splits that never share a document. Multilingual
corpora add a ``language`` column. Splits are decided by stable keys (chapter, file path, English source string),
never by random state, so they are identical on every machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import struct
from pathlib import Path

from zett.assets.store import AssetError, get, path

SPLITS = ("train", "validation", "test")


def split_of(key: str, validation: float = 0.05, test: float = 0.05) -> str:
    """Assign a key to a split by its hash: stable across machines and Python versions."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if u < test else "validation" if u < test + validation else "train"


# -- readers --------------------------------------------------------------------------------------------------

_GUTENBERG_START = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*?\*\*\*", re.S)
_GUTENBERG_END = re.compile(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg", re.I)
_CHAPTER = re.compile(r"^CHAPTER ([IVXLC]+)\.?\s*$", re.M)
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def _roman(s: str) -> int:
    total = 0
    for a, b in zip(s, s[1:] + " ", strict=True):
        v = _ROMAN[a]
        total += -v if b in _ROMAN and _ROMAN[b] > v else v
    return total


def _botchan(root: Path) -> list[dict]:
    raw = (root / "botchan.txt").read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    m = _GUTENBERG_START.search(raw)
    body = raw[m.end():] if m else raw
    e = _GUTENBERG_END.search(body)
    body = body[: e.start()] if e else body
    body = body.split("--(THE END)--")[0]  # the transcriber's typo notes follow the last line
    parts = _CHAPTER.split(body)  # [translator's note, num, text, num, text, ...]
    chapters = [(0, parts[0])] + [(_roman(n), t) for n, t in zip(parts[1::2], parts[2::2], strict=True)]
    rows = []
    for chapter, text in chapters:
        # The file has hard line breaks and no paragraph marks: keep its lines, one record per chapter.
        text = "\n".join(line.rstrip() for line in text.strip().splitlines())
        split = "test" if chapter == 11 else "validation" if chapter == 10 else "train"
        if text:
            rows.append({"text": text, "chapter": chapter, "split": split})
    return rows


_STDLIB_SKIP = ("test/", "idlelib/idle_test/", "lib2to3/tests/", "tkinter/test/", "site-packages/", "__pycache__/")


def _stdlib(root: Path) -> list[dict]:
    stdlib = Path(json.loads((root / "source.json").read_text())["stdlib"])
    rows = []
    for p in sorted(stdlib.rglob("*.py")):
        rel = p.relative_to(stdlib).as_posix()
        if rel.startswith(_STDLIB_SKIP) or "/test/" in rel or "/tests/" in rel:
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            rows.append({"text": text, "path": rel, "split": split_of(rel)})
    return rows


def read_mo(path: Path) -> dict[str, str]:
    """Parse a GNU gettext ``.mo`` catalog into {msgid: msgstr} (singular forms; header and empty entries dropped).
    Python's ``gettext`` rejects some of Debian's plural headers, hence this small reader."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    if struct.unpack(endian + "I", data[:4])[0] != 0x950412DE:
        raise AssetError(f"{path} is not a gettext .mo file")
    n, orig, trans = struct.unpack(endian + "III", data[8:20])
    out = {}
    for i in range(n):
        olen, ooff = struct.unpack(endian + "II", data[orig + 8 * i: orig + 8 * i + 8])
        tlen, toff = struct.unpack(endian + "II", data[trans + 8 * i: trans + 8 * i + 8])
        msgid = data[ooff: ooff + olen].split(b"\0")[0].decode("utf-8", "replace")
        msgstr = data[toff: toff + tlen].split(b"\0")[0].decode("utf-8", "replace")
        if "\x04" in msgid:  # message context
            msgid = msgid.split("\x04", 1)[1]
        if msgid and msgstr:
            out[msgid] = msgstr
    return out


def _mo_corpus(root: Path) -> list[dict]:
    rows = []
    english: dict[str, None] = {}
    for mo in sorted(root.glob("*.mo")):
        lang = mo.stem
        for msgid, msgstr in read_mo(mo).items():
            english.setdefault(msgid)
            rows.append({"text": msgstr, "language": lang, "source": msgid, "split": split_of(msgid)})
    rows += [{"text": m, "language": "en", "source": m, "split": split_of(m)} for m in english]
    return rows


def _humaneval(root: Path) -> list[dict]:
    rows = []
    with gzip.open(root / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                p = json.loads(line)
                rows.append({
                    "text": p["prompt"] + p["canonical_solution"], "task_id": p["task_id"],
                    "split": split_of(p["task_id"], 0.1, 0.1),
                })
    return rows


def _chatterbot(root: Path) -> list[dict]:
    import yaml

    rows = []
    for f in sorted((root / "data").glob("*/*.yml")):
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        for i, conv in enumerate(doc.get("conversations") or []):
            lines = [str(x) for x in (conv if isinstance(conv, list) else [conv]) if x is not None]
            if lines:
                key = f"{f.parent.name}/{f.name}#{i}"
                rows.append({"text": "\n".join(lines), "language": f.parent.name, "id": key,
                             "split": split_of(key, 0.1, 0.1)})
    return rows


_READERS = {
    "botchan": _botchan, "stdlib-code": _stdlib, "glib": _mo_corpus, "gtk": _mo_corpus,
    "humaneval": _humaneval, "chatterbot": _chatterbot,
}


# -- English prose from Debian documentation (cleaned and decontaminated on first load, then cached) -----------

MIN_DOC_CHARS = 200  # a file that cleans to less than this (an index, a stub page) is not a document


def _cache_dir() -> Path:
    from zett.assets.store import home

    d = home() / "cache" / "prose"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_atomic(target: Path, data: bytes) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_documents(src: Path) -> list[dict]:
    """Clean every file under ``src/<format>/`` (see ``zett.assets.prose``) into rows {text, path, split}: one
    document per file, boilerplate repeated across files removed, split by a hash of the path."""
    from zett.assets.prose import CLEANERS, drop_boilerplate

    paths, texts = [], []
    for fmt_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        clean = CLEANERS[fmt_dir.name]
        for f in sorted(p for p in fmt_dir.rglob("*") if p.is_file()):
            paths.append(f.relative_to(fmt_dir).as_posix())
            texts.append(clean(f.read_bytes().decode("utf-8", "replace")))
    texts = drop_boilerplate(texts)
    return [{"text": t, "path": p, "split": split_of(p)} for p, t in zip(paths, texts, strict=True)
            if len(t) >= MIN_DOC_CHARS]


def _clean_key(name: str, root: Path) -> str:
    from zett.assets.prose import CLEANER_VERSION
    from zett.assets.store import MANIFEST

    files = json.loads((root / MANIFEST).read_text())["files"]
    h = hashlib.sha256(f"{name}\ncleaner={CLEANER_VERSION}\n".encode())
    for rel in sorted(files):
        h.update(f"{rel}\t{files[rel]['sha256']}\n".encode())
    return h.hexdigest()[:16]


def _cleaned(name: str, root: Path) -> tuple[str, list[dict]]:
    key = _clean_key(name, root)
    cache = _cache_dir() / f"{name}-{key}.jsonl.gz"
    if cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as f:
            return key, [json.loads(line) for line in f]
    rows = clean_documents(root / "src")
    _write_atomic(cache, gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0))
    for old in cache.parent.glob(f"{name}-*"):  # results of an older cleaner or package: never read again
        if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}\.(jsonl\.gz|decontam\.json)", old.name) \
                and not old.name.startswith(f"{name}-{key}."):
            old.unlink(missing_ok=True)
    return key, rows


def _eval_texts() -> list[str]:  # tests replace this with fixture texts
    from zett.assets.decontam import eval_texts

    return eval_texts()


_INDEX: dict[str, object] = {}  # evaluation fingerprint -> NgramIndex, built once per process


def _index(texts: list[str]):
    from zett.assets.decontam import NgramIndex, fingerprint

    fp = fingerprint(texts)
    if fp not in _INDEX:
        _INDEX.clear()
        _INDEX[fp] = NgramIndex(texts)
    return _INDEX[fp]


def decontaminate(rows: list[dict], eval_texts: list[str]) -> tuple[list[dict], dict]:
    """Drop the training rows that share an n-gram with ``eval_texts``; returns (kept train rows, stats)."""
    from zett.assets.decontam import NGRAM

    index = _index(eval_texts)
    train = [r for r in rows if r["split"] == "train"]
    dropped = [r for r in train if index.contaminated(r["text"])]
    gone = {r["path"] for r in dropped}
    stats = {
        "ngram": NGRAM, "train_docs": len(train), "train_chars": sum(len(r["text"]) for r in train),
        "dropped_docs": len(dropped), "dropped_chars": sum(len(r["text"]) for r in dropped),
        "dropped_paths": sorted(gone),
    }
    return [r for r in train if r["path"] not in gone], stats


def decontamination_stats(name: str) -> dict:
    """How many training documents/characters the decontamination of prose corpus ``name`` dropped (for the
    combined corpus: the sums over its parts)."""
    if get(name).build == "union":
        from zett.assets.registry import EN_PROSE

        parts = [decontamination_stats(p) for p in EN_PROSE]
        keys = ("train_docs", "train_chars", "dropped_docs", "dropped_chars")
        return {"ngram": parts[0]["ngram"], **{k: sum(p[k] for p in parts) for k in keys},
                "dropped_paths": [f"{n}:{x}" for n, p in zip(EN_PROSE, parts, strict=True) for x in p["dropped_paths"]]}
    _prose_split(name, "train")
    return json.loads(_stats_path(name, _clean_key(name, path(name))).read_text())


def _stats_path(name: str, key: str) -> Path:
    return _cache_dir() / f"{name}-{key}.decontam.json"


def _prose_split(name: str, split: str) -> list[dict]:
    from zett.assets.decontam import fingerprint

    root = path(name)
    key, rows = _cleaned(name, root)
    if split != "train":
        return [r for r in rows if r["split"] == split]
    texts = _eval_texts()
    fp = fingerprint(texts)
    stats_file = _stats_path(name, key)
    if stats_file.exists():
        stats = json.loads(stats_file.read_text())
        if stats.get("eval_fingerprint") == fp:  # same cleaned corpus, same evaluation texts
            gone = set(stats["dropped_paths"])
            return [r for r in rows if r["split"] == "train" and r["path"] not in gone]
    kept, stats = decontaminate(rows, texts)
    stats["eval_fingerprint"] = fp
    _write_atomic(stats_file, json.dumps(stats, indent=1).encode())
    return kept


def _en_prose(split: str) -> list[dict]:
    from zett.assets.registry import EN_PROSE

    return [{**r, "source": part} for part in EN_PROSE for r in _prose_split(part, split)]


def _is_prose(name: str) -> bool:
    return get(name).build in {"debian_prose", "union"}


def load_corpus(name: str, split: str = "train", languages: list[str] | None = None):
    """Load corpus ``name`` (see ``zett-assets list``) as a ``datasets.Dataset`` with a ``text`` column
    (and ``language`` for multilingual corpora), fetching it first if needed."""
    import datasets

    asset = get(name)
    if asset.kind != "corpus":
        raise AssetError(f"{name!r} is a {asset.kind}, not a corpus. Corpora: {', '.join(_READERS)} and the "
                         "Debian prose corpora (zett-assets list)")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if _is_prose(name):
        rows = _en_prose(split) if get(name).build == "union" else _prose_split(name, split)
    else:
        rows = [r for r in _READERS[name](path(name)) if r["split"] == split]
    if languages is not None:
        rows = [r for r in rows if r.get("language") in set(languages)]
    if not rows:
        raise AssetError(f"corpus {name!r} has no documents for split={split!r}, languages={languages}")
    columns = [k for k in rows[0] if k != "split"]
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in columns})
