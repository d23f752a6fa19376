"""The transferred tokenizer and the model config name the same bos / eos / pad tokens.

``remap_config_ids`` maps the base config's ids into the new vocabulary by token content, then by role; the target
tokenizer brings its own bos/eos/pad. Where both define a role and disagree, the tokenizer follows the model config
(the model's rows for that id were copied from the base token of that role, and the kept chat template uses it);
where only one defines it, the other gets it. A plain ``AutoTokenizer`` / ``AutoModel`` pair then agrees.
"""

from __future__ import annotations

ROLES = ("bos", "eos", "pad")


def _single(value):
    if isinstance(value, list | tuple):
        return value[0] if len(value) == 1 else None
    return value


def agree_special_ids(config, tokenizer, n_rows: int) -> dict[str, int]:
    """Make ``config.<role>_token_id`` and ``tokenizer.<role>_token_id`` equal for bos/eos/pad (in place);
    -> the final id of each role that has one."""
    out = {}
    for role in ROLES:
        key = f"{role}_token_id"
        cid = _single(getattr(config, key, None))
        tid = getattr(tokenizer, key, None)
        if isinstance(cid, int) and 0 <= cid < n_rows:
            if tid != cid:
                token = tokenizer.convert_ids_to_tokens(cid)
                if token is not None:
                    setattr(tokenizer, f"{role}_token", token)
            out[role] = cid
        elif tid is not None and 0 <= tid < n_rows:
            setattr(config, key, tid)
            out[role] = tid
        elif cid is not None:  # an id past the rows: never leave it for generate() to index
            setattr(config, key, None)
    return out
