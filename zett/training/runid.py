"""Which run a run directory and a checkpoint belong to.

A run directory records its run in ``run.json`` (``{"run_id": ...}``), written when a run starts there: a new run,
or a checkpoint of another run continued in an empty directory (which then becomes a run of its own). Every
checkpoint stores that id as ``checkpoint["zett_run"]["run_id"]`` (:class:`RunIdentity`).

A resume (``ckpt_path``) into a directory that holds a run is accepted only when the checkpoint belongs to that
run: the same run id or, for checkpoints or run directories written before run ids existed, a checkpoint inside the
directory's own ``checkpoints/``. Anything else would overwrite the directory's exported hypernetwork and summary
with another run's, so it is refused unless ``overwrite=true`` deletes the directory's run first.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pytorch_lightning.callbacks import Callback

from zett.cli.errors import UserError

RUN_FILE = "run.json"
CKPT_KEY = "zett_run"


def read_run_id(run_dir: Path) -> str | None:
    """The id in ``<run_dir>/run.json``; None when the file is absent or unreadable (a run from before run ids)."""
    try:
        return str(json.loads((Path(run_dir) / RUN_FILE).read_text())["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_run(run_dir: Path) -> str:
    """The run id of ``run_dir``: the one recorded, or a new one written to ``run.json`` (whole, atomically)."""
    from zett.outputs import write_text_atomic

    run_id = read_run_id(run_dir)
    if run_id is None:
        run_id = uuid.uuid4().hex
        write_text_atomic(Path(run_dir) / RUN_FILE, json.dumps({"run_id": run_id}) + "\n")
    return run_id


def load_checkpoint_head(path: Path) -> dict:
    """The checkpoint at ``path`` memory-mapped (tensors are not read), with ``weights_only=True``; a file that is
    not a readable checkpoint (empty, truncated, not written by torch.save) raises a UserError naming it."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user mistake
        reason = "the file is empty" if path.stat().st_size == 0 else f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise UserError(f"ckpt_path={path} is not a readable checkpoint ({reason}); give a checkpoint written by "
                        "zett-train (<run>/checkpoints/last.ckpt) or leave ckpt_path unset") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"ckpt_path={path} is not a zett-train checkpoint (no state_dict); give "
                        "<run>/checkpoints/last.ckpt of a zett-train run or leave ckpt_path unset")
    return ckpt


def checkpoint_run_id(ckpt: dict) -> str | None:
    entry = ckpt.get(CKPT_KEY)
    return str(entry["run_id"]) if isinstance(entry, dict) and entry.get("run_id") else None


def checkpoint_belongs(ckpt: dict, ckpt_path: Path, run_dir: Path) -> bool:
    """Whether the checkpoint ``ckpt`` (read from ``ckpt_path``) is of the run in ``run_dir`` (see the module
    docstring)."""
    ckpt_id, dir_id = checkpoint_run_id(ckpt), read_run_id(run_dir)
    if ckpt_id is not None and dir_id is not None:
        return ckpt_id == dir_id
    # written before run ids: a checkpoint in the directory's own checkpoints/ is of its run
    return ckpt_path.resolve().parent == (run_dir / "checkpoints").resolve()


class RunIdentity(Callback):
    """Store the run id in every checkpoint (``checkpoint["zett_run"]``), on every rank that saves one."""

    def __init__(self, run_dir: str | Path, run_id: str | None = None):
        self.run_dir, self.run_id = Path(run_dir), run_id

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        run_id = self.run_id or read_run_id(self.run_dir)  # ranks > 0 read what rank 0 wrote
        if run_id:
            checkpoint[CKPT_KEY] = {"run_id": run_id}
