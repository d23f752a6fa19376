"""Throughput while training: tokens/s, model FLOP utilisation (MFU) and the hypernetwork's share of a step.

Useful FLOPs of one step (the issue's accounting; padding never counts):

- frozen base: ``4 * N * T``: forward ``2NT`` plus the activation-only backward ``2NT`` (its weights get no
  gradient); N = the base's parameters outside its embedding and LM-head matrices, T = real (unpadded) tokens;
- output head: ``3 * 2 * d * V * T``: the [T, d] x [d, V] vocabulary projection forward and its two backward
  products; V = vocabulary rows of the step;
- hypernetwork: ``6 * P * pieces``: forward + backward of P parameters over the real encoder pieces of the step's
  vocabulary (P leaves out the lookup tables: fallback rows and position embeddings).

MFU = useful FLOPs / (step time x peak). The peak is settable (default 989e12, H100/H200 dense bf16); the same
FLOPs are also reported against a matmul rate measured once on the machine at the start of fitting.

Step time is measured over whole logging intervals (the device is synchronised at each interval's end only, so
steps in between stay free of host syncs). The hypernetwork's share is its forward time (timed with CUDA events,
read at the interval's end) times 3 for forward + backward, over the step time: an estimate.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


def base_matmul_params(base_model) -> int:
    """Parameters of the frozen base that are matmul weights: all minus input embeddings and LM head."""
    from zett.models import adapter

    skip = {id(adapter.input_embeddings(base_model))}
    out = adapter.output_embeddings(base_model)
    skip.add(id(out))
    return sum(p.numel() for p in base_model.parameters() if id(p) not in skip)


def hypernet_matmul_params(hypernet) -> int:
    """Hypernetwork parameters used per piece/token in matmuls (lookup tables left out)."""
    skip = {id(hypernet.fallback_embeddings), id(hypernet.position_embeddings.weight)}
    return sum(p.numel() for p in hypernet.parameters() if id(p) not in skip)


def step_flops(n_base: int, d: int, vocab_rows: int, n_tokens: int, n_hypernet: int, n_pieces: int) -> dict:
    """Useful FLOPs of one training step by part (see the module docstring)."""
    base = 4 * n_base * n_tokens
    head = 3 * 2 * d * vocab_rows * n_tokens
    hypernet = 6 * n_hypernet * n_pieces
    return {"base": base, "head": head, "hypernet": hypernet, "total": base + head + hypernet}


def measure_matmul_flops(device: torch.device, dtype: torch.dtype | None = None, n: int | None = None,
                         repeats: int = 10) -> float:
    """FLOP/s of a square matmul on ``device`` (bf16 on GPU, float32 on CPU unless ``dtype`` is given)."""
    cuda = device.type == "cuda"
    dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
    n = n or (8192 if cuda else 512)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    if cuda:
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if cuda:
        torch.cuda.synchronize(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t)


class ThroughputMonitor(pl.Callback):
    """Logs ``perf/*`` every ``log_every_n_steps`` (default: the trainer's): tokens_per_s, step_s, mfu (against
    ``peak_flops``), mfu_measured (against the matmul rate measured at fit start), hypernet_share (estimated),
    tflops (useful FLOP/s in 1e12)."""

    def __init__(self, peak_flops: float = 989e12, log_every_n_steps: int | None = None,
                 measure_matmul: bool = True):
        if peak_flops <= 0:
            raise ValueError(f"ThroughputMonitor: peak_flops must be > 0, got {peak_flops}")
        self.peak_flops, self.every, self.measure_matmul = float(peak_flops), log_every_n_steps, measure_matmul
        self.matmul_rate: float | None = None
        self._reset()

    def _reset(self):
        self._flops = {"base": 0, "head": 0, "hypernet": 0, "total": 0}
        self._tokens, self._steps, self._events = 0, 0, []
        self._t0 = None

    def on_fit_start(self, trainer, pl_module):
        if self.measure_matmul:
            self.matmul_rate = measure_matmul_flops(pl_module.device)
        self.n_base = base_matmul_params(pl_module._frozen["base"])
        self.n_hypernet = hypernet_matmul_params(pl_module.hypernet)
        self.d = int(pl_module.hypernet.config.base_hidden_size)
        pl_module.hypernet_timer = self._timer(pl_module.device)

    def _timer(self, device):
        monitor = self

        class _Timer:
            """Brackets the hypernetwork's forward: CUDA events on GPU (read later), wall time on CPU."""

            def __enter__(self):
                if device.type == "cuda":
                    self.start = torch.cuda.Event(enable_timing=True)
                    self.start.record()
                else:
                    self.start = time.perf_counter()

            def __exit__(self, *exc):
                if device.type == "cuda":
                    end = torch.cuda.Event(enable_timing=True)
                    end.record()
                    monitor._events.append((self.start, end))
                else:
                    monitor._events.append(time.perf_counter() - self.start)

        return _Timer()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t0 is None:
            self._sync(pl_module)
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if "n_tokens" not in batch:
            return
        f = step_flops(self.n_base, self.d, int(batch["surface_ids"].shape[0]), int(batch["n_tokens"]),
                       self.n_hypernet, int(batch["n_pieces"]))
        for k, v in f.items():
            self._flops[k] += v
        self._tokens += int(batch["n_tokens"])
        self._steps += 1
        every = self.every or trainer.log_every_n_steps
        if trainer.global_step % max(1, every) != 0:
            return
        self._sync(pl_module)  # once per interval: the wall time now covers the queued device work
        elapsed = time.perf_counter() - self._t0
        # CUDA events: (start, end) pairs, read now that the device is synchronised; CPU: seconds
        hn_fwd = sum(x[0].elapsed_time(x[1]) / 1000 if isinstance(x, tuple) else x for x in self._events)
        step_s = elapsed / self._steps
        rate = self._flops["total"] / elapsed
        metrics = {
            "perf/step_s": step_s,
            "perf/tokens_per_s": self._tokens / elapsed,
            "perf/tflops": rate / 1e12,
            "perf/mfu": rate / self.peak_flops,
            "perf/hypernet_share": min(1.0, 3 * hn_fwd / elapsed),
            "perf/hypernet_flop_share": self._flops["hypernet"] / max(1, self._flops["total"]),
        }
        if self.matmul_rate:
            metrics["perf/mfu_measured"] = rate / self.matmul_rate
        pl_module.log_dict(metrics, on_step=True, on_epoch=False)
        self._reset()
        self._t0 = time.perf_counter()

    @staticmethod
    def _sync(pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
