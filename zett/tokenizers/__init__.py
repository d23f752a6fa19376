"""The tokenizer layer: load any tokenizer, view its vocabulary as bytes, map special tokens by role, decompose a
target vocabulary into base-model pieces, and sample training tokenizers.

    tok = load_tokenizer("llama3")                     # asset name, HF dir, tokenizer.json, .model, .tiktoken, .gguf
    byte_vocab(tok)[:3]                                # exact bytes per id (None for specials)
    special_token_roles(tok)                           # {128000: "bos", 128001: "eos", ...}
    sf = surface_forms(tok, load_tokenizer("smollm2-135m"))   # sf.ids / sf.mask [V, 7], sf.special [V]
    sampler = TokenizerSampler(base_tokenizer, vocab_size=32768, seed=0)
    sampler.warm_up(texts); sampled = sampler.sample(batch_texts)
"""

from zett.tokenizers.bytes import (
    byte_level_to_bytes,
    byte_vocab,
    bytes_to_byte_level,
    missing_bytes,
    tokenizer_style,
)
from zett.tokenizers.load import TokenizerLoadError, load_tokenizer
from zett.tokenizers.sampler import TokenizerSampler
from zett.tokenizers.specials import role_ids, special_token_roles
from zett.tokenizers.surface import SurfaceForms, decomposer, surface_forms

__all__ = [
    "SurfaceForms", "TokenizerLoadError", "TokenizerSampler", "byte_level_to_bytes", "byte_vocab",
    "bytes_to_byte_level", "decomposer", "load_tokenizer", "missing_bytes", "role_ids", "special_token_roles",
    "surface_forms",
    "tokenizer_style",
]
