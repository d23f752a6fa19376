"""Checkpoints that never go stale: ``last.ckpt`` is written first and every file is written whole.

Lightning's ``ModelCheckpoint`` writes the step checkpoint, then ``last.ckpt``; a process killed between the two
leaves ``last.ckpt`` older than the newest step file, and the documented resume command
(``ckpt_path=<run>/checkpoints/last.ckpt``) would silently resume from the older step. :class:`ZettCheckpoint`
saves ``last.ckpt`` before the step file, each through a temporary file renamed into place, so ``last.ckpt`` is
always the newest complete checkpoint. :class:`ValidationSummary` rewrites ``summary.json`` after every validation,
so a killed run still records each validation it finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytorch_lightning.callbacks import Callback, ModelCheckpoint


class ZettCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with ``last.ckpt`` saved first and atomic file writes (see the module docstring).

    save_last_every_minutes: also save ``last.ckpt`` once this much wall time passed since the last checkpoint
    (None: only every ``every_n_train_steps``), so that a run killed without warning loses at most that much work;
    Lightning's own ``train_time_interval`` cannot be combined with ``every_n_train_steps``. The decision is rank
    0's, broadcast to the others. enable_version_counter is off: the run directory is this run's own
    (``zett.training.runid``), so a resumed run rewrites ``last.ckpt`` rather than writing ``last-v1.ckpt``."""

    def __init__(self, *args, save_last_every_minutes: float | None = None, enable_version_counter: bool = False,
                 **kwargs):
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)
        m = save_last_every_minutes
        if m is not None and (isinstance(m, bool) or not isinstance(m, int | float) or not m > 0):
            from zett.cli.errors import UserError

            raise UserError(f"callbacks.checkpoint.save_last_every_minutes={m!r} is invalid: give minutes > 0 "
                            "(e.g. 15) or null")
        self.save_last_every_minutes = m
        self._zett_saved_at = time.monotonic()

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._zett_saved_at = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.save_last_every_minutes or not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        due = time.monotonic() - self._zett_saved_at >= 60 * self.save_last_every_minutes
        if trainer.strategy.broadcast(due):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_topk_checkpoint(self, trainer, monitor_candidates) -> None:
        self._save_last_checkpoint(trainer, monitor_candidates)  # last first: it is never older than a step file
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        if getattr(self, "_zett_last_step", None) == trainer.global_step:  # already saved by the call above
            return
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._zett_last_step = trainer.global_step

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp-{os.getpid()}"
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero and os.path.exists(tmp):
            os.replace(tmp, filepath)
        trainer.strategy.barrier()
        self._last_checkpoint_saved = filepath
        self._zett_saved_at = time.monotonic()


class ValidationSummary(Callback):
    """Rewrite ``<run_dir>/summary.json`` (``finished: false``) after every validation on rank 0."""

    def __init__(self, run_dir: str | Path, base: dict | None = None):
        self.run_dir = Path(run_dir)
        self.base = dict(base or {})

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        from zett.training.rundir import write_summary

        write_summary(self.run_dir, {**self.base, "run_dir": str(self.run_dir), "finished": False,
                                     "global_step": int(trainer.global_step),
                                     "validation_history": list(getattr(pl_module, "val_history", []))})
