"""Sample one training tokenizer and encode one batch (128 texts x 2,048 chars) on ONE core.

Texts: random 2,048-char spans of Botchan (train split) and stdlib-code, half each. The queue is warmed up with
16 batches first (ZeTT's 2,048 texts). Prints one JSON object; progress goes to stderr.

    python benchmarks/bench_sampler.py [--vocab-size 32768] [--steps 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def batches(n_batches: int, batch_size: int = 128, span: int = 2048, seed: int = 0):
    from zett.assets import load_corpus

    prose = "\n".join(load_corpus("botchan", split="train")["text"])
    code = "\n".join(load_corpus("stdlib-code", split="train")["text"])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        texts = []
        for k in range(batch_size):
            source = prose if k % 2 == 0 else code
            start = int(rng.integers(0, len(source) - span))
            texts.append(source[start:start + span])
        out.append(texts)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--base", default="smollm2-135m")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from zett.tokenizers import TokenizerSampler, load_tokenizer, surface_forms

    base = load_tokenizer(args.base)
    data = batches(16 + args.steps)
    sampler = TokenizerSampler(base, vocab_size=args.vocab_size, seed=0)
    t = time.perf_counter()
    sampler.warm_up([x for b in data[:16] for x in b], chunk_size=128)
    warm = time.perf_counter() - t
    print(f"warm-up {warm:.2f}s, {len(sampler._strings)} substrings indexed", file=sys.stderr)

    sample_s, encode_s, surface_s, tokens = [], [], [], []
    sampler.sample(data[16])  # first call pays one-off costs (imports)
    surface_forms(sampler.sample(data[16], push=False), base)  # builds the base decomposer cache
    for step in range(args.steps):
        texts = data[16 + step]
        t0 = time.perf_counter()
        tok = sampler.sample(texts)
        t1 = time.perf_counter()
        enc = tok(texts, add_special_tokens=False)
        t2 = time.perf_counter()
        surface_forms(tok, base)
        t3 = time.perf_counter()
        sample_s.append(t1 - t0)
        encode_s.append(t2 - t1)
        surface_s.append(t3 - t2)
        tokens.append(sum(map(len, enc["input_ids"])))
        print(f"step {step}: sample {t1 - t0:.3f}s encode {t2 - t1:.3f}s surface forms {t3 - t2:.3f}s "
              f"vocab {len(tok)}", file=sys.stderr)
    total = [a + b for a, b in zip(sample_s, encode_s, strict=True)]
    chars = sum(map(len, data[16]))
    print(json.dumps({
        "benchmark": "sampler",
        "threads": 1,
        "vocab_size": args.vocab_size,
        "batch": {"texts": 128, "chars_per_text": 2048},
        "warm_up_16_batches_s": round(warm, 3),
        "sample_s_median": round(statistics.median(sample_s), 4),
        "encode_s_median": round(statistics.median(encode_s), 4),
        "sample_plus_encode_s_median": round(statistics.median(total), 4),
        "sample_plus_encode_s_max": round(max(total), 4),
        "surface_forms_s_median": round(statistics.median(surface_s), 4),
        "tokens_per_batch_mean": round(statistics.mean(tokens), 1),
        "chars_per_token": round(chars / statistics.mean(tokens), 3),
        "indexed_substrings": len(sampler._strings),
        "steps": args.steps,
    }))


if __name__ == "__main__":
    main()
