"""Evaluation text sets: the same bytes for every tokenizer and method.

``eval_texts(corpus, max_bytes)`` takes the documents of a corpus split in their stored order and cuts the last one
so that the set holds at most ``max_bytes`` UTF-8 bytes (at a character boundary). Multilingual corpora of short
parallel strings (``glib``, ``gtk``, ``chatterbot``) are read per language; their strings are joined with ``"\\n"``
into documents of about ``doc_bytes`` bytes, so the one BOS context token each document gets does not dominate.
With ``parallel=True`` only strings translated into *every* requested language are kept (same English sources,
same order), so per-language numbers compare like with like.

A corpus is a zett asset name (``zett-assets list``) or a local ``.txt`` file (one document), a ``.jsonl`` file
(one document per line, ``text`` field) or a directory of ``.txt`` files.

A local corpus has no splits of its own. When FOCUS must train on it (method ``focus`` without ``focus.corpora``),
its documents are split in two by :func:`local_part`, deterministically and by document: FOCUS trains on the
``train`` part and every method is scored on the ``test`` part, so no scored byte was seen in training.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

MULTILINGUAL = {"glib", "gtk", "chatterbot"}


class EvalDataError(ValueError):
    """An evaluation corpus or language that cannot be read; the message names it and the fix."""


def take_bytes(texts, max_bytes: int | None) -> list[str]:
    """The first ``max_bytes`` UTF-8 bytes of ``texts`` in order; the last text is cut at a character boundary."""
    out, total = [], 0
    for t in texts:
        if not t:
            continue
        raw = t.encode("utf-8")
        if max_bytes is not None and total + len(raw) > max_bytes:
            rest = raw[: max_bytes - total].decode("utf-8", "ignore")
            if rest:
                out.append(rest)
            break
        out.append(t)
        total += len(raw)
    return out


def join_lines(lines, doc_bytes: int = 4096) -> list[str]:
    """Join short strings with ``"\\n"`` into documents of about ``doc_bytes`` UTF-8 bytes (never splits one)."""
    docs, cur, size = [], [], 0
    for line in lines:
        n = len(line.encode("utf-8")) + 1
        if cur and size + n > doc_bytes:
            docs.append("\n".join(cur))
            cur, size = [], 0
        cur.append(line)
        size += n
    if cur:
        docs.append("\n".join(cur))
    return docs


def _local_corpus(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise EvalDataError(f"corpus directory {path} holds no .txt files; point corpora at .txt/.jsonl files")
        return [f.read_text(encoding="utf-8") for f in files]
    if path.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                row = json.loads(line)
                if "text" not in row:
                    raise EvalDataError(f"{path} line {i + 1} has no 'text' field; write one JSON object per line "
                                        "with a 'text' string")
                docs.append(row["text"])
        return docs
    return [path.read_text(encoding="utf-8")]


# Share of a local corpus's distinct documents in the FOCUS training part of the split (the rest is scored).
LOCAL_TRAIN_FRACTION = 0.5


def local_part(docs: list[str], part: str, where: str = "corpus") -> list[str]:
    """The documents of ``part`` (``train`` | ``test``) of a local corpus, in stored order.

    The distinct documents are ranked by the sha256 of their UTF-8 text; the first ``LOCAL_TRAIN_FRACTION`` of them
    (rounded, at least one, at most all but one) are ``train``, the rest ``test``. The split depends on the texts only
    (not on their order or on any seed), and copies of a document always fall in the same part."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    distinct = sorted(set(docs), key=lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    if len(distinct) < 2:
        raise EvalDataError(f"{where} holds {len(distinct)} distinct document(s): it cannot be split into FOCUS "
                            "training text and scored text; give a .jsonl (one document per line) or a directory "
                            "of .txt files, or FOCUS training text with focus.corpora=[...]")
    n_train = min(max(round(len(distinct) * LOCAL_TRAIN_FRACTION), 1), len(distinct) - 1)
    train = set(distinct[:n_train])
    return [d for d in docs if (d in train) == (part == "train")]


def is_local(corpus: str) -> bool:
    """Whether ``corpus`` names a local file or directory (else an asset name)."""
    path = Path(corpus).expanduser()
    return path.exists() and bool(path.suffix or path.is_dir())


@lru_cache(maxsize=16)
def _rows(corpus: str, split: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """(text, language, parallel key) rows of an asset corpus split, cached: glib/gtk parse ~100 catalogs."""
    from zett.assets import load_corpus

    ds = load_corpus(corpus, split=split)
    langs = ds["language"] if "language" in ds.column_names else [None] * len(ds)
    keys = ds["source"] if "source" in ds.column_names else [None] * len(ds)
    return tuple(zip(ds["text"], langs, keys, strict=True))


def corpus_label(corpus: str) -> str:
    """Short name for tables: the asset name, or a local file's stem."""
    p = Path(corpus)
    return p.stem if (p.suffix or "/" in corpus) else corpus


def eval_texts(corpus: str, max_bytes: int | None = None, split: str = "test", language: str | None = None,
               languages: list[str] | None = None, doc_bytes: int = 4096, parallel: bool = True,
               local_split: bool = False) -> list[str]:
    """The evaluation documents of ``corpus`` (see the module docstring).

    ``language``: the language to read from a multilingual corpus (required there). ``languages``: all languages
    of this evaluation, used with ``parallel=True`` to keep only strings present in each of them.
    ``local_split``: a local corpus gives only the ``train`` part (``split="train"``) or else the ``test`` part of
    its split by document (:func:`local_part`); asset corpora use their own splits either way.
    """
    path = Path(corpus).expanduser()
    if is_local(corpus):
        docs = _local_corpus(path)
        if local_split:
            docs = local_part(docs, "train" if split == "train" else "test", f"corpus {corpus}")
        return take_bytes(docs, max_bytes)
    from zett.assets import AssetError

    try:
        rows = _rows(corpus, split)
    except AssetError as e:
        raise EvalDataError(f"cannot read evaluation corpus {corpus!r}: {e}. Use a corpus from `zett-assets list` "
                            "or a local .txt/.jsonl file or directory") from e
    multilingual = any(lang is not None for _, lang, _ in rows)
    if not multilingual:
        if language is not None:
            raise EvalDataError(f"corpus {corpus!r} has no languages; drop language={language!r} for it")
        return take_bytes([t for t, _, _ in rows], max_bytes)
    available = sorted({lang for _, lang, _ in rows})
    if language is None:
        raise EvalDataError(f"corpus {corpus!r} is multilingual; choose languages, e.g. languages=[en,de,fr] "
                            f"(available: {', '.join(available)})")
    if language not in available:
        raise EvalDataError(f"corpus {corpus!r} has no language {language!r} in its {split} split; "
                            f"available: {', '.join(available)}")
    lines = language_lines(rows, language, languages if parallel else None)
    return take_bytes(join_lines([t for t, _ in lines], doc_bytes), max_bytes)


def language_lines(rows, language: str, languages: list[str] | None = None) -> list[tuple[str, str | None]]:
    """(text, English source) of one language's strings. With ``languages``, only sources translated into all
    of them, sorted by source, so every language gets the same strings in the same order."""
    lines = [(t, k) for t, lang, k in rows if lang == language]
    if not languages or len(languages) < 2 or any(k is None for _, k in lines):
        return lines
    present = {lang for _, lang, _ in rows}
    wanted = [lang for lang in languages if lang in present]
    shared = set.intersection(*({k for _, lang, k in rows if lang == w} for w in wanted))
    by_key = {k: t for t, k in lines}
    return [(by_key[k], k) for k in sorted(shared)]
