"""Surface forms of 262k-token vocabularies (gemma4, xlm-r) against the SmolLM2 base, on this machine's cores.

Reports load times separately from ``surface_forms`` itself (cold: first call on a fresh base, which builds the
base's decomposer; warm: a second call, served from the decomposer's memo), plus piece statistics. Prints one
JSON object; progress goes to stderr.

    python benchmarks/bench_surface_forms.py [--targets gemma4 xlm-r] [--max-pieces 7]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", nargs="+", default=["gemma4", "xlm-r"])
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--max-pieces", type=int, default=7)
    args = parser.parse_args()

    from zett.tokenizers import load_tokenizer, surface_forms

    results = {"benchmark": "surface_forms", "base": args.base, "max_pieces": args.max_pieces,
               "cpu_threads": torch.get_num_threads(), "cores": os.cpu_count(), "targets": {}}
    for name in args.targets:
        t0 = time.perf_counter()
        base = load_tokenizer(args.base)  # a fresh base object: the first call below is cold
        t1 = time.perf_counter()
        target = load_tokenizer(name)
        t2 = time.perf_counter()
        sf = surface_forms(target, base, max_pieces=args.max_pieces)
        t3 = time.perf_counter()
        surface_forms(target, base, max_pieces=args.max_pieces)
        t4 = time.perf_counter()
        lengths = sf.lengths
        row = {
            "vocab": len(target),
            "load_base_s": round(t1 - t0, 3),
            "load_target_s": round(t2 - t1, 3),
            "surface_forms_cold_s": round(t3 - t2, 3),
            "surface_forms_warm_s": round(t4 - t3, 3),
            "n_truncated": sf.n_truncated,
            "mean_pieces": round(lengths.float().mean().item(), 3),
            "single_piece_fraction": round((lengths == 1).float().mean().item(), 4),
            "byte_fallback_pieces": int((sf.ids[sf.mask] >= sf.n_base).sum()),
            "specials_mapped": int((sf.special >= 0).sum()),
        }
        results["targets"][name] = row
        print(f"{name}: {row}", file=sys.stderr)
    results["max_cold_s"] = max(r["surface_forms_cold_s"] for r in results["targets"].values())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
