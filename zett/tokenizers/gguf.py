"""Fast tokenizers from GGUF files (llama.cpp vocab-only files or full model files).

Most tokenizer types go through transformers' own GGUF converter (an internal API of transformers 5.x, hence the
pinned version). llama.cpp's ``bert`` type (WordPiece stored with ``▁`` on word-initial pieces) is not supported
there and is rebuilt by hand from the token list.
"""

from __future__ import annotations

from pathlib import Path

# llama.cpp token types (gguf.TokenType): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
_CONTROL, _USER_DEFINED = 3, 4
_IGNORE_MERGES_PRE = {"llama-bpe", "llama3"}

# Pretokenizers transformers' GGUF converter approximates with plain GPT-2 ByteLevel, although the original
# tokenizers (and llama.cpp) split differently: StarCoder/Refact split every digit (Unicode numbers like "½"
# included), DeepSeek-Coder splits newlines, letters, punctuation, CJK runs and digits first.
_DIGITS_PRE = {"starcoder", "refact"}
_DEEPSEEK_CODER_SPLITS = (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", r"\p{N}")


def _fix_pretokenizer(backend, pre_type: str | None) -> None:
    from tokenizers import Regex, pre_tokenizers

    if pre_type in _DIGITS_PRE:
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre_type == "deepseek-coder":
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in _DEEPSEEK_CODER_SPLITS]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def _fields(path: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}


def _bert_from_gguf(path: Path):
    """WordPiece (bert-base-uncased style): ``▁x`` -> ``x``, ``[X]`` stays, any other piece ``y`` -> ``##y``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    f = _fields(path)
    tokens, types = f["tokenizer.ggml.tokens"], f.get("tokenizer.ggml.token_type") or []
    vocab = {}
    for i, t in enumerate(tokens):
        if t.startswith("▁"):
            s = t[1:]
        elif (t.startswith("[") and t.endswith("]")) or (i < len(types) and types[i] == _CONTROL):
            s = t
        else:
            s = "##" + t
        vocab.setdefault(s, i)
    ids = {name: f.get(f"tokenizer.ggml.{key}_token_id") for name, key in
           [("unk", "unknown"), ("sep", "seperator"), ("pad", "padding"), ("cls", "cls"), ("mask", "mask")]}
    names = {name: tokens[i] for name, i in ids.items() if i is not None}
    backend = Tokenizer(models.WordPiece(vocab, unk_token=names.get("unk", "[UNK]"), max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    if "cls" in names and "sep" in names:
        cls, sep = names["cls"], names["sep"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, ids["cls"]), (sep, ids["sep"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, **{f"{k}_token": v for k, v in names.items()})


def tokenizer_from_gguf(path: str | Path):
    """A ``PreTrainedTokenizerFast`` for a GGUF file's tokenizer metadata."""
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        convert_gguf_tokenizer,
        get_gguf_tokenizer,
    )

    path = Path(path)
    architecture, token_dict, token_config = get_gguf_tokenizer(str(path))
    if token_dict.get("tokenizer_type") == "bert" or architecture == "bert":
        return _bert_from_gguf(path)
    backend, _ = convert_gguf_tokenizer(architecture, token_dict)
    if token_dict.get("pre_tokenizer_type") in _IGNORE_MERGES_PRE:
        # Llama-3's BPE takes a pretoken that is itself a vocabulary entry whole (HF's tokenizer.json sets
        # ignore_merges); transformers' GGUF converter leaves it off, which splits e.g. "Việt" differently.
        backend.model.ignore_merges = True
    _fix_pretokenizer(backend, token_dict.get("pre_tokenizer_type"))
    specials = {k: v for k, v in token_config.items() if k.endswith("_token") and v is not None}
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **specials)
    if token_config.get("chat_template"):
        tok.chat_template = token_config["chat_template"]
    return tok
