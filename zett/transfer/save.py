"""``save_transferred(model, tokenizer, output_dir)``: a plain Hugging Face directory (no zett needed to load)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def save_transferred(model, tokenizer, output_dir) -> Path:
    """Write the model (safetensors, ``vocab_size`` updated, generation config with remapped ids), the tokenizer
    (with the kept chat template) and ``zett_transfer.json`` (what the transfer did) to ``output_dir``."""
    out = Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    n_rows = model.get_input_embeddings().weight.shape[0]
    if n_rows != len(tokenizer):
        raise ValueError(f"the model has {n_rows} embedding rows but the tokenizer {len(tokenizer)} tokens; pass "
                         "the (model, tokenizer) pair returned by zett.transfer")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = getattr(model, "zett_transfer_info", None)
    if info is not None:
        record = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
        (out / "zett_transfer.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return out
