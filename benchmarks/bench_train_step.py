"""Time one hypernetwork training step against a step of the same frozen model with fixed embeddings.

Both steps run the same batch (a sampled tokenizer, vocabulary subsampled): the baseline treats the [S, d]
embedding rows as plain trainable tensors (forward + backward through the frozen base + chunked cross-entropy +
AdamW step); the hypernetwork step is the module's own ``training_step`` (CLM + lexical loss, the non-finite
bookkeeping) plus backward and AdamW. The ratio is the hypernetwork's overhead. The machine's own matmul rate is
measured in the same run, and the hypernetwork's FLOPs are reported as a fraction of it.

Bucket layouts: the hypernetwork's forward + backward alone (``module.predict``, then a backward of the summed
rows) on the same batch in three layouts, timed in the same process: ``padded`` (one call over every row padded to
max_pieces), ``by_length`` (one bucket per piece count, ``data.bucket_chunks=0``) and ``fixed_<n>`` (n buckets of
one row count, ``data.bucket_chunks=n``). ``--bucket-chunks`` picks the layout the full steps use.

Host syncs: one steady-state step of each kind runs inside ``zett.training.syncs.count_host_syncs`` (loaded from
this checkout's file, so the benchmark also measures older trees put first on PYTHONPATH): every ``.item()``,
``int/bool/float(tensor)``, ``.tolist()``, ``.cpu()``, ``torch.equal``, ``nonzero``/boolean-mask indexing made by
the step, by calling source line. On a GPU ``torch.cuda.set_sync_debug_mode("warn")`` is on as well. Prints one
JSON object (progress on stderr).

    python benchmarks/bench_train_step.py [--base smollm2-135m] [--batch 4] [--block 64] [--subsample 2048]
        [--bucket-chunks 0]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def matmul_gflops(device: str, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def _sync_counter():
    """count_host_syncs from this checkout's zett/training/syncs.py, whatever zett is imported."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "zett" / "training" / "syncs.py"
    spec = importlib.util.spec_from_file_location("_bench_syncs", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.count_host_syncs


class _Trainer:
    """The trainer attributes training_step reads; logging is switched off on the module."""
    world_size, global_step, global_rank, log_every_n_steps, datamodule = 1, 1, 0, 10, None


def _short(site: str) -> str:
    for marker in ("/site-packages/", "/zett/"):
        if marker in site:
            return ("zett/" if marker == "/zett/" else "") + site.split(marker, 1)[1]
    return site


def count_syncs(fn, device) -> dict:
    count_host_syncs = _sync_counter()
    fn()
    _sync(device)
    with count_host_syncs() as syncs:
        fn()
    _sync(device)
    return {"total": syncs.total, "zett": syncs.within("/zett/"),
            "by_site": {_short(k): v for k, v in sorted(syncs.by_site.items())}}


def layout_times(module, batch, max_pieces: int, chunks: int, device, repeats: int) -> dict:
    """Seconds (median and min) of the hypernetwork's forward + backward over the batch's rows in each bucket
    layout. The layouts take turns, repeat after repeat, so a load change on a shared machine hits them alike."""
    from zett.training.vocab import buckets_by_length

    rows = batch["surface_ids"].shape[0]
    lengths = batch["surface_mask"].sum(1).cpu()  # rows are sorted by piece count (bucket=True)
    pad = max_pieces - batch["surface_ids"].shape[1]
    padded = dict(batch, bucket_spans=[(0, rows, max_pieces)],
                  surface_ids=torch.nn.functional.pad(batch["surface_ids"], (0, pad)),
                  surface_mask=torch.nn.functional.pad(batch["surface_mask"], (0, pad)))
    variants = {"padded": padded,
                "by_length": dict(batch, bucket_spans=buckets_by_length(lengths, True).tolist()),
                f"fixed_{chunks}": dict(batch, bucket_spans=buckets_by_length(lengths, True, chunks).tolist())}

    def run(b):
        module.zero_grad(set_to_none=True)
        e_in, e_out, bias = module.predict(b["surface_ids"], b["surface_mask"], b["special"], b["bucket_spans"],
                                           b.get("overflow_ids"), b.get("overflow_mask"))
        total = e_in.sum() + (0 if e_out is e_in else e_out.sum()) + (0 if bias is None else bias.sum())
        total.backward()

    times = {name: [] for name in variants}
    for b in variants.values():
        run(b)  # warm-up
    for _ in range(repeats):
        for name, b in variants.items():
            _sync(device)
            t = time.perf_counter()
            run(b)
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: {"seconds": round(sorted(times[name])[len(times[name]) // 2], 4),
                   "min_seconds": round(min(times[name]), 4), "calls": len(b["bucket_spans"]),
                   "padded_positions": sum((e - s) * w for s, e, w in b["bucket_spans"])}
            for name, b in variants.items()}


def zett_path(name: str):
    import pathlib

    if pathlib.Path(name).exists():
        return pathlib.Path(name)
    from zett.assets import path

    return path(name)


def run(device: str, args) -> dict:
    from zett.assets import load_corpus
    from zett.models import ZettHypernet
    from zett.tokenizers import TokenizerSampler
    from zett.training.base import load_base
    from zett.training.collator import SampledTokenizerCollator
    from zett.training.context import StepContext
    from zett.training.losses import CausalLMLoss, LexicalLoss
    from zett.training.module import ZettTrainingModule

    if args.random_init:
        # Same architecture and tokenizer, random weights: timings are identical, no weight file needed.
        from transformers import AutoConfig, AutoModelForCausalLM

        from zett.tokenizers import load_tokenizer

        where = str(zett_path(args.base))
        base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(where)).eval().requires_grad_(False)
        tok = load_tokenizer(where)
    else:
        base, tok = load_base(args.base)
    hn_kwargs = {"hidden_size": args.hn_hidden, "num_layers": args.hn_layers} if args.hn_hidden else {}
    hn = ZettHypernet.from_base_model(base, **hn_kwargs)
    module = ZettTrainingModule(base, hn, {"clm": CausalLMLoss(), "lexical": LexicalLoss(0.5)},
                                scheduler={"learning_rates": [1e-4], "warmup_steps": [1], "total_steps": 10})
    module.to(device)
    module._trainer = _Trainer()
    module.log = module.log_dict = lambda *a, **k: None
    if args.text_file:
        raw = open(args.text_file, encoding="utf-8").read()
        texts = [raw[i * 20000: (i + 1) * 20000] for i in range(8)]
    else:
        texts = [t[:20000] for t in load_corpus("botchan", "train")["text"][:8]]
    sampler = functools.partial(TokenizerSampler, vocab_size=args.vocab, queue_size=2)
    col = SampledTokenizerCollator(tok, sampler, block_size=args.block, n_subsample=args.subsample, seed=0,
                                   warmup_texts={"en": texts}, bucket_chunks=args.bucket_chunks)
    spans = [t[i * 1000: i * 1000 + 4 * args.block * 4] for i, t in enumerate(texts)][: args.batch]
    spans = (spans * args.batch)[: args.batch]
    batch = col({"texts": spans, "domain": "en"})
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    rows, width = batch["surface_ids"].shape
    pieces = int(batch["surface_mask"].sum())
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu",
                                                                                                     enabled=False)
    hn_params = [p for p in module.parameters() if p.requires_grad]
    fused = {"fused": True} if device == "cuda" else {}
    opt_hn = torch.optim.AdamW(hn_params, lr=1e-4, **fused)

    def hn_step():
        with autocast:
            loss = module.training_step(dict(batch), 0)
        opt_hn.zero_grad(set_to_none=True)
        loss.backward()
        opt_hn.step()

    with torch.no_grad():
        e_in, e_out, _ = module.predict(batch["surface_ids"], batch["surface_mask"], batch["special"],
                                        batch["buckets"])
    fixed = torch.nn.Parameter(e_in.detach().clone())
    opt_fixed = torch.optim.AdamW([fixed], lr=1e-4, **fused)

    def fixed_step():
        with autocast:
            ctx = StepContext(module, batch, 1, embeddings=(fixed, fixed, None))
            loss = module.losses["clm"](ctx)
        opt_fixed.zero_grad(set_to_none=True)
        loss.backward()
        opt_fixed.step()

    log(f"[{device}] batch {tuple(batch['input_ids'].shape)}, {rows} vocabulary rows, {pieces} pieces")
    layouts = layout_times(module, batch, hn.config.max_pieces, args.layout_chunks, device,
                           args.layout_repeats or args.repeats)
    if args.layouts_only:
        return {"device": device, "torch_threads": torch.get_num_threads(), "vocab_rows": rows,
                "surface_pieces": pieces, "hypernet_fwd_bwd_s_by_layout": layouts}
    t_fixed = timed(fixed_step, device, args.repeats)
    t_hn = timed(hn_step, device, args.repeats)
    if device == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
    syncs_hn, syncs_fixed = count_syncs(hn_step, device), count_syncs(fixed_step, device)
    if device == "cuda":
        torch.cuda.set_sync_debug_mode(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rate = matmul_gflops(device, dtype, 4096 if device == "cuda" else 2048)
    # hypernet forward+backward ≈ 3 x forward; forward ≈ FLOPs per piece x pieces (+ heads per token)
    hn_flops = 3 * (hn.num_flops_per_piece() * pieces)
    t_hn_only = max(t_hn - t_fixed, 1e-9)
    return {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "batch_tokens": int(batch["attention_mask"].sum()),
        "batch_shape": list(batch["input_ids"].shape),
        "vocab_rows": rows,
        "surface_pieces": pieces,
        "surface_width": width,
        "buckets": len(batch["buckets"]),
        "hypernet_params": sum(p.numel() for p in hn_params),
        "step_s_fixed_embeddings": round(t_fixed, 4),
        "step_s_hypernet": round(t_hn, 4),
        "overhead_ratio": round(t_hn / t_fixed, 3),
        "matmul_gflops": round(rate, 1),
        "hypernet_gflop_per_step": round(hn_flops / 1e9, 2),
        "hypernet_fraction_of_matmul_rate": round(hn_flops / t_hn_only / 1e9 / rate, 3),
        "bucket_chunks": args.bucket_chunks,
        "hypernet_fwd_bwd_s_by_layout": layouts,
        "host_syncs_per_step": syncs_hn["total"],
        "host_syncs_per_step_in_zett": syncs_hn["zett"],
        "host_syncs_by_site": syncs_hn["by_site"],
        "host_syncs_per_step_fixed_embeddings": syncs_fixed["total"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--subsample", type=int, default=2048)
    p.add_argument("--hn-hidden", type=int, default=128, help="0 = full width (the base hidden size)")
    p.add_argument("--hn-layers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bucket-chunks", type=int, default=0, help="the full steps' layout (data.bucket_chunks)")
    p.add_argument("--layout-chunks", type=int, default=8, help="n of the fixed_<n> layout timed alongside")
    p.add_argument("--layout-repeats", type=int, default=0, help="repeats of the layout timing (0: --repeats)")
    p.add_argument("--layouts-only", action="store_true", help="time the bucket layouts only (no full steps)")
    p.add_argument("--random-init", action="store_true", help="random weights from the base's config.json")
    p.add_argument("--text-file", default=None, help="plain text to sample from (default: the botchan corpus)")
    p.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True, help="run the CPU measurement")
    args = p.parse_args()
    results = {"benchmark": "train_step", "base": args.base, "config": vars(args),
               "runs": [run("cpu", args)] if args.cpu else []}
    if torch.cuda.is_available():
        gpu_args = argparse.Namespace(**{**vars(args), "batch": 32, "block": 128, "vocab": 32768,
                                         "subsample": 0, "hn_hidden": 0, "repeats": 5})
        results["runs"].append(run("cuda", gpu_args))
        results["gpu_config"] = vars(gpu_args)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
