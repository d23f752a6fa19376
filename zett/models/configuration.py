"""``ZettHypernetConfig``: the hypernetwork's widths plus a record of the base model it was built for."""

from __future__ import annotations

from transformers import PretrainedConfig

# What an exported hypernetwork's numbers mean, beyond its weights. Bump it when one of these changes, and refuse
# (or convert) older exports: loading one silently would reinterpret its weights.
#   1: (unrecorded, before 2026-11-29) FVT residual over the first ``max_pieces`` pieces only; byte fallback
#      pieces numbered ``len(base tokenizer) + byte`` in training but ``base_vocab_size + byte`` in transfer.
#   2: FVT residual over every piece of a token (``overflow_ids``); surface ids ``[V, max_pieces]`` plus overflow;
#      byte fallback ``b`` is surface id ``base_vocab_size + b`` (the base model's embedding rows) everywhere.
FORMAT_VERSION = 2
FORMAT_HISTORY = {
    1: "FVT over the first max_pieces pieces only, byte fallbacks numbered after the base tokenizer's length",
    2: "FVT over all pieces, byte fallbacks numbered after the base model's embedding rows",
}


class ZettHypernetConfig(PretrainedConfig):
    """Configuration of a :class:`~zett.models.ZettHypernet`.

    Architecture fields:
        hidden_size, intermediate_size, num_layers, num_heads: encoder widths (defaults: base width, 2x, 3, width//64).
        max_pieces: longest surface form (base-tokenizer pieces per target token) the encoder accepts.
        residual: predict ``FVT mean + correction`` (default, zero-initialised last layer) instead of the original
            ZeTT head (pool position 0, affine output rescaler calibrated on anchor tokens).
        pooling: ``"mean"`` (masked mean over pieces) or ``"first"`` (position 0); ``None`` picks by ``residual``.
        predict_bias: add a per-token logit-bias head (for base models whose LM head has a bias, e.g. BERT).
        n_fallback: learned rows for byte-fallback pieces (surface ids >= base vocab size), one per byte.

    format_version: the export format (``FORMAT_VERSION``, see ``FORMAT_HISTORY``); a config saved without one is
        format 1.

    Base-model record (filled by ``ZettHypernet.from_base_model``; used by ``check_compatible``):
        base_model_name, base_model_type, base_hidden_size, base_vocab_size, base_tied, base_has_bias,
        base_fingerprint (a few float statistics of the base embedding matrix).
    """

    model_type = "zett_hypernet"

    def __init__(
        self,
        hidden_size: int = 576,
        intermediate_size: int | None = None,
        num_layers: int = 3,
        num_heads: int | None = None,
        max_pieces: int = 7,
        residual: bool = True,
        pooling: str | None = None,
        predict_bias: bool = False,
        n_fallback: int = 256,
        layer_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        base_model_name: str | None = None,
        base_model_type: str | None = None,
        base_hidden_size: int = 576,
        base_vocab_size: int = 0,
        base_tied: bool = True,
        base_has_bias: bool = False,
        base_fingerprint: list[float] | None = None,
        format_version: int = FORMAT_VERSION,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size or 2 * hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads or max(1, hidden_size // 64)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hypernet hidden_size={hidden_size} is not divisible by num_heads={self.num_heads}; "
                             "choose num_heads that divides hidden_size")
        self.max_pieces = max_pieces
        self.residual = residual
        self.pooling = pooling or ("mean" if residual else "first")
        if self.pooling not in ("mean", "first"):
            raise ValueError(f"hypernet pooling={pooling!r} is unknown; use 'mean' or 'first'")
        self.predict_bias = predict_bias
        self.n_fallback = n_fallback
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.base_model_name = base_model_name
        self.base_model_type = base_model_type
        self.base_hidden_size = base_hidden_size
        self.base_vocab_size = base_vocab_size
        self.base_tied = base_tied
        self.base_has_bias = base_has_bias
        self.base_fingerprint = list(base_fingerprint) if base_fingerprint is not None else None
        self.format_version = int(format_version)
        super().__init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        # A saved config without the key predates format versions: it is format 1, not the current one.
        return super().from_dict({"format_version": 1, **config_dict}, **kwargs)

    @property
    def source_dim(self) -> int:
        """Width of one source-embedding row: d (tied base) or 2d (untied: input ‖ output)."""
        return self.base_hidden_size * (1 if self.base_tied else 2)

    def mismatches(self, base: dict) -> list[str]:
        """Why a base model described by ``adapter.describe`` is not the one this hypernetwork was built for
        (empty when it is): shapes and tying first, then the embedding fingerprint."""
        problems = [f"{key.removeprefix('base_')} {getattr(self, key)} != {base[key]}"
                    for key in ("base_model_type", "base_hidden_size", "base_vocab_size", "base_tied")
                    if getattr(self, key) != base[key]]
        if not problems and self.base_fingerprint is not None and \
                not fingerprints_match(self.base_fingerprint, base["base_fingerprint"]):
            problems.append("the embedding matrices differ")
        return problems

    def describe_base(self) -> str:
        if self.base_model_type is None or not self.base_vocab_size:
            return ("no recorded base model (its config.json has no base_* fields: it was not made by zett-train or "
                    "ZettHypernet.from_base_model)")
        tied = "tied" if self.base_tied else "untied"
        fp = fingerprint_hex(self.base_fingerprint)
        name = self.base_model_name or f"an unnamed {self.base_model_type} model"
        return (f"{name} ({self.base_model_type}, hidden {self.base_hidden_size}, "
                f"vocab {self.base_vocab_size}, {tied}, embeddings {fp})")


def fingerprints_match(a: list[float], b: list[float], rtol: float = 1e-2) -> bool:
    """Fingerprints agree up to dtype-cast noise (relative to the matrix's overall std, stat index 1)."""
    if len(a) != len(b):
        return False
    scale = max(abs(a[1]), abs(b[1]), 1e-12)
    return all(abs(x - y) <= rtol * max(abs(x), abs(y)) + 1e-3 * scale for x, y in zip(a, b, strict=True))


def fingerprint_hex(stats: list[float] | None) -> str:
    """A short printable id for a fingerprint (display only; comparison uses a tolerance)."""
    if not stats:
        return "<no fingerprint>"
    import hashlib

    return hashlib.sha1(",".join(f"{s:.2e}" for s in stats).encode()).hexdigest()[:10]
