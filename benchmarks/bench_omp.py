"""OMP transplantation speed: target rows solved per second, for a realistic vocabulary pair.

Default: base SmolLM2-135M, target = the Gemma-3 tokenizer, donor = Gemma-3-270M (``zett-assets fetch
gemma3-270m --accept-licence``). ``--random-donor`` uses a random donor matrix of Gemma-3's width instead (then the
target tokenizer may be any asset, e.g. ``--target gemma4``), for machines without the donor. Solves ``--rows``
non-anchor target tokens (a timing sample; the full vocabulary is extrapolated) and prints one JSON object.

    python benchmarks/bench_omp.py [--rows 1024] [--k 64] [--batch 256] [--device cpu]
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
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    from zett.models import adapter
    from zett.tokenizers import byte_vocab, load_tokenizer
    from zett.transfer import load_model
    from zett.transfer.omp import anchor_pairs, omp

    torch.set_num_threads(max(1, torch.get_num_threads()))
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
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    for s in range(0, sample.numel(), args.batch):
        chunk = sample[s: s + args.batch]
        idx, coef = omp(donor[chunk].to(dev), atoms, args.k)
        torch.einsum("bs,bsn->bn", coef, base_anchor[idx]).cpu()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    solve_s = time.perf_counter() - t1
    rate = sample.numel() / solve_s
    out = {"benchmark": "omp", "base": args.base, "target": args.target,
           "donor": "random(640)" if args.random_donor else args.donor, "device": str(dev),
           "threads": torch.get_num_threads(), "k": args.k, "batch": args.batch, "target_vocab": len(target_bytes),
           "anchors": int(t_ids.numel()), "non_anchor_tokens": int(todo.numel()), "rows_timed": int(sample.numel()),
           "rows_per_s": round(rate, 2), "full_vocab_estimate_s": round(todo.numel() / rate, 1),
           "load_s": round(load_s, 2)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
