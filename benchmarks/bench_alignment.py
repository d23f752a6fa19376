"""Collator-side cost of ALM alignment: align one batch of teacher (SmolLM2) and student (GPT-2) encodings.

Texts: random 2,048-char spans of Botchan and stdlib-code, half each, encoded to 128 tokens per side (ZeTT's
training shape: 128 sequences x 128 tokens). Times ``align_batch`` in both granularities plus building the dense
token-to-chunk matrices, against the time to encode the same batch with the student tokenizer (the collator's
other per-batch work). Prints one JSON object; progress goes to stderr.

    python benchmarks/bench_alignment.py [--batch-size 128] [--block-size 128] [--repeats 5]
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


def texts(batch_size: int, span: int = 2048, seed: int = 0) -> list[str]:
    from zett.assets import load_corpus

    prose = "\n".join(load_corpus("botchan", split="train")["text"])
    code = "\n".join(load_corpus("stdlib-code", split="train")["text"])
    rng = np.random.default_rng(seed)
    out = []
    for k in range(batch_size):
        source = prose if k % 2 == 0 else code
        start = int(rng.integers(0, len(source) - span))
        out.append(source[start:start + span])
    return out


def main() -> None:
    from zett.tokenizers import load_tokenizer
    from zett.training.alignment import align_batch, token_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)

    teacher, student = load_tokenizer("smollm2-135m"), load_tokenizer("gpt2")
    for tok in (teacher, student):
        tok.pad_token = tok.eos_token
    t0 = time.perf_counter()
    t_table, s_table = token_table(teacher), token_table(student)
    table_s = time.perf_counter() - t0
    batch = texts(args.batch_size)
    enc = {}
    encode_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        enc = student(batch, max_length=args.block_size, truncation=True, padding=True, return_tensors="pt")
        encode_s.append(time.perf_counter() - t0)
    t_enc = teacher(batch, max_length=args.block_size, truncation=True, padding=True, return_tensors="pt")
    result = {"batch_size": args.batch_size, "block_size": args.block_size,
              "token_tables_s": round(table_s, 3), "student_encode_ms": round(1e3 * statistics.median(encode_s), 2)}
    for mode in ("unconstrained", "space"):
        times, mat_times = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            al = align_batch(t_enc["input_ids"], t_enc["attention_mask"], enc["input_ids"], enc["attention_mask"],
                             t_table, s_table, mode)
            t1 = time.perf_counter()
            al.matrices()
            times.append(t1 - t0)
            mat_times.append(time.perf_counter() - t1)
        chunks = al.chunk_mask.sum(1).float()
        result[mode] = {
            "align_ms": round(1e3 * statistics.median(times), 2),
            "matrices_ms": round(1e3 * statistics.median(mat_times), 2),
            "chunks_per_row": round(float(chunks.mean()), 1),
            "aligned_bytes": al.stats["aligned_bytes"],
            "mismatch_bytes": al.stats["mismatch_bytes"],
        }
        print(f"{mode}: {result[mode]}", file=sys.stderr)
    result["align_vs_encode"] = round(result["unconstrained"]["align_ms"] / result["student_encode_ms"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
