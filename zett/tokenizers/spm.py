"""Fast tokenizers rebuilt from SentencePiece ``.model`` files (Unigram and BPE types).

transformers 5's slow SentencePiece classes load these files wrongly (a 3-4 token vocabulary), so the model
proto is read directly (``sentencepiece``'s bundled protobuf schema) and rebuilt with ``tokenizers`` models: the
pieces and scores, the precompiled normalisation charsmap, whitespace collapsing, the dummy prefix and byte fallback.
"""

from __future__ import annotations

from pathlib import Path

# SentencePiece piece types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
_UNKNOWN, _CONTROL, _USER_DEFINED, _BYTE = 2, 3, 4, 6
_UNIGRAM, _BPE = 1, 2
_SPACE = "▁"


def _read_proto(path: Path):
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as e:  # protobuf missing
        raise ImportError(
            f"reading SentencePiece model {str(path)!r} needs the 'protobuf' package: pip install protobuf") from e
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    return proto


def _bpe_merges(pieces: list[str]) -> list[tuple[str, str]]:
    """Merges for a SentencePiece BPE vocabulary: a piece's merges rank by the piece's own id (SentencePiece merges
    the pair whose result scores highest, and its scores fall with the id)."""
    rank = {p: i for i, p in enumerate(pieces)}
    merges = []
    for i, piece in enumerate(pieces):
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in rank and right in rank:
                merges.append((i, rank[left], rank[right], left, right))
    merges.sort()
    return [(m[3], m[4]) for m in merges]


def tokenizer_from_spm(path: str | Path):
    """A ``PreTrainedTokenizerFast`` that tokenizes like ``sentencepiece.SentencePieceProcessor(model_file=path)``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    proto = _read_proto(path)
    trainer, norm_spec = proto.trainer_spec, proto.normalizer_spec
    pieces = [p.piece for p in proto.pieces]
    types = [p.type for p in proto.pieces]
    unk_id = trainer.unk_id if 0 <= trainer.unk_id < len(pieces) else None
    byte_fallback = bool(trainer.byte_fallback)

    if trainer.model_type == _UNIGRAM:
        model = models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=unk_id, byte_fallback=byte_fallback)
    elif trainer.model_type == _BPE:
        vocab = {p: i for i, p in enumerate(pieces)}
        # Control/unknown/byte pieces never take part in merges.
        mergeable = [p if t not in (_CONTROL, _UNKNOWN, _BYTE) else "\0" for p, t in zip(pieces, types, strict=True)]
        model = models.BPE(vocab, _bpe_merges(mergeable), unk_token=pieces[unk_id] if unk_id is not None else None,
                           fuse_unk=True, byte_fallback=byte_fallback)
    else:
        raise ValueError(f"SentencePiece model {str(path)!r} has model type {trainer.model_type} "
                         "(only Unigram=1 and BPE=2 are supported)")

    backend = Tokenizer(model)
    steps = []
    if norm_spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(norm_spec.precompiled_charsmap))
    if norm_spec.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex("^ +| +$"), "")]
    if steps:
        backend.normalizer = normalizers.Sequence(steps)
    prepend = "always" if norm_spec.add_dummy_prefix else "never"
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme=prepend,
                                                     split=trainer.split_by_whitespace)
    decode_steps = [decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if norm_spec.add_dummy_prefix:
        decode_steps.append(decoders.Strip(content=" ", left=1, right=0))
    backend.decoder = decoders.Sequence(decode_steps)

    # Control pieces (<s>, </s>) are special; user-defined pieces match greedily in text (added, not special).
    backend.add_special_tokens([AddedToken(p, special=True, normalized=False)
                                for p, t in zip(pieces, types, strict=True) if t == _CONTROL])
    backend.add_tokens([AddedToken(p, special=False, normalized=False)
                        for p, t in zip(pieces, types, strict=True) if t == _USER_DEFINED])
    names = {}
    for role, i in [("unk", trainer.unk_id), ("bos", trainer.bos_id), ("eos", trainer.eos_id), ("pad", trainer.pad_id)]:
        if 0 <= i < len(pieces):
            names[f"{role}_token"] = pieces[i]
    return PreTrainedTokenizerFast(tokenizer_object=backend, **names)
