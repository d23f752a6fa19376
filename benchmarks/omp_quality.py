"""How close OMP with candidate preselection (``omp(candidates=N)``) comes to exact OMP, on a real vocabulary pair.

Solves a random sample of ``--rows`` non-anchor target tokens, plus every non-anchor target token of a short text,
exactly and with each ``--candidates`` N, and reports per N: rows per second, the donor rows' relative
reconstruction error (|x - sum c_i a_i| / |x|, mean over the sample; exact OMP's next to it), the relative distance
of the new base rows from exact OMP's, the share of exact OMP's atoms it picks, and the bits per byte on the text
when the text's tokens get those rows (all other rows: FVT, the same for every variant). Prints one JSON object.

    python benchmarks/omp_quality.py [--base smollm2-135m --target gemma3-270m --donor gemma3-270m]
        [--rows 256] [--candidates 64,128,256,512,1024] [--corpora botchan,stdlib-code] [--max-bytes 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def _solve(x, dic, k, candidates, batch):
    """(indices, coefficients) for x # [R, d] in batches, and the seconds taken."""
    from zett.transfer.omp import omp

    t0 = time.perf_counter()
    out = [omp(x[s: s + batch], dic, k, candidates=candidates) for s in range(0, x.shape[0], batch)]
    width = max(i.shape[1] for i, _ in out)
    idx = torch.cat([torch.nn.functional.pad(i, (0, width - i.shape[1])) for i, _ in out])
    coef = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1])) for _, c in out])
    return idx, coef, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m")
    p.add_argument("--target", default="gemma3-270m", help="target tokenizer (the donor's)")
    p.add_argument("--donor", default="gemma3-270m")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--candidates", default="64,128,256,512,1024")
    p.add_argument("--corpora", default="botchan,stdlib-code")
    p.add_argument("--max-bytes", type=int, default=3000, help="text bytes per corpus for bits per byte")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from zett.eval.metrics import bits_per_byte
    from zett.eval.texts import eval_texts
    from zett.models import adapter
    from zett.tokenizers import byte_vocab, load_tokenizer
    from zett.transfer import load_model, transfer
    from zett.transfer.omp import Dictionary, anchor_pairs

    base, _ = load_model(args.base)
    base_tok, target = load_tokenizer(args.base), load_tokenizer(args.target)
    donor = adapter.input_embeddings(load_model(args.donor)[0]).detach().float()
    if not adapter.is_tied(base):
        raise SystemExit("omp_quality.py handles tied base models only")
    t_ids, b_ids = anchor_pairs(byte_vocab(target), byte_vocab(base_tok))
    is_anchor = torch.zeros(len(target), dtype=torch.bool)
    is_anchor[t_ids] = True
    is_anchor[target.all_special_ids] = True
    todo = torch.nonzero(~is_anchor & (torch.arange(len(target)) < donor.shape[0]))[:, 0]
    sample = todo[torch.randperm(todo.numel(), generator=torch.Generator().manual_seed(0))[: args.rows]]
    texts = [t for c in args.corpora.split(",") for t in eval_texts(c, args.max_bytes)]
    used = torch.tensor(sorted({i for t in texts for i in target(t)["input_ids"]}))
    in_text = used[~is_anchor[used]]
    ids = torch.cat([sample, in_text[~torch.isin(in_text, sample)]])
    dic = Dictionary(donor[t_ids])
    base_anchor = adapter.input_embeddings(base).detach().double()[b_ids]
    x = donor[ids].double()

    fvt, tok = transfer(base, target, method="fvt", base_tokenizer=base_tok, progress=False)
    emb = adapter.input_embeddings(fvt)
    fvt_rows = emb.detach().clone()
    pos = torch.isin(ids, in_text)

    def measure(candidates):
        idx, coef, sec = _solve(x, dic, args.k, candidates, args.batch)
        recon = torch.einsum("bs,bsd->bd", coef, dic.atoms[idx])
        rows = torch.einsum("bs,bsn->bn", coef, base_anchor[idx])
        with torch.no_grad():
            emb.copy_(fvt_rows)
            emb[ids[pos]] = rows[pos].to(emb.dtype)
        bpb = bits_per_byte(fvt, tok, texts, max_length=512)
        err = ((x - recon).norm(dim=1) / x.norm(dim=1))[: sample.numel()]
        return idx, rows, {"rows_per_s": round(ids.numel() / sec, 2), "recon_error": round(float(err.mean()), 4),
                           "bits_per_byte": round(bpb, 4)}

    idx0, rows0, exact = measure(None)
    out = {"benchmark": "omp_quality", "base": args.base, "target": args.target, "donor": args.donor, "k": args.k,
           "threads": torch.get_num_threads(), "anchors": int(t_ids.numel()), "rows_sampled": int(sample.numel()),
           "text_tokens_solved": int(in_text.numel()), "text_bytes": sum(len(t.encode()) for t in texts),
           "exact": exact}
    with torch.no_grad():
        emb.copy_(fvt_rows)
    out["fvt_bits_per_byte"] = round(bits_per_byte(fvt, tok, texts, max_length=512), 4)
    for n in [int(v) for v in args.candidates.split(",")]:
        idx, rows, r = measure(n)
        s = sample.numel()
        r["row_distance"] = round(float(((rows - rows0).norm(dim=1) / rows0.norm(dim=1))[:s].mean()), 4)
        shared = [len(set(a.tolist()) & set(b.tolist())) / len(set(b.tolist())) for a, b in zip(idx[:s], idx0[:s],
                                                                                              strict=True)]
        r["atoms_shared"] = round(sum(shared) / len(shared), 3)
        out[f"candidates_{n}"] = r
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
