"""Transfer SmolLM2-135M to large vocabularies (qwen2 152k, gemma4 262k) with an untrained default hypernetwork.

Each target runs in its own child process so that its peak RSS is its own. Reported per target: wall time of the
whole transfer (model load excluded), time inside the hypernetwork, the hypernetwork's matmul FLOPs and FLOP rate
as a fraction of a plain float32 matmul rate measured in the same run, peak RSS, and an FVT transfer for
reference. Other processes share the cores: ``os.getloadavg()`` is reported before and after. Prints ONE JSON
object on stdout; progress goes to stderr.

    python benchmarks/bench_transfer.py [--targets qwen2 gemma4] [--threads 2] [--chunk-size 8192]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def matmul_gflops(threads: int, reps: int = 5) -> float:
    """float32 [65536, 576] x [576, 1152] (the cost model's reference matmul), best of ``reps``."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(65536, 576), torch.randn(576, 1152)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 65536 * 576 * 1152 / best / 1e9


def padded_work(surface_mask, chunk_size: int) -> tuple[int, int, int]:
    """(positions, pair count, real pieces) the chunked predictor actually processes (equal-length chunks)."""

    from zett.transfer.predict import length_chunks

    lengths = surface_mask.sum(1)
    positions = pairs = 0
    for idx in length_chunks(surface_mask, chunk_size):
        width = max(int(lengths[idx].max()), 1)
        positions += width * len(idx)
        pairs += width * width * len(idx)
    return positions, pairs, int(lengths.sum())


def child(target: str, threads: int, chunk_size: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    import zett.transfer
    from zett import assets
    from zett.models import ZettHypernet
    from zett.transfer import api

    torch.set_num_threads(threads)
    base = AutoModelForCausalLM.from_pretrained(assets.path("smollm2-135m"), dtype=torch.float32).eval()
    hn = ZettHypernet.from_base_model(base)
    record: dict = {}
    original = api.predict_hypernet

    def timed(hypernet, surface_ids, surface_mask, *args, **kwargs):
        positions, pairs, pieces = padded_work(surface_mask, chunk_size)
        t = time.perf_counter()
        rows = original(hypernet, surface_ids, surface_mask, *args, **kwargs)
        seconds = time.perf_counter() - t
        flops = hypernet.forward_flops(positions, surface_ids.shape[0], pairs)
        record["piece_histogram"] = torch.bincount(surface_mask.sum(1), minlength=surface_mask.shape[1] + 1).tolist()
        record.update(hn_seconds=round(seconds, 2), n_pieces=pieces, n_positions=positions,
                      mean_pieces=round(pieces / surface_ids.shape[0], 3), hn_tflop=round(flops / 1e12, 3),
                      hn_gflops=round(flops / seconds / 1e9, 2))
        return rows

    api.predict_hypernet = timed
    t = time.perf_counter()
    model, tok = zett.transfer(base, target, method="hypernet", hypernet=hn, chunk_size=chunk_size, inplace=True,
                               progress=True)
    record["wall_seconds"] = round(time.perf_counter() - t, 2)
    record["vocab_size"] = len(tok)
    record["n_truncated"] = model.zett_transfer_info.n_truncated
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    del model
    fvt_base = AutoModelForCausalLM.from_pretrained(assets.path("smollm2-135m"), dtype=torch.float32).eval()
    t = time.perf_counter()
    zett.transfer(fvt_base, target, method="fvt", chunk_size=chunk_size, inplace=True, progress=False)
    record["fvt_wall_seconds"] = round(time.perf_counter() - t, 2)
    return record


def synthetic(histograms: dict[str, list[int]], device: str, chunk_sizes: list[int]) -> dict:
    """The hypernetwork alone on ``device`` at SmolLM2's shape (random base rows: no model files needed), over
    vocabularies with the given piece-count histograms (``piece_histogram`` of a CPU run)."""
    import torch

    from zett.models import ZettHypernet, ZettHypernetConfig
    from zett.transfer.predict import predict_hypernet

    gen = torch.Generator().manual_seed(0)
    source = torch.randn(49152, 576, generator=gen) * 0.05
    hn = ZettHypernet(ZettHypernetConfig(hidden_size=576, base_hidden_size=576, base_vocab_size=49152))
    hn.calibrate(source)
    hn.to(device).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a = torch.randn(65536, 576, device=device)
    b = torch.randn(576, 1152, device=device)
    a @ b
    sync()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    sync()
    matmul = 20 * 2 * 65536 * 576 * 1152 / (time.perf_counter() - t) / 1e9
    out = {"device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
           "torch": torch.__version__, "matmul_gflops": round(matmul, 1),
           "tf32": torch.backends.cuda.matmul.allow_tf32, "targets": {}}
    for name, hist in histograms.items():
        lengths = torch.repeat_interleave(torch.arange(len(hist)), torch.tensor(hist))
        lengths = lengths[torch.randperm(len(lengths), generator=gen)]
        width = len(hist) - 1
        mask = torch.arange(width)[None] < lengths[:, None]
        ids = torch.where(mask, torch.randint(0, 49152, mask.shape, generator=gen), 0)
        for chunk in chunk_sizes:
            predict_hypernet(hn, ids[:chunk], mask[:chunk], source, chunk_size=chunk, progress=False)  # warm-up
            sync()
            t = time.perf_counter()
            predict_hypernet(hn, ids, mask, source, chunk_size=chunk, progress=False)
            sync()
            seconds = time.perf_counter() - t
            positions, pairs, pieces = padded_work(mask, chunk)
            flops = hn.forward_flops(positions, len(lengths), pairs)
            out["targets"][f"{name}@chunk{chunk}"] = {
                "vocab_size": len(lengths), "hn_seconds": round(seconds, 3), "hn_tflop": round(flops / 1e12, 3),
                "hn_gflops": round(flops / seconds / 1e9, 1),
                "hn_fraction_of_matmul": round(flops / seconds / 1e9 / matmul, 3)}
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", nargs="+", default=["qwen2", "gemma4"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--synthetic", metavar="JSON",
                        help='hypernetwork-only run at SmolLM2 shape with random rows, e.g. on a GPU machine without '
                             'the assets: \'{"qwen2": [0, n1, n2, ...]}\' (piece histograms from a CPU run)')
    parser.add_argument("--device", default="cpu", help="with --synthetic: cpu | cuda")
    args = parser.parse_args()
    if args.synthetic:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(synthetic(json.loads(args.synthetic), args.device, [args.chunk_size, 65536])))
        return
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.chunk_size)))
        return

    load_before = [round(x, 2) for x in os.getloadavg()]
    rate_before = matmul_gflops(args.threads)
    print(f"matmul {rate_before:.1f} GFLOP/s, load {load_before}", file=sys.stderr)
    results = {}
    for target in args.targets:
        print(f"transferring smollm2-135m -> {target}", file=sys.stderr)
        run = subprocess.run([sys.executable, __file__, "--child", target, "--threads", str(args.threads),
                              "--chunk-size", str(args.chunk_size)], stdout=subprocess.PIPE, text=True)
        if run.returncode != 0:
            results[target] = {"error": f"child exited with {run.returncode}"}
            continue
        results[target] = json.loads(run.stdout.strip().splitlines()[-1])
    rate_after = matmul_gflops(args.threads)
    rate = max(rate_before, rate_after)
    for r in results.values():
        if "hn_gflops" in r:
            r["hn_fraction_of_matmul"] = round(r["hn_gflops"] / rate, 3)
    import torch

    from zett.models import ZettHypernet, ZettHypernetConfig

    hn = ZettHypernet(ZettHypernetConfig(hidden_size=576, base_hidden_size=576, base_vocab_size=49152))
    print(json.dumps({
        "benchmark": "transfer smollm2-135m with an untrained default hypernetwork",
        "threads": args.threads, "chunk_size": args.chunk_size, "torch": torch.__version__,
        "hypernet_params": sum(p.numel() for p in hn.parameters()),
        "hypernet_mflop_per_piece": round(hn.num_flops_per_piece() / 1e6, 2),
        "matmul_gflops": {"before": round(rate_before, 2), "after": round(rate_after, 2)},
        "loadavg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "targets": results,
    }))


if __name__ == "__main__":
    main()
