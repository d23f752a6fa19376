"""One markdown table from zett-eval results: original / fvt / a method, and the share of the FVT gap it closes.

    python scripts/gap_table.py out/eval-a/results.json out/eval-b/results.json --method shipped

Rows are (target tokenizer, text); the gap share is (fvt - method) / (fvt - original) with zett-eval's paired
bootstrap interval over documents where the text has more than one document. The last line is the mean share over
the rows of each text group (English prose / code / multilingual).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _text(r: dict) -> str:
    return f"{r['corpus']}:{r['language']}" if r.get("language") else r["corpus"]


def table(records: list[dict], method: str) -> tuple[str, dict[str, list[float]]]:
    bpb = {(r["tokenizer"], _text(r), r["method"]): r for r in records if "bits_per_byte" in r}
    original = {_text(r): r["bits_per_byte"] for r in records if r["method"] == "original" and "bits_per_byte" in r}
    lines = [f"| tokenizer | text | original | fvt | {method} | gap closed [95% CI] |", "|---|---|---:|---:|---:|---:|"]
    shares: dict[str, list[float]] = {}
    keys = sorted({(t, x) for (t, x, m) in bpb if m == method}, key=lambda k: (k[1], k[0]))
    for tok, text in keys:
        fvt, new = bpb.get((tok, text, "fvt")), bpb[(tok, text, method)]
        if fvt is None or text not in original:
            continue
        share = new.get("gap_closed")
        if share is None:
            gap = fvt["bits_per_byte"] - original[text]
            share = (fvt["bits_per_byte"] - new["bits_per_byte"]) / gap if abs(gap) > 1e-12 else math.nan
        ci = new.get("ci_gap_closed")
        ci_text = f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci and None not in ci else ""
        group = "code" if text.startswith("stdlib") else "multilingual" if ":" in text else "english"
        shares.setdefault(group, []).append(share)
        lines.append(f"| {tok} | {text} | {original[text]:.3f} | {fvt['bits_per_byte']:.3f} | "
                     f"{new['bits_per_byte']:.3f} | {share:.0%}{ci_text} |")
    return "\n".join(lines), shares


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--method", default="shipped")
    args = p.parse_args(argv)
    records = [r for f in args.results for r in json.loads(f.read_text())]
    text, shares = table(records, args.method)
    print(text)
    print()
    for group, values in shares.items():
        wins = sum(v > 0 for v in values)
        print(f"- {group}: mean gap closed {sum(values) / len(values):.1%} over {len(values)} cells; "
              f"better than FVT in {wins}/{len(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
