"""Special-token roles, so a target tokenizer's specials can be mapped onto the base model's by meaning.

A role is one of ``bos eos pad unk mask cls sep`` or ``chat:<content>`` for any other special/control token
(``<|im_start|>``, ``<|reserved_special_token_3|>``). One token often plays several named roles (GPT-2's
``<|endoftext|>`` is bos, eos and unk; SmolLM2's ``<|im_end|>`` is eos and pad): ``special_token_roles`` gives each
id its *primary* role (first in ``ROLE_PRIORITY``), ``role_ids`` gives every role its id.
"""

from __future__ import annotations

from zett.tokenizers.bytes import special_ids

# eos before bos: a shared bos/eos token (GPT-2 style) ends documents, which is what a base model's eos does.
ROLE_PRIORITY = ("eos", "bos", "pad", "unk", "mask", "cls", "sep")

# When the base model lacks a role, the closest stand-in (BERT-style cls/sep vs decoder bos/eos).
ROLE_FALLBACK = {"cls": "bos", "sep": "eos", "bos": "cls", "eos": "sep", "pad": "eos"}


def role_ids(tokenizer) -> dict[str, int]:
    """Every role -> token id: the named roles the tokenizer declares plus ``chat:<content>`` for the others."""
    from zett.tokenizers.load import load_tokenizer

    tok = load_tokenizer(tokenizer)
    roles: dict[str, int] = {}
    for role in ROLE_PRIORITY:
        i = getattr(tok, f"{role}_token_id", None)
        if isinstance(i, int) and i >= 0:
            roles[role] = i
    named = set(roles.values())
    for i in sorted(special_ids(tok)):
        if i not in named:
            content = tok.convert_ids_to_tokens(i)
            roles.setdefault(f"chat:{content}", i)
    return roles


def special_token_roles(tokenizer) -> dict[int, str]:
    """Special token id -> its primary role (``"eos"``, ..., or ``"chat:<content>"``)."""
    out: dict[int, str] = {}
    for role, i in role_ids(tokenizer).items():  # ROLE_PRIORITY order first, so the first role wins
        out.setdefault(i, role)
    return out


def map_role(role: str, base_roles: dict[str, int]) -> int:
    """The base id for a target role (with the cls/bos, sep/eos stand-ins), or -1."""
    if role in base_roles:
        return base_roles[role]
    alt = ROLE_FALLBACK.get(role)
    if alt is not None and alt in base_roles:
        return base_roles[alt]
    return -1
