"""A run that cannot learn stops before its first optimizer step instead of exporting an untrained hypernetwork.

:class:`RequirePredictedTokens`: when the first training batches have no position to predict (every label
ignored: e.g. ``data.span_chars=1`` cuts spans of one token, and a causal model predicts the next token), every
loss term is 0.0 and the run would "train" and export with exit status 0. Only the first few batches are read
(a host read of the labels, so a device sync on GPU, but only for those).
"""

from __future__ import annotations

from pytorch_lightning.callbacks import Callback

IGNORE_INDEX = -100


class RequirePredictedTokens(Callback):
    """Raise ``DataConfigError`` when the first ``check_batches`` training batches predict no token."""

    def __init__(self, objective: str, span_chars: int | None = None, check_batches: int = 3):
        self.objective, self.span_chars, self.check_batches = objective, span_chars, int(check_batches)
        self._seen = self._predicted = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._predicted or self._seen >= self.check_batches or "labels" not in batch:
            return
        labels = batch["labels"]
        predicted = labels[:, 1:] if self.objective == "clm" else labels  # clm: position t predicts t + 1
        self._predicted += int((predicted != IGNORE_INDEX).sum())
        self._seen += 1
        if not self._predicted and self._seen >= self.check_batches:
            self._refuse()

    def on_train_end(self, trainer, pl_module) -> None:
        if self._seen and not self._predicted:  # the run was shorter than check_batches
            self._refuse()

    def _refuse(self) -> None:
        from zett.training.data import DataConfigError

        span = f"data.span_chars={self.span_chars}" if self.span_chars is not None else "data.span_chars"
        raise DataConfigError(f"the first {self._seen} training batches have no token to predict (every loss term "
                              f"would be 0 and nothing would be learned): {span} is too short for the "
                              f"{self.objective} objective; raise data.span_chars (e.g. data.span_chars=2048)")
