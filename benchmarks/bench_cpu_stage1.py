"""Tokens per CPU-second of a whole training step on the real SmolLM2-135M: the stage-1 cut-model latents step
(``experiment=cpu-latents``, layer k, teacher read from a cache) against ``experiment=shipped-cpu``'s step (full
model, CLM + ALM balanced by gradient magnitude, 2,048 sampled vocabulary rows) at the same batch shape.

Each arm is built by ``zett.training.train.build`` from the composed config, exactly as ``zett-train`` builds it,
and runs ``--steps`` steps after ``--warmup`` steps: the batch (the collator in this process: tokenizer sampling,
surface forms, alignment, encoding), ``training_step``, backward and the AdamW step. Process CPU time counts every
thread of the process. Tokens = the batch's non-padding student tokens. The teacher cache of the latents arms is
built on a small span set first (its build time is reported, and is not part of a step). The machine's own float32
matmul rate is measured in the same run.

    python benchmarks/bench_cpu_stage1.py [--layers 8 4] [--batch 16] [--block 128] [--steps 8] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


class _Trainer:
    world_size, global_step, global_rank, log_every_n_steps = 1, 0, 0, 1000


def arm(overrides: list[str], steps: int, warmup: int) -> dict:
    from hydra import compose, initialize_config_dir

    from zett.training import CONFIG_DIR
    from zett.training.train import build

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        from omegaconf import OmegaConf

        OmegaConf.set_struct(cfg, False)
        cfg.run_dir = run_dir
        cpu0, wall0 = time.process_time(), time.perf_counter()
        _, _, module, datamodule, _ = build(cfg, Path(run_dir))
        build_cpu = time.process_time() - cpu0
        module._trainer = _Trainer()
        module.log = module.log_dict = lambda *a, **k: None
        datamodule.setup("fit")
        opt = module.configure_optimizers()["optimizer"]
        it = iter(datamodule.train_dataloader())
        cpu = tokens = 0.0
        for i in range(warmup + steps):
            t = time.process_time()
            batch = next(it)
            loss = module.training_step(batch, i)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= warmup:
                cpu += time.process_time() - t
                tokens += float(batch["attention_mask"].sum())
        cache = module.teacher_cache
        return {"overrides": overrides, "steps": steps, "tokens_per_step": tokens / steps,
                "cpu_seconds_per_step": cpu / steps, "tokens_per_cpu_second": tokens / cpu,
                "build_cpu_seconds": round(build_cpu, 1), "wall_seconds": round(time.perf_counter() - wall0, 1),
                "teacher_cache": None if cache is None else {k: cache.meta[k] for k in (
                    "n_spans", "size_bytes", "build_cpu_seconds", "build_wall_seconds")},
                "final_loss": float(loss.detach())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, nargs="+", default=[8, 4])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--spans", type=int, default=256, help="fixed spans of the latents arms (cache size)")
    args = p.parse_args()
    torch.manual_seed(0)
    shape = [f"data.batch_size={args.batch}", f"data.block_size={args.block}", "data.num_workers=0"]
    out = {"threads": torch.get_num_threads(), "matmul_gflops_fp32": round(matmul_gflops(), 1), "arms": {}}
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZETT_HOME"] = home  # the caches of this benchmark are its own
        log("shipped-cpu step ...")
        out["arms"]["shipped-cpu"] = arm(["experiment=shipped-cpu", *shape], args.steps, args.warmup)
        for k in args.layers:
            log(f"cpu-latents step, layer {k} ...")
            out["arms"][f"cpu-latents-k{k}"] = arm(
                ["experiment=cpu-latents", f"loss.layer={k}", f"data.fixed_spans={args.spans}", *shape],
                args.steps, args.warmup)
    base = out["arms"]["shipped-cpu"]["tokens_per_cpu_second"]
    out["speedup_vs_shipped_cpu"] = {name: round(a["tokens_per_cpu_second"] / base, 2)
                                     for name, a in out["arms"].items()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
