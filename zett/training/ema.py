"""An exponential moving average of the hypernetwork's weights: what validation judges and what the run exports.

Small CPU batches make every update noisy; the average of the last ~1 / (1 - decay) updates is smoother than any
single one of them. With ``callbacks.ema`` set (``experiment=cpu-finish`` sets it), after every optimizer step
``ema = decay * ema + (1 - decay) * weights``; validation runs on the averaged weights (the trained ones are put
back afterwards), the run exports them, and checkpoints carry them (a resumed run continues the same average).
"""

from __future__ import annotations

import torch
from pytorch_lightning.callbacks import Callback

CKPT_KEY = "zett_ema"


class HypernetEMA(Callback):
    """decay: weight of the running average per optimizer step (0 < decay < 1); the first update copies."""

    def __init__(self, decay: float = 0.99):
        if not 0 < decay < 1:
            raise ValueError(f"callbacks.ema.decay={decay} is invalid: it must lie in (0, 1), e.g. 0.99")
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] | None = None
        self._step = -1
        self._raw: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _params(pl_module) -> dict[str, torch.Tensor]:
        return {n: p for n, p in pl_module.hypernet.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._step:  # an accumulation batch: no optimizer step happened
            return
        self._step = trainer.global_step
        params = self._params(pl_module)
        if self.shadow is None:
            self.shadow = {n: p.detach().clone() for n, p in params.items()}
            return
        for n, p in params.items():
            self.shadow[n].lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def swap(self, pl_module) -> None:
        """Exchange the trained weights and the averaged ones (twice = as before)."""
        if self.shadow is None:
            return
        for n, p in self._params(pl_module).items():
            tmp = p.detach().clone()
            p.copy_(self.shadow[n])
            self.shadow[n] = tmp

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.swap(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.swap(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.swap(pl_module)  # the run exports (and summarises) the averaged weights

    def state_dict(self) -> dict:
        return {"decay": self.decay, "step": self._step,
                "shadow": None if self.shadow is None else {n: t.cpu() for n, t in self.shadow.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self._step = int(state_dict.get("step", -1))
        shadow = state_dict.get("shadow")
        self.shadow = None if shadow is None else {n: t.clone() for n, t in shadow.items()}

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.shadow is not None:  # restored from a checkpoint: onto the module's device
            self.shadow = {n: t.to(pl_module.device) for n, t in self.shadow.items()}
