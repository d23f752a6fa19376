"""Whether a tokenizer the user gave as ``base_tokenizer`` is the base model's own.

A tokenizer of another model with the same vocabulary size runs without an error and scores garbage (its ids index
the wrong embedding rows), so sizes alone prove nothing: :func:`check_base_tokenizer` compares the token each id
stands for with the tokenizer saved beside the model, and the largest id with the model's embedding rows.
"""

from __future__ import annotations

from zett.tokenizers.load import TokenizerLoadError

# Added tokens (a chat template's, a pad token) may differ between copies of one tokenizer; ids that mean another
# token beyond this share of the model's vocabulary do not.
MAX_DIFFERENT_SHARE = 0.01


def vocabulary_difference(own, given) -> tuple[int, str] | None:
    """(count, one example) of the tokens of ``own`` that ``given`` maps to another id (or not at all); None when
    at most :data:`MAX_DIFFERENT_SHARE` of them do."""
    own_vocab, given_vocab = own.get_vocab(), given.get_vocab()
    different = [(tok, i) for tok, i in own_vocab.items() if given_vocab.get(tok) != i]
    if len(different) <= MAX_DIFFERENT_SHARE * max(len(own_vocab), 1):
        return None
    tok, i = min(different, key=lambda x: x[1])
    other = given_vocab.get(tok)
    example = (f"id {i} is {tok!r} for the model but {given.convert_ids_to_tokens(i)!r} for it" if other is None
               else f"{tok!r} is id {i} for the model but {other} for it")
    return len(different), example


def check_base_tokenizer(given, own, model, spec, setting: str = "base_tokenizer", model_name: str = "") -> None:
    """Refuse ``given`` (loaded from ``spec``) when it is not the tokenizer of ``model`` (``own``: the tokenizer
    saved with it, or None when there is none to compare with)."""
    from zett.models import adapter

    rows = adapter.input_embeddings(model).shape[0]
    fix = (f"leave {setting} unset to use the model's own tokenizer, or give the tokenizer the model was trained "
           "with")
    name = f" {model_name}" if model_name else ""
    if len(given) > rows:
        raise TokenizerLoadError(f"{setting}={spec} does not belong to the base model{name}: it has {len(given)} "
                                 f"tokens but the model only {rows} embedding rows; {fix}")
    if own is None:
        return
    diff = vocabulary_difference(own, given)
    if diff is not None:
        n, example = diff
        raise TokenizerLoadError(f"{setting}={spec} does not belong to the base model{name}: {n} of its "
                                 f"{len(own.get_vocab())} tokens have other ids ({example}); {fix}")
