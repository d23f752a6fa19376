"""Evaluation outputs: ``results.json``, ``results.csv``, a markdown table and a grouped-bar PNG.

A record is one (method, tokenizer, corpus[, language]) measurement: ``bits_per_byte``, ``bytes_per_token``,
``n_bytes``, ``n_tokens`` and more. Table rows are tokenizer x method, columns are corpora (``corpus:language``
for multilingual corpora, or just the language when a single corpus is multilingual). The ``original`` method
with the base tokenizer is the reference row; every other cell shows its delta against it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

COLUMNS = ("method", "tokenizer", "corpus", "language", "bits_per_byte", "bytes_per_token", "delta_bits_per_byte",
           "n_bytes", "n_tokens", "n_text_bytes", "n_text_tokens", "nll_bits", "vocab_size", "seconds")


TASK_METRICS = ("acc", "acc_norm", "answer_bits_per_byte", "margin_nats")


def is_task(record: dict) -> bool:
    """Multiple-choice task records (``zett.eval.harness``) carry ``task`` instead of ``corpus``."""
    return "task" in record


def column_key(record: dict, single_corpus: bool = False) -> str:
    if is_task(record):
        return record["task"]
    lang = record.get("language")
    if lang is None:
        return record["corpus"]
    return lang if single_corpus else f"{record['corpus']}:{lang}"


def _row_key(record: dict) -> tuple[str, str]:
    return record["tokenizer"], record["method"]


def add_deltas(records: list[dict]) -> list[dict]:
    """Set ``delta_bits_per_byte`` (vs the ``original`` record on the same corpus and language) in place; task
    records get ``delta_<metric>`` for acc, acc_norm and the continuous scores (vs ``original`` on the task)."""
    ref = {(r["corpus"], r.get("language")): r["bits_per_byte"] for r in records
           if r["method"] == "original" and not is_task(r)}
    for r in records:
        if is_task(r):
            continue
        base = ref.get((r["corpus"], r.get("language")))
        r["delta_bits_per_byte"] = None if base is None else r["bits_per_byte"] - base
    task_ref = {r["task"]: r for r in records if r["method"] == "original" and is_task(r)}
    for r in records:
        if is_task(r):
            base = task_ref.get(r["task"])
            for m in TASK_METRICS:
                r[f"delta_{m}"] = None if base is None else r[m] - base[m]
    return records


def _layout(records: list[dict]):
    corpora_with_lang = {r.get("corpus") for r in records if r.get("language") is not None}
    single = len({r.get("corpus") for r in records}) == 1 and len(corpora_with_lang) == 1
    cols: list[str] = []
    rows: list[tuple[str, str]] = []
    for r in records:
        c = column_key(r, single)
        if c not in cols:
            cols.append(c)
        if _row_key(r) not in rows:
            rows.append(_row_key(r))
    rows.sort(key=lambda k: (0 if k[1] == "original" else 1))  # reference row first, otherwise keep run order
    cells = {(_row_key(r), column_key(r, single)): r for r in records}
    return rows, cols, cells


def _grid(records: list[dict], metric: str, cell) -> tuple[list[str], list[str], dict]:
    """Markdown lines of a (tokenizer x method) by column table whose cells are ``cell(record)`` ("–" where the
    record or its ``metric`` is missing), with the layout's columns and cells."""
    rows, cols, cells = _layout(records)
    lines = ["| tokenizer | method | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for key in rows:
        out = []
        for c in cols:
            r = cells.get((key, c))
            out.append("–" if r is None or r.get(metric) is None else cell(r))
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(out) + " |")
    return lines, cols, cells


def markdown_table(records: list[dict], metric: str = "bits_per_byte", digits: int = 3) -> str:
    """A markdown table of ``metric`` (rows tokenizer x method, columns corpora); bits per byte cells carry the
    delta against ``original``."""
    def cell(r: dict) -> str:
        v = f"{r[metric]:.{digits}f}"
        d = r.get("delta_bits_per_byte") if metric == "bits_per_byte" else None
        if d is not None and r["method"] != "original":
            v += f" ({d:+.{digits}f}{_interval(r.get('ci_delta_bits_per_byte'), digits)})"
        if metric == "gap_closed" and r.get("ci_gap_closed"):
            v += _interval(r["ci_gap_closed"], digits - 1)
        return v

    return "\n".join(_grid(records, metric, cell)[0])


def task_table(records: list[dict], metric: str, digits: int = 3) -> str:
    """Markdown table of a task metric (rows tokenizer x method, columns tasks and their mean): value, its
    standard error where there is one, and the delta against ``original`` (with its paired bootstrap interval
    when the records carry one)."""
    def cell(r: dict) -> str:
        v = f"{r[metric]:.{digits}f}"
        se = r.get(f"{metric}_stderr" if metric != "margin_nats" else "margin_stderr")
        if se is not None and math.isfinite(se):
            v += f" ± {se:.{digits}f}"
        d = r.get(f"delta_{metric}")
        if d is not None and r["method"] != "original":
            v += f" ({d:+.{digits}f}{_interval(r.get(f'ci_delta_{metric}'), digits)})"
        return v

    lines, cols, cells = _grid(records, metric, cell)
    if metric in ("acc", "acc_norm"):
        chance = {c: r["chance"] for (_, c), r in cells.items() if r.get("chance") is not None}
        lines.append("| chance | | " + " | ".join(f"{chance[c]:.{digits}f}" if c in chance else "–"
                                                  for c in cols) + " |")
    return "\n".join(lines)


def _interval(ci, digits: int) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


CLASS_COLUMNS = ("bpb_letters", "bpb_digits", "bpb_whitespace", "bpb_punctuation", "bpb_non_ascii",
                 "bytes_per_token_digits")


def class_table(records: list[dict], digits: int = 3) -> str:
    """Bits per byte by byte class of the predicted tokens, one row per tokenizer x method x corpus, plus bytes
    per token of digit-bearing tokens."""
    head = ["letters", "digits", "whitespace", "punctuation", "non-ASCII", "digit bytes/token"]
    lines = ["| tokenizer | method | corpus | " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * len(head)]
    for r in records:
        cells = ["–" if r.get(c) is None else f"{r[c]:.{digits if c.startswith('bpb') else 2}f}"
                 for c in CLASS_COLUMNS]
        lines.append(f"| {r['tokenizer']} | {r['method']} | {column_key(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_TASK_TITLES = {
    "acc": "Accuracy (zero-shot, summed log-likelihood of each choice; ± standard error)",
    "acc_norm": "Normalised accuracy (log-likelihood per character of the choice; ± standard error)",
    "answer_bits_per_byte": "Bits per byte of the correct answer given the prompt (lower is better)",
    "margin_nats": "Margin of the correct answer over the best distractor (nats; higher is better)",
}


def report_markdown(records: list[dict], title: str = "Zero-shot tokenizer transfer") -> str:
    texts = [r for r in records if not is_task(r)]
    tasks = [r for r in records if is_task(r)]
    out = f"# {title}\n"
    if texts:
        out += (f"\n## Bits per byte (lower is better; in brackets: change against `original` and its 95% paired "
                 "bootstrap interval over documents)\n\n"
                 f"{markdown_table(texts, 'bits_per_byte')}\n\n"
                 f"## Bytes per token (higher = shorter sequences)\n\n{markdown_table(texts, 'bytes_per_token', 2)}\n")
        if any(r.get("gap_closed") is not None for r in texts):
            out += ("\n## Share of the FVT-to-original bits-per-byte gap closed (1 = as good as `original`; "
                    "in brackets: 95% paired bootstrap interval over documents)\n\n"
                    f"{markdown_table([r for r in texts if r.get('gap_closed') is not None], 'gap_closed', 3)}\n")
        if any(r.get("bpb_letters") is not None for r in texts):
            out += ("\n## Bits per byte by byte class (a token's bits shared by the classes of its bytes)\n\n"
                    f"{class_table(texts)}\n")
    for m in TASK_METRICS if tasks else ():
        out += (f"\n## {_TASK_TITLES[m]}; in brackets: change against `original` and its 95% paired bootstrap "
                f"interval over examples\n\n{task_table(tasks, m)}\n")
    return out


def plot(records: list[dict], path: str | Path, metric: str = "bits_per_byte") -> Path:
    """Grouped bars: one group per corpus (column), one bar per tokenizer/method row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols, cells = _layout(records)
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + len(cols) * (0.5 + 0.25 * len(rows))), 4.0))
    for i, key in enumerate(rows):
        xs, ys = [], []
        for j, c in enumerate(cols):
            r = cells.get((key, c))
            if r is not None and r.get(metric) is not None and math.isfinite(r[metric]):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r[metric])
        label = key[1] if key[1] == "original" else f"{key[0]} / {key[1]}"
        bars = ax.bar(xs, ys, width=width, label=label)
        if len(rows) * len(cols) <= 40:  # values stay legible
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(cols)), cols, rotation=30 if len(cols) > 6 else 0)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} by corpus")
    ax.legend(fontsize="small", ncols=1 + len(rows) // 8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def public(record: dict) -> dict:
    """A record without its per-document / per-example arrays (keys starting with ``_``)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def write_results(records: list[dict], output_dir: str | Path, plot_png: bool = True) -> dict[str, Path]:
    """Write results.json, results.csv, results.md and results.png (results_tasks.png for multiple-choice
    tasks) into ``output_dir``; returns their paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    add_deltas(records)
    rows = [public(r) for r in records]
    paths = {"json": out / "results.json", "csv": out / "results.csv", "markdown": out / "results.md"}
    paths["json"].write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n")
    with paths["csv"].open("w", newline="") as f:
        extra = [k for r in rows for k in r if k not in COLUMNS]
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS) + sorted(set(extra)))
        writer.writeheader()
        writer.writerows(rows)
    paths["markdown"].write_text(report_markdown(records))
    texts = [r for r in records if not is_task(r)]
    tasks = [r for r in records if is_task(r)]
    if plot_png and texts:
        paths["png"] = plot(texts, out / "results.png")
    if plot_png and tasks:
        paths["tasks_png"] = plot(tasks, out / "results_tasks.png", metric="acc_norm")
    return paths
