"""Time to produce one training batch of ``experiment=smollm2-gpu`` in ONE process pinned to ONE core.

One batch = one call of the training DataLoader as the data module builds it for that experiment (sample a
32,768-token tokenizer with the configured sampler, encode 128 texts to 128 tokens, decompose the vocabulary into
base pieces, select / bucket the rows): exactly what one DataLoader worker does per step. Set-up (data module
``setup`` with its validation tokenizers, the sampler's warm-up on 2,048 texts, the first batch) is reported
separately, with the process's peak RSS (= one worker's). Wall time and CPU time are both reported: on a shared
machine the wall time includes waiting for the core.

Runs against any checkout of zett (put it first on ``PYTHONPATH``), so the same file measures an old commit from a
``git worktree`` and the current tree back to back. Prints one JSON object; progress goes to stderr.

    python benchmarks/bench_vocab_pipeline.py [--batches 7] [--warmup 2] [--override data.batch_size=64]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _commit(root: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", default="smollm2-gpu")
    parser.add_argument("--batches", type=int, default=7, help="timed batches after the warm-up ones")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches after the first one")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra overrides")
    parser.add_argument("--no-validation", action="store_true", help="skip the validation tokenizers in set-up")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    torch.set_num_threads(1)
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import zett
    from zett.tokenizers import load_tokenizer

    root = Path(zett.__file__).resolve().parents[1]
    overrides = [f"experiment={args.experiment}", "data.num_workers=0", *args.override]
    if args.no_validation:
        overrides.append("data.validation.tokenizers=[]")
    with initialize_config_dir(config_dir=str(root / "configs"), version_base=None):
        cfg = compose("train", overrides=overrides)

    t0 = time.perf_counter()
    tokenizer = load_tokenizer(cfg.base_model.name)
    factory = instantiate(cfg.tokenizer_sampler, _partial_=True)
    kwargs = dict(base_tokenizer=tokenizer, sampler_factory=factory, objective=str(cfg.loss.objective),
                  seed=int(cfg.seed), max_pieces=int(cfg.hypernet.get("max_pieces") or 7), _recursive_=False)
    from zett.training.datamodule import ZettDataModule

    if "n_base_rows" in inspect.signature(ZettDataModule.__init__).parameters:  # newer trees only
        kwargs["n_base_rows"] = len(tokenizer)
    dm = instantiate(cfg.data, **kwargs)
    dm.setup("fit")
    t_setup = time.perf_counter() - t0

    loader = dm.train_dataloader()
    it = iter(loader)
    t0 = time.perf_counter()
    batch = next(it)  # builds the sampler (warm-up on sampler_warmup_texts texts) and the base decomposer
    t_first = time.perf_counter() - t0
    for _ in range(args.warmup):
        next(it)
    times, cpu, vocab, rows, tokens = [], [], [], [], []
    for k in range(args.batches):
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next(it)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        vocab.append(int(batch["vocab_size"]))
        rows.append(int(batch["surface_ids"].shape[0]))
        tokens.append(int(batch["attention_mask"].sum()))
        print(f"batch {k}: {times[-1]:.3f}s (cpu {cpu[-1]:.3f}s) vocab {vocab[-1]} rows {rows[-1]} "
              f"buckets {tuple(batch['buckets'].shape)}", file=sys.stderr)

    print(json.dumps({
        "benchmark": "vocab_pipeline",
        "tree": str(root),
        "commit": _commit(root),
        "experiment": args.experiment,
        "overrides": overrides[1:],
        "cores": 1,
        "threads": torch.get_num_threads(),
        "batch_size": int(batch["input_ids"].shape[0]),
        "block_size": int(batch["input_ids"].shape[1]),
        "vocab_size": statistics.median(vocab),
        "rows_predicted": statistics.median(rows),
        "tokens_per_batch": statistics.median(tokens),
        "seconds_per_batch_one_core": round(statistics.median(times), 4),
        "seconds_per_batch_min": round(min(times), 4),
        "seconds_per_batch_max": round(max(times), 4),
        # CPU time of this process: what the batch costs when the core is shared with other jobs
        "cpu_seconds_per_batch": round(statistics.median(cpu), 4),
        "cpu_seconds_per_batch_mean": round(statistics.mean(cpu), 4),  # the honest figure with reuse > 1
        "batches_timed": len(times),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "setup_s": round(t_setup, 2),
        "first_batch_s": round(t_first, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
