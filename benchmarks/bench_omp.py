"""OMP transplantation speed: target rows solved per second, for a realistic vocabulary pair.

Default: base SmolLM2-135M, target = the Gemma-3 tokenizer, donor = Gemma-3-270M (``zett-assets fetch
gemma3-270m --accept-licence``). ``--random-donor`` uses a random donor matrix of Gemma-3's width instead (then the
target tokenizer may be any asset, e.g. ``--target gemma4``), for machines without the donor. Solves ``--rows``
non-anchor target tokens (a timing sample; the full vocabulary is extrapolated) with each solver and prints one
JSON object: ``before`` is the first implementation (``omp_lstsq``: a batched least-squares solve from scratch at
every step; timed on ``--rows-before`` rows, it is slow), ``exact`` the incremental exact solver (``omp``),
``candidates`` the default preselection (``omp(candidates=N)``, ``--candidates``).

    python benchmarks/bench_omp.py [--rows 1024] [--rows-before 64] [--k 64] [--batch 256] [--candidates 256]
        [--device cpu] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m")
    p.add_argument("--target", default="gemma3-270m", help="target tokenizer (the donor's)")
    p.add_argument("--donor", default="gemma3-270m")
    p.add_argument("--random-donor", action="store_true")
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rows-before", type=int, default=64, help="rows timed with the first implementation")
    p.add_argument("--rows-exact", type=int, default=256, help="rows timed with the exact solver")
    p.add_argument("--candidates", type=int, default=None, help="preselection N (default: the library default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from zett.models import adapter
    from zett.tokenizers import byte_vocab, load_tokenizer
    from zett.transfer import load_model
    from zett.transfer.omp import DEFAULT_CANDIDATES, Dictionary, anchor_pairs, omp, omp_lstsq

    n_cand = args.candidates or DEFAULT_CANDIDATES
    t0 = time.perf_counter()
    base, _ = load_model(args.base)
    base_bytes = byte_vocab(load_tokenizer(args.base))
    target_bytes = byte_vocab(load_tokenizer(args.target))
    if args.random_donor:
        donor = torch.randn(len(target_bytes), 640, generator=torch.Generator().manual_seed(0))
    else:
        donor = adapter.input_embeddings(load_model(args.donor)[0]).detach().float()
    load_s = time.perf_counter() - t0
    t_ids, b_ids = anchor_pairs(target_bytes, base_bytes)
    source = adapter.source_embeddings(base).float()
    is_anchor = torch.zeros(len(target_bytes), dtype=torch.bool)
    is_anchor[t_ids] = True
    todo = torch.nonzero(~is_anchor & torch.tensor([b is not None for b in target_bytes]))[:, 0]
    sample = todo[torch.randperm(todo.numel(), generator=torch.Generator().manual_seed(0))[: args.rows]]
    dev = torch.device(args.device)
    atoms, base_anchor = donor[t_ids].to(dev), source[b_ids].to(dev).double()
    dic = Dictionary(atoms)

    def timed(solve, rows: int) -> float:
        """rows per second of solve(x) -> (idx, coef) over the first ``rows`` of the sample, new rows included."""
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        part = sample[:rows]
        for s in range(0, part.numel(), args.batch):
            idx, coef = solve(donor[part[s: s + args.batch]].to(dev))
            torch.einsum("bs,bsn->bn", coef, base_anchor[idx]).cpu()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return part.numel() / (time.perf_counter() - t1)

    rates = {"before": timed(lambda x: omp_lstsq(x, atoms, args.k), args.rows_before),
             "exact": timed(lambda x: omp(x, dic, args.k), args.rows_exact),
             "candidates": timed(lambda x: omp(x, dic, args.k, candidates=n_cand), args.rows)}
    out = {"benchmark": "omp", "base": args.base, "target": args.target,
           "donor": "random(640)" if args.random_donor else args.donor, "device": str(dev),
           "threads": torch.get_num_threads(), "k": args.k, "batch": args.batch, "candidates": n_cand,
           "target_vocab": len(target_bytes), "anchors": int(t_ids.numel()), "non_anchor_tokens": int(todo.numel()),
           "rows_timed": {"before": min(args.rows_before, sample.numel()), "exact": min(args.rows_exact, sample.numel()),
                          "candidates": int(sample.numel())},
           "rows_per_s": {key: round(r, 2) for key, r in rates.items()},
           "full_vocab_estimate_s": {key: round(todo.numel() / r, 1) for key, r in rates.items()},
           "speedup_vs_before": {key: round(r / rates["before"], 1) for key, r in rates.items()},
           "load_s": round(load_s, 2)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
