"""A run stopped by SIGTERM (``timeout``, a scheduler's time limit, ``docker stop``) saves where it got and fails.

Lightning's signal connector turns SIGTERM into a flag (``trainer.received_sigterm``); the loop finishes the step it
is in and raises ``SIGTERMException``, a ``SystemExit`` with status 0, after calling every callback's
``on_exception``. zett integrates with that rather than replacing the handler (which also forwards the signal to
the ranks Lightning launched, and on SLURM keeps the requeue handling):

- :class:`CheckpointOnSigterm` saves ``<checkpoints>/last.ckpt`` (whole: a temporary file renamed into place) in
  ``on_exception``, at the step reached, so the documented resume command
  (``ckpt_path=<run>/checkpoints/last.ckpt``) continues from there;
- ``train()`` catches the exception, writes ``summary.json`` with ``finished: false``, ``stopped_by: "SIGTERM"``,
  the global step and the checkpoint, exports nothing, and raises :class:`TrainingStopped`;
- ``zett-train`` then prints one line (where it stopped, how to resume) and exits with status
  :data:`EXIT_SIGTERM` (143 = 128 + SIGTERM, what a shell reports for a process the signal ended).
"""

from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning.callbacks import Callback, ModelCheckpoint

EXIT_SIGTERM = 143


class TrainingStopped(RuntimeError):
    """The run was stopped before ``trainer.max_steps``; ``summary`` is what ``summary.json`` records."""

    exit_code = EXIT_SIGTERM

    def __init__(self, summary: dict):
        self.summary = summary
        ckpt = summary.get("checkpoint")
        where = f"at step {summary['global_step']}"
        if ckpt:
            resume = (f"checkpoint {ckpt}; resume with ckpt_path={ckpt} hydra.run.dir={summary['run_dir']} "
                      "(and the same settings)")
        else:
            resume = f"no checkpoint (no step was finished); start again with overwrite=true in {summary['run_dir']}"
        super().__init__(f"stopped by {summary['stopped_by']} {where}, not finished: {resume}")


def checkpoint_dir(trainer, run_dir: Path) -> Path:
    """Where the run's checkpoints go: the ModelCheckpoint's ``dirpath``, else ``<run_dir>/checkpoints``."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return Path(cb.dirpath)
    return Path(run_dir) / "checkpoints"


class CheckpointOnSigterm(Callback):
    """On SIGTERM during fitting, save ``last.ckpt`` at the step reached (all ranks call it; rank 0 writes).

    ``saved`` is the path written (None: nothing was, e.g. no step was finished)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.saved: Path | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit" or trainer.global_step == 0:
            return
        path = checkpoint_dir(trainer, self.run_dir) / "last.ckpt"
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        trainer.save_checkpoint(tmp)  # a collective under DDP/FSDP: every rank is here (Lightning broadcasts it)
        if trainer.is_global_zero:
            os.replace(tmp, path)
        self.saved = path


def stopped(trainer, module, run_dir: Path, extra: dict) -> None:
    """Record a run stopped by SIGTERM in ``summary.json`` (rank 0) and raise :class:`TrainingStopped`."""
    import sys

    from zett.training.rundir import write_summary

    saver = next((cb for cb in trainer.callbacks if isinstance(cb, CheckpointOnSigterm)), None)
    summary = {
        "run_dir": str(run_dir),
        "global_step": int(trainer.global_step),
        "max_steps": int(trainer.max_steps),
        **extra,
        "validation_history": list(getattr(module, "val_history", [])),
        "hypernet": None,
        "checkpoint": str(saver.saved) if saver is not None and saver.saved else None,
        "world_size": int(trainer.world_size),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "finished": False,
        "stopped_by": "SIGTERM",
    }
    if trainer.is_global_zero:
        write_summary(Path(run_dir), summary)
    raise TrainingStopped(summary)
