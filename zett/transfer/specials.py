"""Special tokens across a transfer: keep the base's chat template working and remap special ids.

- Base special tokens written literally in the chat template (SmolLM2's ``<|im_start|>``/``<|im_end|>``) that the
  target lacks are added to (a copy of) the target tokenizer as special tokens; their rows are the base rows.
- Ids in the model config and generation config (bos/eos/pad/...) are remapped to the transferred tokenizer:
  by token text first (a template token keeps meaning what it meant), then by role (the base eos -> the target
  eos), else dropped.
"""

from __future__ import annotations

import copy

import torch


def template_tokens(base_tokenizer, template: str | dict | None) -> list[str]:
    """Base special / added tokens whose text appears literally in ``template``, in base id order."""
    if not template:
        return []
    text = template if isinstance(template, str) else "\n".join(str(t) for t in template.values())
    added = base_tokenizer.backend_tokenizer.get_added_tokens_decoder()
    return [tok.content for _, tok in sorted(added.items()) if tok.content and tok.content in text]


def with_added_specials(target, contents: list[str]):
    """A copy of ``target`` with the tokens in ``contents`` it lacks added as special tokens.

    Returns ``(tokenizer, added)``; ordinary text tokenizes exactly as before (added tokens only match their
    own literal text).
    """
    tok = copy.deepcopy(target)
    vocab = tok.get_vocab()
    missing = [c for c in contents if c not in vocab]
    if missing:
        from tokenizers import AddedToken

        tok.add_special_tokens({"extra_special_tokens": [AddedToken(c, special=True, normalized=False)
                                                         for c in missing]},
                               replace_extra_special_tokens=False)
    return tok, missing


def content_special_rows(tokenizer, base_tokenizer, contents: list[str], special: torch.Tensor) -> torch.Tensor:
    """``special`` # [V] with the rows of the tokens in ``contents`` set to the base id of the same text."""
    special = special.clone()
    base_vocab = base_tokenizer.get_vocab()
    vocab = tokenizer.get_vocab()
    for c in contents:
        if c in vocab and c in base_vocab and vocab[c] < len(special):
            special[vocab[c]] = base_vocab[c]
    return special


def remap_token_id(base_id, base_tokenizer, tokenizer):
    """The id in ``tokenizer`` that plays the part of ``base_id`` (int or list of ints) in the base tokenizer."""
    if base_id is None:
        return None
    if isinstance(base_id, list | tuple):
        mapped = [remap_token_id(i, base_tokenizer, tokenizer) for i in base_id]
        mapped = list(dict.fromkeys(i for i in mapped if i is not None))
        return mapped or None
    from zett.tokenizers.specials import map_role, role_ids, special_token_roles

    base_id = int(base_id)
    if not 0 <= base_id < len(base_tokenizer):
        return None
    content = base_tokenizer.convert_ids_to_tokens(base_id)
    vocab = tokenizer.get_vocab()
    if content in vocab:
        return vocab[content]
    role = special_token_roles(base_tokenizer).get(base_id)
    if role is None:
        return None
    i = map_role(role, role_ids(tokenizer))
    return i if i >= 0 else None


ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "sep_token_id", "cls_token_id",
             "mask_token_id", "decoder_start_token_id")


def remap_config_ids(config, base_tokenizer, tokenizer) -> dict:
    """Rewrite the special-token id fields of a model config or generation config in place; returns the changes."""
    changes = {}
    for field in ID_FIELDS:
        if not hasattr(config, field):
            continue
        old = getattr(config, field)
        if old is None:
            continue
        new = remap_token_id(old, base_tokenizer, tokenizer)
        if isinstance(new, list) and not isinstance(old, list | tuple) and len(new) == 1:
            new = new[0]
        setattr(config, field, new)
        changes[field] = (old, new)
    return changes
