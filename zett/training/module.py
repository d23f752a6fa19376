"""``ZettTrainingModule``: trains a hypernetwork against a frozen base language model.

The base model is *not* a submodule: it never enters ``state_dict``, checkpoints, DDP/FSDP wrapping or the
optimizer. It is held in ``self._frozen`` and moved to the module's device (bfloat16 on GPU, float32 on CPU by
default) the first time a step needs it. Only the hypernetwork (and any parameters of loss terms) are trained.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from zett.training.chunked_ce import chunked_cross_entropy
from zett.training.context import StepContext, plain_cross_entropy
from zett.training.losses import LossTerm
from zett.training.optim import build_optimizer
from zett.training.schedule import build_scheduler

LN2 = math.log(2.0)


def _fault_injection() -> tuple[int, int] | None:
    """``ZETT_TEST_NONFINITE_LOSS=RANK@STEP``: that rank's loss is NaN at that step (tests of the multi-rank stop;
    never set it otherwise)."""
    import os

    spec = os.environ.get("ZETT_TEST_NONFINITE_LOSS")
    if not spec:
        return None
    rank, _, step = spec.partition("@")
    return int(rank), int(step)
BALANCE_MODES = ("fixed", "gradmag")


def _pad_rows(x: torch.Tensor, n: int, value) -> torch.Tensor:
    """x # [R, ...] with ``n`` rows of ``value`` appended (n a host int: no device sync)."""
    if not n:
        return x
    return torch.cat([x, x.new_full((n, *x.shape[1:]), value)])


def ratio_se(num: torch.Tensor, den: torch.Tensor) -> float:
    """Standard error of sum(num) / sum(den) over n units (the delta method for a ratio estimator). [n], [n]"""
    n, total = num.shape[0], float(den.sum())
    resid = num - float(num.sum()) / total * den
    return math.sqrt(n / (n - 1) * float(resid.pow(2).sum())) / total


class ZettTrainingModule(pl.LightningModule):
    """hypernet: a ``ZettHypernet`` built for ``base_model``; losses: name -> ``LossTerm``.

    optimizer: kwargs of ``build_optimizer`` (weight_decay, betas, eps); scheduler: kwargs of ``build_scheduler``
    (learning_rates, warmup_steps, total_steps, alpha). val_names: one name per validation dataloader.
    base_dtype: "auto" (bfloat16 on GPU, float32 on CPU), "float32" or "bfloat16".
    ce_max_chunk_elements: logits built at once by the chunked cross-entropy (memory bound).
    balance: how the active terms combine: ``fixed`` (Σ weight · term) or ``gradmag`` (every term gets an equal
    gradient norm at the hypernetwork's last layer, ``zett.training.distill.gradmag_weights``; the yaml weights
    then multiply those balanced weights). base_tokenizer: the base model's tokenizer (distillation modes that
    use the teacher's probability of a following whitespace/special token need it).
    nonfinite_check_every: steps between checks of the loss for NaN/inf (None: the trainer's
    log_every_n_steps). Each step only ORs its flag into a device tensor; the check reads it on the host (and
    all-gathers it over ranks), so a non-finite loss on any rank stops every rank at the same step with one
    message, and steps between checks never wait for the device.
    ce_matmul_dtype: the vocabulary projection's matmul dtype in the chunked cross-entropy: "auto" (bfloat16 on
    GPU, float32 on CPU), "float32" or "bfloat16"; the log-softmax is accumulated in float32 either way.
    allow_tf32: let float32 matmuls use TF32 on GPUs that have it (set when fitting starts).
    compile_hypernet: run the hypernetwork's forward through ``torch.compile`` (True: the default backend; a
    string: that backend), with PyTorch's automatic dynamic shapes: each call shape is compiled as static until a
    dimension is seen to change, which then becomes dynamic. Off by default. It pays with fixed bucket shapes
    (``data.bucket_chunks > 0``: every call has the same row count, widths 1..max_pieces), where the row count
    stays static; with one bucket per piece count both dimensions change every step.
    """

    def __init__(self, base_model, hypernet, losses: dict[str, LossTerm], optimizer: dict | None = None,
                 scheduler: dict | None = None, objective: str = "clm", val_names: list[str] | None = None,
                 base_dtype: str = "auto", ce_max_chunk_elements: int = 1 << 24, seed: int = 0,
                 balance: str = "fixed", base_tokenizer=None, nonfinite_check_every: int | None = None,
                 ce_matmul_dtype: str = "auto", allow_tf32: bool = True, compile_hypernet: bool | str = False):
        super().__init__()
        from zett.models import adapter

        if not losses:
            raise ValueError("no loss terms configured; pick a loss config (loss=clm, clm_lexical or mlm)")
        if balance not in BALANCE_MODES:
            raise ValueError(f"loss.balance={balance!r} is not supported; use one of {BALANCE_MODES}")
        self.balance, self.base_tokenizer = balance, base_tokenizer
        self._teacher_space: torch.Tensor | None = None
        # zett.training.teacher_cache.TeacherCache of the fixed span set (train() attaches it), or None
        self.teacher_cache = None
        self.hypernet = hypernet
        self.losses = nn.ModuleDict(losses)
        self.optimizer_cfg, self.scheduler_cfg = dict(optimizer or {}), dict(scheduler or {})
        self.objective, self.seed = objective, int(seed)
        self.val_names = list(val_names or [])
        self.base_dtype, self.ce_max_chunk_elements = base_dtype, int(ce_max_chunk_elements)
        base_model.eval()
        base_model.requires_grad_(False)
        hypernet.check_compatible(base_model)
        bias = adapter.output_bias(base_model)
        # Held outside nn.Module registration on purpose (see module docstring).
        self._frozen = {
            "base": base_model,
            "source": adapter.source_embeddings(base_model).float(),
            "source_bias": None if bias is None else bias.detach().float(),
        }
        self.tied = adapter.is_tied(base_model)
        cfg = base_model.config.get_text_config() if hasattr(base_model.config, "get_text_config") \
            else base_model.config
        self._logit_scale = getattr(cfg, "logit_scale", None)
        self._softcap = getattr(cfg, "final_logit_softcapping", None)
        self._val_embeddings: dict[int, tuple] = {}
        self._val_sums: dict[int, torch.Tensor] = {}
        # per-batch (nll, bytes) of this validation and, by name, of the previous one: standard errors
        self._val_units: dict[int, list[torch.Tensor]] = {}
        self._prev_units: dict[str, torch.Tensor] = {}
        self.val_history: list[dict] = []
        # what the run has spent, for learning curves over cost: this process's CPU time (all its threads; with
        # data.num_workers > 0 the workers' is not included) without validation, plus earlier processes' (from
        # the checkpoint), and the student tokens trained on
        self._cpu = {"before": 0.0, "validation": 0.0, "val_start": 0.0}
        self.tokens_seen = 0
        if nonfinite_check_every is not None and int(nonfinite_check_every) < 1:
            raise ValueError(f"nonfinite_check_every must be >= 1 (steps), got {nonfinite_check_every}")
        self.nonfinite_check_every = None if nonfinite_check_every is None else int(nonfinite_check_every)
        self._nonfinite: torch.Tensor | None = None  # [2] float: (first bad step or -1, its loss value)
        self._fault = _fault_injection()
        if ce_matmul_dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"ce_matmul_dtype={ce_matmul_dtype!r} is not supported; use auto, float32 or bfloat16")
        self.ce_matmul_dtype, self.allow_tf32 = ce_matmul_dtype, bool(allow_tf32)
        # kept out of nn.Module registration: a compiled wrapper would duplicate the hypernet in state_dict
        self._compiled: dict = {}
        if compile_hypernet:
            backend = compile_hypernet if isinstance(compile_hypernet, str) else "inductor"
            self._compiled["hypernet"] = torch.compile(self.hypernet, dynamic=None, backend=backend)

    # ------------------------------------------------------------------ frozen base
    @property
    def base_model(self):
        self._place_frozen()
        return self._frozen["base"]

    @property
    def source(self) -> torch.Tensor:
        self._place_frozen()
        return self._frozen["source"]

    def _frozen_dtype(self) -> torch.dtype:
        if self.base_dtype == "auto":
            return torch.bfloat16 if self.device.type == "cuda" else torch.float32
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.base_dtype]

    def _place_frozen(self) -> None:
        # The first move may happen inside trainer.validate's inference mode; tensors created there could never
        # take part in a backward pass, so the move always runs outside it.
        with torch.inference_mode(False):
            self._move_frozen()

    def _move_frozen(self) -> None:
        f, device = self._frozen, self.device
        if f["source"].device != device:
            f["source"] = f["source"].to(device)
            if f["source_bias"] is not None:
                f["source_bias"] = f["source_bias"].to(device)
        base, dtype = f["base"], self._frozen_dtype()
        p = next(base.parameters())
        if p.device != device or p.dtype != dtype:
            f["base"] = base.to(device=device, dtype=dtype)

    def base_hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds [B, T, d] (predicted rows) -> final hidden states [B, T, d] of the frozen base."""
        from zett.models import adapter

        base = self.base_model
        dtype = next(base.parameters()).dtype
        return adapter.hidden_states(base, inputs_embeds.to(dtype), attention_mask)

    def base_hidden_at(self, inputs_embeds: torch.Tensor, attention_mask, layer: int) -> torch.Tensor:
        """inputs_embeds [B, T, d] -> states [B, T, d] after the base's first ``layer`` layers (the cut model)."""
        from zett.models import adapter

        base = self.base_model
        dtype = next(base.parameters()).dtype
        return adapter.hidden_states_at(base, inputs_embeds.to(dtype), attention_mask, layer)

    # ------------------------------------------------------------------ hypernetwork
    def predict(self, surface_ids, surface_mask, special=None, buckets=None, overflow_ids=None,
                overflow_mask=None):
        """Run the hypernetwork bucket by bucket (each with its own surface length).

        surface_ids/surface_mask [S, L]; special [S]; buckets: (start, end, pieces) rows as a list (the
        collator's ``bucket_spans``: host data, no device sync) or a [n, 3] tensor, or None; overflow_ids /
        overflow_mask [S, E] pieces past max_pieces (the FVT mean's; None = none truncated).
        A bucket whose end passes S (the fixed layout's last bucket, ``zett.training.vocab``) is padded to its
        full row count with rows without pieces, and their predictions dropped, so its shape is the layout's.
        A bucket narrower than max_pieces holds no truncated token: it gets no overflow pieces.
        -> E_in [S, d], E_out [S, d], bias [S] | None
        """
        source = self.source
        source_bias = self._frozen["source_bias"]
        if torch.is_tensor(buckets):
            buckets = buckets.tolist()  # reads a device tensor: batches carry bucket_spans to avoid this
        if buckets is None or len(buckets) <= 1:
            spans = [(0, surface_ids.shape[0], surface_ids.shape[1])]
        else:
            spans = [tuple(int(x) for x in row) for row in buckets]
        outs = []
        n_rows, max_pieces = surface_ids.shape[0], self.hypernet.config.max_pieces
        if overflow_ids is not None and overflow_ids.shape[1] == 0:
            overflow_ids = overflow_mask = None
        timer = getattr(self, "hypernet_timer", None)  # set by ThroughputMonitor while fitting
        with timer if timer is not None and self.training else contextlib.nullcontext():
            for start, end, width in spans:
                pad = max(0, end - n_rows)  # host ints: padding the fixed layout's last bucket needs no sync
                ids = _pad_rows(surface_ids[start:end, :width], pad, 0)
                mask = _pad_rows(surface_mask[start:end, :width], pad, False)
                sp = None if special is None else _pad_rows(special[start:end], pad, -1)
                ov_ids = ov_mask = None
                if overflow_ids is not None and width >= max_pieces:
                    ov_ids = _pad_rows(overflow_ids[start:end], pad, 0)
                    ov_mask = _pad_rows(overflow_mask[start:end], pad, False)
                hypernet = self._compiled.get("hypernet", self.hypernet)
                out = hypernet(ids, mask, source, special=sp, source_bias=source_bias, overflow_ids=ov_ids,
                               overflow_mask=ov_mask, validate=False)
                if pad:
                    keep = end - start - pad
                    e_in = out.input_embeddings[:keep]
                    e_out = e_in if out.output_embeddings is out.input_embeddings else out.output_embeddings[:keep]
                    out = type(out)(e_in, e_out, None if out.bias is None else out.bias[:keep])
                outs.append(out)
        if len(outs) == 1:
            o = outs[0]
            return o.input_embeddings, o.output_embeddings, o.bias
        e_in = torch.cat([o.input_embeddings for o in outs])
        e_out = e_in if self.tied else torch.cat([o.output_embeddings for o in outs])
        bias = None if outs[0].bias is None else torch.cat([o.bias for o in outs])
        return e_in, e_out, bias

    def cross_entropy(self, hidden, weight, targets, bias) -> torch.Tensor:
        """Per-position NLL [N] of targets under ``hidden @ weight.T + bias`` with the base's logit
        post-processing."""
        if self._softcap is not None:
            return plain_cross_entropy(hidden, weight, targets, bias, self.base_model)
        if self._logit_scale is not None:
            hidden = hidden * self._logit_scale
            bias = None if bias is None else bias * self._logit_scale
        return chunked_cross_entropy(hidden, weight, targets, bias, max_chunk_elements=self.ce_max_chunk_elements,
                                     matmul_dtype=self._ce_dtype())

    def _ce_dtype(self) -> torch.dtype:
        if self.ce_matmul_dtype == "auto":
            return torch.bfloat16 if self.device.type == "cuda" else torch.float32
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[self.ce_matmul_dtype]

    def on_fit_start(self) -> None:
        if self.allow_tf32 and self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def logit_fn(self, logits: torch.Tensor) -> torch.Tensor:
        """The base's logit post-processing (Cohere's logit_scale, Gemma 2's soft-capping) on raw logits."""
        if self._logit_scale is not None:
            logits = logits * self._logit_scale
        if self._softcap is not None:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def full_logits(self, hidden: torch.Tensor, weight: torch.Tensor, bias=None) -> torch.Tensor:
        """hidden [K, d] -> post-processed float32 logits [K, V] (for few positions only)."""
        logits = hidden.float() @ weight.float().T
        return self.logit_fn(logits if bias is None else logits + bias.float())

    def teacher_space_mask(self) -> torch.Tensor:
        """[N_base] bool: base tokens that start with whitespace, and specials (ALM's space probability)."""
        if self._teacher_space is None:
            if self.base_tokenizer is None:
                raise ValueError("this distillation mode needs the base tokenizer: pass base_tokenizer= to "
                                 "ZettTrainingModule (train() does)")
            from zett.training.alignment import token_table

            table = token_table(self.base_tokenizer)
            mask = torch.zeros(self.source.shape[0], dtype=torch.bool)
            n = min(len(table), mask.numel())
            mask[:n] = torch.from_numpy(table.starts_space | table.special)[:n]
            self._teacher_space = mask
        if self._teacher_space.device != self.device:
            self._teacher_space = self._teacher_space.to(self.device)
        return self._teacher_space

    def last_layer_parameters(self) -> list[torch.Tensor]:
        """The hypernetwork's output layers (where ``balance=gradmag`` measures each term's gradient)."""
        hn = self.hypernet
        layers = [hn.input_head.proj, getattr(hn.output_head, "proj", None), hn.bias_head]
        return [p for layer in layers if layer is not None for p in layer.parameters() if p.requires_grad]

    def _combine(self, names: list[str], values: list[torch.Tensor], logs: dict) -> torch.Tensor:
        weights = [self.losses[n].weight for n in names]
        if self.balance == "gradmag" and len(values) > 1:
            from zett.training.distill import gradmag_weights

            reduce = None
            if self._trainer is not None and self.trainer.world_size > 1:
                reduce = lambda t: self.trainer.strategy.reduce(t, reduce_op="mean")  # noqa: E731
            balanced = gradmag_weights(values, self.last_layer_parameters(), reduce=reduce)
            weights = [w * float(b) for w, b in zip(weights, balanced, strict=True)]
            total_w = sum(weights) or 1.0
            weights = [w / total_w for w in weights]
            for n, w in zip(names, weights, strict=True):
                logs[f"train/weight/{n}"] = torch.tensor(w)
        return sum(w * v for w, v in zip(weights, values, strict=True))

    # ------------------------------------------------------------------ training
    def cpu_seconds(self) -> float:
        """Process CPU seconds spent on this run so far, validation excluded (earlier processes included)."""
        return self._cpu["before"] + time.process_time() - self._cpu["validation"]

    def training_step(self, batch, batch_idx):
        self._record_sampler_state(batch.pop("sampler_state", None))
        self.tokens_seen += int(batch.get("n_tokens", 0))
        step = self.global_step
        ctx = StepContext(self, batch, step)
        names, values, logs = [], [], {}
        for name, term in self.losses.items():
            if not term.active(step) or term.weight == 0:
                continue
            value = term(ctx)
            names.append(name)
            values.append(value)
            logs[f"train/{name}"] = value.detach()
            for k, v in getattr(term, "last_stats", {}).items():
                logs[f"train/{name}_{k}"] = v
        if not values:
            raise ValueError(f"no loss term is active at step {step}; check loss.terms start_step/end_step")
        total = self._combine(names, values, logs)
        if self._trainer is not None and self.trainer.world_size > 1:
            # Every rank must produce a gradient for every trainable parameter each step, or DDP's reducer
            # stalls (a term may be inactive, a head unused this step). 0 * p keeps the values unchanged.
            total = total + 0.0 * sum(p.reshape(-1)[0] for p in self.parameters() if p.requires_grad)
        if self._fault is not None and self._fault == (self.global_rank, step):
            total = total * float("nan")  # test-only fault injection (ZETT_TEST_NONFINITE_LOSS)
        self._note_nonfinite(total.detach(), step)
        every = self.nonfinite_check_every or getattr(self._trainer, "log_every_n_steps", 1)
        if (step + 1) % max(1, every) == 0:
            self.check_finite()
        logs["train/loss"] = total.detach()
        self.log_dict(logs, prog_bar=False, on_step=True, batch_size=batch["input_ids"].shape[0])
        self.log("loss", total.detach(), prog_bar=True, logger=False)
        self.log("train/vocab_rows", float(batch["surface_ids"].shape[0]), on_step=True)
        return total

    def _note_nonfinite(self, loss: torch.Tensor, step: int) -> None:
        """Remember the first step whose loss is not finite, on the device (no host sync)."""
        if self._nonfinite is None or self._nonfinite.device != loss.device:
            self._nonfinite = torch.tensor([-1.0, 0.0], device=loss.device)
        first = ~torch.isfinite(loss) & (self._nonfinite[0] < 0)
        self._nonfinite = torch.where(first, torch.stack([torch.full_like(loss, step, dtype=torch.float32),
                                                          loss.float()]), self._nonfinite)

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` on every rank if any rank saw a non-finite loss since the start (one host
        read per call; with several ranks an all-gather, which every rank reaches at the same step)."""
        if self._nonfinite is None:
            return
        state = self._nonfinite
        if self._trainer is not None and self.trainer.world_size > 1:
            state = self.trainer.strategy.all_gather(state)  # [world, 2]
        state = state.reshape(-1, 2).cpu()
        bad = [(rank, int(s), float(v)) for rank, (s, v) in enumerate(state.tolist()) if s >= 0]
        if bad:
            where = ", ".join(f"rank {r}: {v} at step {s}" for r, s, v in bad)
            raise FloatingPointError(
                f"the training loss became non-finite ({where}); every rank stops here: lower "
                "scheduler.learning_rates or check the data (the loss is checked every trainer.log_every_n_steps "
                "steps)")

    def on_train_end(self) -> None:
        self.check_finite()  # a non-finite loss after the last periodic check still fails the run

    def _record_sampler_state(self, state) -> None:
        if state and self._trainer is not None:
            dm = getattr(self.trainer, "datamodule", None)
            if dm is not None and hasattr(dm, "record_sampler_states"):
                dm.record_sampler_states(state)

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._cpu["val_start"] = time.process_time()
        self._val_embeddings.clear()
        self._val_sums.clear()
        self._val_units.clear()

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        # The hypernetwork does not change during validation: predict each fixed vocabulary once.
        if dataloader_idx not in self._val_embeddings:
            self._val_embeddings[dataloader_idx] = self.predict(
                batch["surface_ids"], batch["surface_mask"], batch["special"],
                batch.get("bucket_spans", batch.get("buckets")),
                batch.get("overflow_ids"), batch.get("overflow_mask"))
        ctx = StepContext(self, batch, self.global_step, embeddings=self._val_embeddings[dataloader_idx])
        nll, count = ctx.token_nll()
        sums = torch.stack([nll.sum().double(), count.double(), batch["n_bytes"].to(nll.device).double()])
        self._val_sums[dataloader_idx] = self._val_sums.get(dataloader_idx, 0) + sums
        self._val_units.setdefault(dataloader_idx, []).append(sums[[0, 2]])  # per batch: (nll, bytes)

    def on_validation_epoch_end(self) -> None:
        self._cpu["validation"] += time.process_time() - self._cpu["val_start"]  # not a training cost
        metrics = {}
        for idx in range(len(self.val_names)):
            sums = self._val_sums.get(idx, torch.zeros(3, dtype=torch.float64, device=self.device))
            sums = self.trainer.strategy.reduce(sums.to(self.device), reduce_op="sum")
            nll, count, n_bytes = (float(x) for x in sums)
            name = self.val_names[idx]
            metrics[f"val/{name}/loss"] = nll / max(count, 1.0)
            if self.objective == "clm":
                metrics[f"val/{name}/bpb"] = nll / LN2 / max(n_bytes, 1.0)
                metrics.update(self._standard_errors(name, self._val_units.get(idx)))
        if metrics:
            bpb = [v for k, v in metrics.items() if k.endswith("/bpb")]
            if bpb:
                metrics["val/bpb"] = sum(bpb) / len(bpb)
            for stat in ("bpb_se", "delta_se"):  # of the mean over pairs (independent texts)
                ses = [v for k, v in metrics.items() if k.endswith(f"/{stat}")]
                if ses and len(ses) == len(bpb):
                    metrics[f"val/{stat}"] = math.sqrt(sum(v * v for v in ses)) / len(ses)
            self.log_dict(metrics, sync_dist=False, rank_zero_only=False)
            if not self.trainer.sanity_checking:
                self.val_history.append({"step": int(self.global_step), "cpu_seconds": round(self.cpu_seconds(), 1),
                                         "tokens_seen": self.tokens_seen, **metrics})
        self._val_embeddings.clear()

    def _standard_errors(self, name: str, units: list[torch.Tensor] | None) -> dict:
        """``bpb_se`` of a pair over its validation batches, and ``delta_se`` of the change since this run's
        previous validation, paired batch by batch (the same texts): the one to compare two validations by."""
        if not units or len(units) < 2 or (self._trainer is not None and self.trainer.world_size > 1):
            return {}  # with several ranks each holds a part of the batches: no per-batch view here
        u = torch.stack(units).double().cpu()  # [n, 2] (nll nats, bytes)
        out = {f"val/{name}/bpb_se": ratio_se(u[:, 0], u[:, 1]) / LN2}
        prev = self._prev_units.get(name)
        if prev is not None and torch.equal(prev[:, 1], u[:, 1]):
            out[f"val/{name}/delta_se"] = ratio_se(u[:, 0] - prev[:, 0], u[:, 1]) / LN2
        if self._trainer is None or not self.trainer.sanity_checking:
            self._prev_units[name] = u
        return out

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        opt = build_optimizer(self, **self.optimizer_cfg)
        sched = build_scheduler(opt, **self.scheduler_cfg)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # ------------------------------------------------------------------ checkpoints / export
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Defensive: nothing of the frozen base may end up in a checkpoint.
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if not (k.startswith("hypernet.") or k.startswith("losses."))]:
            del state[key]
        checkpoint["zett"] = {"hypernet_config": self.hypernet.config.to_dict(), "val_history": self.val_history,
                              "cpu_seconds": self.cpu_seconds(), "tokens_seen": self.tokens_seen}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        zett = checkpoint.get("zett", {})
        self.val_history = list(zett.get("val_history", []))
        self.tokens_seen = int(zett.get("tokens_seen", 0))
        # this process's CPU time so far (building the model, the cache) counts; the earlier processes' adds
        self._cpu["before"] = float(zett.get("cpu_seconds", 0.0))

    def export_hypernet(self, out_dir: str | Path) -> Path:
        """Save the hypernetwork with ``save_pretrained`` (safetensors) into ``out_dir``."""
        out_dir = Path(out_dir)
        self.hypernet.save_pretrained(out_dir)
        return out_dir
