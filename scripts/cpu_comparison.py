"""Collect a side-by-side comparison of CPU training recipes into one JSON file (docs/cpu-training-comparison.json).

    python scripts/cpu_comparison.py --arm k8=outputs/cmp/k8,outputs/cmp/k8-eval/results.json \
        --arm shipped=,outputs/cmp/shipped-eval/results.json:cpu_seconds=5166 --out docs/cpu-training-comparison.json

Each ``--arm NAME=RUN_DIR,RESULTS[:cpu_seconds=N]``: RUN_DIR is a ``zett-train`` run directory (its
``summary.json`` gives the learning curve: step, process CPU seconds without validation, student tokens seen and
held-out bits per byte with standard errors at every validation); RESULTS is a ``zett-eval`` ``results.json`` on
the test splits with the ``original``, ``fvt`` and one trained method (``hypernet`` or ``shipped``); an empty
RUN_DIR takes the CPU seconds given after the colon (a run from before zett recorded them); an empty RESULTS
leaves the arm without test numbers (stopped on its validation curve). Writes
``{"arms": [{"name", "cpu_seconds", "tokens_seen", "curve", "test_bpb": {pair: value}, "gap_closed": {pair:
share}, "mean_gap_closed"}]}`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TRAINED = ("hypernet", "shipped")


def _pair(r: dict) -> str:
    text = r["corpus"] if r.get("language") is None else f"{r['corpus']}:{r['language']}"
    return f"{r['tokenizer']}/{text}"


def test_cells(results: Path) -> tuple[dict, dict]:
    """-> ({pair: trained method's bpb}, {pair: share of the FVT-to-original gap it closes})."""
    records = [r for r in json.loads(results.read_text()) if r.get("bits_per_byte") is not None]
    original = {(r["corpus"], r.get("language")): r["bits_per_byte"] for r in records if r["method"] == "original"}
    fvt = {_pair(r): r["bits_per_byte"] for r in records if r["method"] == "fvt"}
    bpb, gap = {}, {}
    for r in records:
        if r["method"] not in TRAINED:
            continue
        pair = _pair(r)
        bpb[pair] = round(r["bits_per_byte"], 4)
        ref = original[(r["corpus"], r.get("language"))]
        if pair in fvt and fvt[pair] != ref:
            gap[pair] = round((fvt[pair] - r["bits_per_byte"]) / (fvt[pair] - ref), 4)
    return bpb, gap


def curve(run: Path) -> list[dict]:
    summary = json.loads((run / "summary.json").read_text())
    keep = ("step", "cpu_seconds", "tokens_seen")
    return [{k: v for k, v in h.items() if k in keep or k.endswith(("/bpb", "bpb_se", "delta_se"))}
            for h in summary.get("validation_history", [])]


def arm(spec: str) -> dict:
    name, _, rest = spec.partition("=")
    run, _, results = rest.partition(",")
    results, _, extra = results.partition(":")
    out: dict = {"name": name}
    if run:
        points = curve(Path(run))
        summary = json.loads((Path(run) / "summary.json").read_text())
        out.update(cpu_seconds=summary.get("cpu_seconds", points[-1]["cpu_seconds"] if points else None),
                   tokens_seen=summary.get("tokens_seen", points[-1]["tokens_seen"] if points else None),
                   curve=points)
    else:
        out.update(cpu_seconds=float(extra.split("=")[1]) if extra else None, tokens_seen=None, curve=[])
    bpb, gap = test_cells(Path(results)) if results else ({}, {})  # an arm stopped without a test evaluation
    out.update(test_bpb=bpb, gap_closed=gap,
               mean_gap_closed=round(sum(gap.values()) / len(gap), 4) if gap else None)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arm", action="append", required=True)
    p.add_argument("--out", type=Path, default=Path("docs/cpu-training-comparison.json"))
    args = p.parse_args(argv)
    arms = [arm(s) for s in args.arm]
    args.out.write_text(json.dumps({"arms": arms}, indent=1) + "\n")
    pairs = sorted({k for a in arms for k in a["gap_closed"]})
    print("| arm | CPU min | tokens | " + " | ".join(pairs) + " | mean gap closed |")
    print("|---|---:|---:|" + "---:|" * (len(pairs) + 1))
    for a in arms:
        cells = [f"{a['test_bpb'].get(k, float('nan')):.3f} ({a['gap_closed'].get(k, float('nan')):.0%})"
                 for k in pairs]
        cpu = "–" if a["cpu_seconds"] is None else f"{a['cpu_seconds'] / 60:.0f}"
        tokens = "–" if not a["tokens_seen"] else f"{a['tokens_seen']:,}"
        mean = "–" if a["mean_gap_closed"] is None else f"{a['mean_gap_closed']:.1%}"
        print(f"| {a['name']} | {cpu} | {tokens} | " + " | ".join(cells) + f" | {mean} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
