"""Paired bootstrap intervals: coverage of a known delta, pairing, and the fields add_intervals writes."""

from __future__ import annotations

import numpy as np
import pytest

from zett.eval.bootstrap import add_intervals, gap_interval, mean, paired_interval, ratio
from zett.eval.report import report_markdown


def _docs(rng, n, rate_shift=0.0, base_rates=None):
    nbytes = rng.integers(200, 2000, n).astype(float)
    rates = base_rates if base_rates is not None else 1.0 + rng.normal(0, 0.3, n)  # documents differ a lot
    return np.stack([(rates + rate_shift + rng.normal(0, 0.05, n)) * nbytes, nbytes], 1), rates


def test_interval_covers_the_true_bits_per_byte_delta():
    """Synthetic documents: method B is worse than A by exactly 0.05 bits per byte in expectation. Over 200
    independent data sets the 95% interval must cover 0.05 about 95% of the time."""
    covered, widths = 0, []
    for s in range(200):
        rng = np.random.default_rng(1000 + s)
        a, rates = _docs(rng, 60)
        b = a.copy()
        b[:, 0] = (rates + 0.05 + rng.normal(0, 0.05, 60)) * a[:, 1]
        lo, hi = paired_interval(ratio, a, b, n_boot=500, seed=s)
        covered += lo <= 0.05 <= hi
        widths.append(hi - lo)
    assert 0.88 <= covered / 200 <= 0.99
    # pairing removes the (large) between-document variation: the interval is far narrower than that spread
    assert np.median(widths) < 0.1


def test_accuracy_interval_covers_the_true_delta():
    covered = 0
    for s in range(200):
        rng = np.random.default_rng(s)
        hard = rng.random(100) < 0.5  # example difficulty shared by both methods
        a = (rng.random(100) < np.where(hard, 0.3, 0.8)).astype(float)
        b = (rng.random(100) < np.where(hard, 0.2, 0.7)).astype(float)  # 0.1 lower everywhere
        lo, hi = paired_interval(mean, a, b, n_boot=500, seed=s)
        covered += lo <= -0.1 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_identical_systems_give_a_zero_interval_and_mismatched_units_fail():
    a = np.array([[10.0, 5.0], [3.0, 4.0], [8.0, 8.0]])
    assert paired_interval(ratio, a, a.copy()) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same units"):
        paired_interval(ratio, a, a[:2])
    lo, hi = gap_interval(a, a * [2.0, 1.0], a.copy())  # the method equals original: it closes the whole gap
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


def test_add_intervals_fills_every_delta_and_the_table_shows_them():
    rng = np.random.default_rng(0)
    a, rates = _docs(rng, 30)
    f = a.copy()
    f[:, 0] *= 1.3
    h = a.copy()
    h[:, 0] *= 1.1

    def rec(method, tok, docs):
        return {"method": method, "tokenizer": tok, "corpus": "c", "language": None, "_docs": docs.tolist(),
                "bits_per_byte": docs[:, 0].sum() / docs[:, 1].sum(), "bytes_per_token": 3.0}

    ex_o = [(1.0, 1.0, 4.0, 4, 0.5), (0.0, 1.0, 6.0, 3, -0.2), (1.0, 0.0, 2.0, 5, 1.0)]
    ex_f = [(0.0, 1.0, 5.0, 4, -0.1), (0.0, 0.0, 7.0, 3, -0.5), (1.0, 0.0, 3.0, 5, 0.3)]

    def task(method, tok, ex):
        arr = np.asarray(ex)
        return {"method": method, "tokenizer": tok, "task": "t", "_examples": ex, "acc": arr[:, 0].mean(),
                "acc_norm": arr[:, 1].mean(), "answer_bits_per_byte": arr[:, 2].sum() / arr[:, 3].sum(),
                "margin_nats": arr[:, 4].mean(), "chance": 0.5, "acc_stderr": 0.1, "acc_norm_stderr": 0.1,
                "margin_stderr": 0.1}

    records = [rec("original", "base", a), rec("fvt", "x", f), rec("hypernet", "x", h),
               task("original", "base", ex_o), task("fvt", "x", ex_f)]
    from zett.eval.report import add_deltas

    add_deltas(records)
    add_intervals(records, n_boot=300)
    fvt, hyp, t = records[1], records[2], records[4]
    for r in (fvt, hyp):
        lo, hi = r["ci_delta_bits_per_byte"]
        assert lo <= r["delta_bits_per_byte"] <= hi and lo > 0
    assert hyp["gap_closed"] == pytest.approx((fvt["bits_per_byte"] - hyp["bits_per_byte"]) /
                                              (fvt["bits_per_byte"] - records[0]["bits_per_byte"]))
    assert hyp["ci_gap_closed"][0] <= hyp["gap_closed"] <= hyp["ci_gap_closed"][1]
    for m in ("acc", "acc_norm", "answer_bits_per_byte", "margin_nats"):
        lo, hi = t[f"ci_delta_{m}"]
        assert lo <= t[f"delta_{m}"] <= hi
    md = report_markdown(records)
    assert f"[{fvt['ci_delta_bits_per_byte'][0]:+.3f}, {fvt['ci_delta_bits_per_byte'][1]:+.3f}]" in md
    assert "gap closed" in md


def test_a_single_document_gets_no_interval():
    one = [[100.0, 80.0]]
    records = [{"method": "original", "tokenizer": "b", "corpus": "c", "_docs": one, "bits_per_byte": 1.25},
               {"method": "fvt", "tokenizer": "x", "corpus": "c", "_docs": [[120.0, 80.0]], "bits_per_byte": 1.5}]
    add_intervals(records)
    assert "ci_delta_bits_per_byte" not in records[1]
