"""``save_transferred(model, tokenizer, output_dir)``: a plain Hugging Face directory (no zett needed to load).

The directory is written whole or not at all (``zett.outputs.atomic_dir``): it is built in a hidden temporary
sibling and renamed into place, and an existing non-empty directory is replaced whole only with
``overwrite=True`` (never merged: stale tokenizer files of an earlier transfer must not survive).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from zett.outputs import atomic_dir


def save_transferred(model, tokenizer, output_dir, overwrite: bool = False) -> Path:
    """Write the model (safetensors, ``vocab_size`` updated, generation config with remapped ids), the tokenizer
    (with the kept chat template) and ``zett_transfer.json`` (what the transfer did) to ``output_dir``."""
    out = Path(output_dir).expanduser()
    n_rows = model.get_input_embeddings().weight.shape[0]
    if n_rows != len(tokenizer):
        raise ValueError(f"the model has {n_rows} embedding rows but the tokenizer {len(tokenizer)} tokens; pass "
                         "the (model, tokenizer) pair returned by zett.transfer")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = getattr(model, "zett_transfer_info", None)
        if info is not None:
            record = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
            (tmp / "zett_transfer.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return out
