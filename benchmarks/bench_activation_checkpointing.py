"""Activation memory and step time of the frozen base with and without activation checkpointing.

The base is frozen, but the loss backpropagates through it to the predicted input embeddings, so its activations
are kept for backward. This measures, for one forward + backward from ``inputs_embeds`` through the base's layers:
the bytes autograd keeps for backward (counted with ``torch.autograd.graph.saved_tensors_hooks``, exact on any
device), the peak CUDA memory where a GPU is used, and the median wall time. Prints one JSON object.

    python benchmarks/bench_activation_checkpointing.py [--base smollm2-135m] [--batch 4] [--block 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def measure(base, batch: int, block: int, device: str, repeats: int) -> dict:
    from zett.models import adapter

    d = adapter.source_embeddings(base).shape[1]
    embeds = torch.randn(batch, block, d, device=device, generator=torch.Generator(device).manual_seed(0))
    mask = torch.ones(batch, block, dtype=torch.long, device=device)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    def step(count: bool = False):
        x = embeds.clone().requires_grad_(True)
        if count:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = adapter.hidden_states(base, x, mask).float().pow(2).mean()
        else:
            loss = adapter.hidden_states(base, x, mask).float().pow(2).mean()
        loss.backward()
        return x.grad

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        grad = step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    out = {"step_s": round(statistics.median(times), 4)}
    if device == "cuda":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    step(count=True)
    out["saved_for_backward_mib"] = round(sum(saved) / 2**20, 2)
    out["grad_norm"] = float(grad.float().norm())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from zett.training.base import enable_activation_checkpointing, load_base

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    result = {"benchmark": "activation_checkpointing", "base": args.base, "batch": args.batch,
              "block": args.block, "device": args.device, "dtype": str(dtype).replace("torch.", "")}
    for name in ("off", "on"):
        base, _ = load_base(args.base)
        base = base.to(args.device, dtype)
        if name == "on":
            result["layers_checkpointed"] = enable_activation_checkpointing(base)
        print(f"# activation checkpointing {name}", file=sys.stderr, flush=True)
        result[name] = measure(base, args.batch, args.block, args.device, args.repeats)
        del base
    off, on = result["off"], result["on"]
    result["saved_ratio"] = round(on["saved_for_backward_mib"] / off["saved_for_backward_mib"], 4)
    result["time_ratio"] = round(on["step_s"] / off["step_s"], 3)
    result["same_gradient"] = abs(on["grad_norm"] - off["grad_norm"]) <= 1e-3 * abs(off["grad_norm"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
