"""Paired bootstrap intervals for the deltas ``zett-eval`` reports.

Every method is scored on the same units (documents for bits per byte, examples for tasks), so a delta between two
methods is estimated by resampling the units with replacement, the *same* units for both, and recomputing the
statistic of each: the percentile interval of the resampled deltas. Ratio statistics (bits per byte = sum of bits /
sum of bytes) are recomputed from resampled sums, not averaged per unit.

``add_intervals(records)`` adds ``ci_delta_<metric>`` ([low, high]) to every record with an ``original`` partner,
and ``gap_closed`` / ``ci_gap_closed`` (the share of the FVT-to-original bits-per-byte gap a method closes).
"""

from __future__ import annotations

import numpy as np

from zett.eval.report import is_task


def _indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def ratio(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values # [n, 2] (numerator, denominator per unit); idx # [R, n] -> sum ratio per replicate [R]."""
    num, den = values[idx, 0].sum(1), values[idx, 1].sum(1)
    return num / np.maximum(den, 1e-300)


def mean(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values # [n] -> mean per replicate [R]."""
    return values[idx].mean(1)


def paired_interval(stat, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of stat(b) - stat(a) with units resampled jointly. a, b: per-unit values, same units
    in the same order (first axis)."""
    if len(a) != len(b):
        raise ValueError(f"paired bootstrap needs the same units for both systems, got {len(a)} and {len(b)}")
    idx = _indices(len(a), n_boot, np.random.default_rng(seed))
    d = stat(b, idx) - stat(a, idx)
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def grouped_interval(stat, pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Interval of the mean over groups (tasks) of stat(b) - stat(a), resampling units within each group."""
    rng = np.random.default_rng(seed)
    d = np.zeros(n_boot)
    for a, b in pairs:
        idx = _indices(len(a), n_boot, rng)
        d += stat(b, idx) - stat(a, idx)
    d /= len(pairs)
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def gap_interval(orig: np.ndarray, fvt: np.ndarray, method: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float | None, float | None]:
    """Interval of (bpb_fvt - bpb_method) / (bpb_fvt - bpb_original), documents resampled jointly (None, None
    when FVT and original never differ)."""
    idx = _indices(len(orig), n_boot, np.random.default_rng(seed))
    o, f, m = ratio(orig, idx), ratio(fvt, idx), ratio(method, idx)
    share = (f - m) / np.where(np.abs(f - o) > 1e-12, f - o, np.nan)
    share = share[np.isfinite(share)]
    if share.size == 0:
        return None, None
    lo, hi = np.quantile(share, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


# per-example columns of a task record's ``_examples``: (acc, acc_norm, answer_bits, answer_bytes, margin)
_TASK_STATS = {
    "acc": (mean, lambda e: e[:, 0]),
    "acc_norm": (mean, lambda e: e[:, 1]),
    "answer_bits_per_byte": (ratio, lambda e: e[:, 2:4]),
    "margin_nats": (mean, lambda e: e[:, 4]),
}


def add_intervals(records: list[dict], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> list[dict]:
    """Add paired bootstrap intervals in place (see the module docstring); records without per-unit arrays
    (``_docs`` / ``_examples``) are left alone."""
    if n_boot <= 0:
        return records
    texts = {}
    for r in records:
        if not is_task(r) and r.get("_docs") is not None:
            texts[(r["method"], r["tokenizer"], r["corpus"], r.get("language"))] = r
    originals = {(k[2], k[3]): r for k, r in texts.items() if k[0] == "original"}
    for (method, tok, corpus, lang), r in texts.items():
        ref = originals.get((corpus, lang))
        if method == "original" or ref is None or len(ref["_docs"]) != len(r["_docs"]) or len(r["_docs"]) < 2:
            continue  # one document has no spread to resample: no interval rather than a zero-width one
        a, b = np.asarray(ref["_docs"], dtype=float), np.asarray(r["_docs"], dtype=float)
        r["ci_delta_bits_per_byte"] = list(paired_interval(ratio, a, b, n_boot, seed, level))
        fvt = texts.get(("fvt", tok, corpus, lang))
        if fvt is not None and method != "fvt":
            f = np.asarray(fvt["_docs"], dtype=float)
            gap = fvt["bits_per_byte"] - ref["bits_per_byte"]
            r["gap_closed"] = (fvt["bits_per_byte"] - r["bits_per_byte"]) / gap if abs(gap) > 1e-12 else None
            r["ci_gap_closed"] = list(gap_interval(a, f, b, n_boot, seed, level))

    tasks = {(r["method"], r["tokenizer"], r["task"]): r for r in records if is_task(r)}
    orig_tasks = {k[2]: r for k, r in tasks.items() if k[0] == "original"}
    for (method, tok, task), r in tasks.items():
        if method == "original":
            continue
        if task == "mean":
            pairs = [(np.asarray(orig_tasks[t]["_examples"], dtype=float), np.asarray(x["_examples"], dtype=float))
                     for (m, k, t), x in tasks.items()
                     if m == method and k == tok and t != "mean" and t in orig_tasks]
            if not pairs:
                continue
            for metric, (stat, col) in _TASK_STATS.items():
                r[f"ci_delta_{metric}"] = list(grouped_interval(
                    stat, [(col(a), col(b)) for a, b in pairs], n_boot, seed, level))
            continue
        ref = orig_tasks.get(task)
        if ref is None or len(ref["_examples"]) != len(r["_examples"]) or len(r["_examples"]) < 2:
            continue
        a, b = np.asarray(ref["_examples"], dtype=float), np.asarray(r["_examples"], dtype=float)
        for metric, (stat, col) in _TASK_STATS.items():
            r[f"ci_delta_{metric}"] = list(paired_interval(stat, col(a), col(b), n_boot, seed, level))
    return records


__all__ = ["add_intervals", "gap_interval", "grouped_interval", "mean", "paired_interval", "ratio"]
