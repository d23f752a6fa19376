"""Fast tokenizers from ``.tiktoken`` BPE rank files (Whisper's ``gpt2.tiktoken`` / ``multilingual.tiktoken``)."""

from __future__ import annotations

from pathlib import Path

# Whisper's (= GPT-2's) pretokenization regex; rank files do not store their regex.
WHISPER_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"


def tokenizer_from_tiktoken(path: str | Path, pattern: str = WHISPER_PATTERN,
                            special_tokens: tuple[str, ...] = (ENDOFTEXT,)):
    """A byte-level BPE ``PreTrainedTokenizerFast``; ``special_tokens`` get the ids after the last rank."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(path), pattern=pattern,
                                extra_special_tokens=list(special_tokens)).converted()
    names = {}
    if ENDOFTEXT in special_tokens:
        names = {"bos_token": ENDOFTEXT, "eos_token": ENDOFTEXT, "unk_token": ENDOFTEXT}
    return PreTrainedTokenizerFast(tokenizer_object=backend, **names)
