"""A run that cannot learn stops before its first optimizer step instead of exporting an untrained hypernetwork.

:class:`RequirePredictedTokens`: when the first training batch has no position to predict (every label ignored:
e.g. ``data.span_chars=1`` cuts spans of one token, and a causal model predicts the next token), every loss term is
0.0 and the run would "train" and export with exit status 0. A batch of ``data.batch_size`` spans without a single
predicted token comes only from a setting, never from chance in a usable configuration, so the first batch decides,
before its step. Only that batch's labels are read on the host (a device sync on GPU, once).
"""

from __future__ import annotations

from pytorch_lightning.callbacks import Callback

IGNORE_INDEX = -100


class RequirePredictedTokens(Callback):
    """Raise ``DataConfigError`` when the run's first training batch predicts no token."""

    def __init__(self, objective: str, span_chars: int | None = None):
        self.objective, self.span_chars = objective, span_chars
        self._checked = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._checked or "labels" not in batch:
            return
        self._checked = True
        labels = batch["labels"]
        predicted = labels[:, 1:] if self.objective == "clm" else labels  # clm: position t predicts t + 1
        if not bool((predicted != IGNORE_INDEX).any()):
            from zett.training.data import DataConfigError

            span = f"data.span_chars={self.span_chars}" if self.span_chars is not None else "data.span_chars"
            raise DataConfigError(f"the first training batch has no token to predict (every loss term would be 0 "
                                  f"and nothing would be learned): {span} is too short for the {self.objective} "
                                  "objective; raise data.span_chars (e.g. data.span_chars=2048)")
