"""Ranges of zett-train's numeric settings that ``check_train_config`` (``zett.training.rundir``) does not check
itself, refused right after composition (before any model is loaded) with one line naming the setting."""

from __future__ import annotations

from zett.cli.errors import UserError


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x == x


def at_least(node: dict, key: str, prefix: str, low: float, allow_none: bool = False, integer: bool = True,
             example=None) -> None:
    """``node[key]`` a number >= ``low`` (an integer when ``integer``; None when ``allow_none``)."""
    value = node.get(key)
    if value is None and allow_none:
        return
    if _number(value) and value >= low and (not integer or int(value) == value):
        return
    kind = "an integer" if integer else "a number"
    null = " or null" if allow_none else ""
    eg = f", e.g. {prefix}{key}={example}" if example is not None else ""
    raise UserError(f"{prefix}{key}={value!r} is invalid: it must be {kind} >= {low:g}{null}{eg}")


def check_ranges(c: dict) -> None:
    """``c``: the resolved train config as plain containers."""
    hn = c.get("hypernet") or {}
    for key in ("hidden_size", "intermediate_size", "num_heads"):
        at_least(hn, key, "hypernet.", 1, allow_none=True)
    s = c.get("tokenizer_sampler") or {}
    for key in ("queue_size", "stride", "max_piece_len", "reuse"):
        at_least(s, key, "tokenizer_sampler.", 1)
    for key in ("vocab_size_min", "vocab_size_max"):
        at_least(s, key, "tokenizer_sampler.", 1, allow_none=True)
    at_least(s, "vocab_size_std", "tokenizer_sampler.", 0, integer=False)
    low, high = s.get("vocab_size_min"), s.get("vocab_size_max")
    if low is not None and high is not None and low > high:
        raise UserError(f"tokenizer_sampler.vocab_size_min={low} is larger than tokenizer_sampler.vocab_size_max="
                        f"{high}; swap them or set one to null")
    data = c.get("data") or {}
    at_least(data, "state_every", "data.", 1)
    at_least(data, "sampler_warmup_texts", "data.", 0)
    at_least(data, "bucket_chunks", "data.", 0)
    for key in ("num_workers", "val_num_workers"):
        at_least(data, key, "data.", 0, allow_none=True)
    trainer = c.get("trainer") or {}
    at_least(trainer, "log_every_n_steps", "trainer.", 1, example=10)
    at_least(trainer, "num_nodes", "trainer.", 1)
    at_least(trainer, "gradient_clip_val", "trainer.", 0, allow_none=True, integer=False, example=0.1)
    at_least(c, "ce_max_chunk_elements", "", 1)
    at_least(c, "nonfinite_check_every", "", 1, allow_none=True)
    ckpt = (c.get("callbacks") or {}).get("checkpoint") or {}
    if "every_n_train_steps" in ckpt:
        at_least(ckpt, "every_n_train_steps", "callbacks.checkpoint.", 0, allow_none=True)
    minutes = ckpt.get("save_last_every_minutes")
    if minutes is not None and not (_number(minutes) and minutes > 0):
        raise UserError(f"callbacks.checkpoint.save_last_every_minutes={minutes!r} is invalid: give minutes > 0 "
                        "(e.g. 15) or null (no wall-time checkpoints)")
