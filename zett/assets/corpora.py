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


def load_corpus(name: str, split: str = "train", languages: list[str] | None = None):
    """Load corpus ``name`` (see ``zett-assets list``) as a ``datasets.Dataset`` with a ``text`` column
    (and ``language`` for multilingual corpora), fetching it first if needed."""
    import datasets

    asset = get(name)
    if asset.kind != "corpus":
        raise AssetError(f"{name!r} is a {asset.kind}, not a corpus. Corpora: {', '.join(_READERS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    rows = [r for r in _READERS[name](path(name)) if r["split"] == split]
    if languages is not None:
        rows = [r for r in rows if r.get("language") in set(languages)]
    if not rows:
        raise AssetError(f"corpus {name!r} has no documents for split={split!r}, languages={languages}")
    columns = [k for k in rows[0] if k != "split"]
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in columns})
