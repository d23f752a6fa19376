"""``ZettHypernet``: predicts a base model's input/output embeddings (and logit bias) for any token.

For each target token the encoder reads its base-tokenizer pieces, embedded with the base model's own
embeddings (``source`` rows; learned fallback rows for byte pieces), and predicts one row per matrix. Tokens
never interact, so any subset of a vocabulary can be predicted on its own (in chunks, in any order).

Default (``residual=True``): ``prediction = FVT mean of the pieces + scale * head(encoder)`` with the head's
last layer at zero, so an untrained hypernetwork returns exactly the FVT baseline. ``residual=False`` is the
original ZeTT head: pool position 0, affine output rescaler calibrated on anchor tokens.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from transformers import PreTrainedModel

from zett.models import adapter
from zett.models.configuration import FORMAT_HISTORY, FORMAT_VERSION, ZettHypernetConfig, fingerprint_hex
from zett.models.layers import EncoderLayer, ProjectorBlock, Rescaler
from zett.models.pieces import copy_special_rows, fvt_mean


class HypernetMismatchError(ValueError):
    """A hypernetwork was given a base model (or source matrix) other than the one it was built for."""


class HypernetFormatError(ValueError):
    """A hypernetwork export of an older (or newer) format than this zett reads."""


@dataclasses.dataclass
class HypernetOutput:
    input_embeddings: torch.Tensor            # [V, d]
    output_embeddings: torch.Tensor           # [V, d]; the same tensor as input_embeddings for tied bases
    bias: torch.Tensor | None = None          # [V] when the hypernetwork predicts a logit bias


class _Head(nn.Module):
    """ProjectorBlock then a linear map to the base width. pooled # [V, H] -> [V, d]"""

    def __init__(self, hidden: int, intermediate: int, out_dim: int, eps: float):
        super().__init__()
        self.block = ProjectorBlock(hidden, intermediate, eps)
        self.proj = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.block(x))


class ZettHypernet(PreTrainedModel):
    config_class = ZettHypernetConfig
    base_model_prefix = "hypernet"
    main_input_name = "surface_ids"
    _no_split_modules = ["EncoderLayer"]

    def __init__(self, config: ZettHypernetConfig):
        if config.format_version != FORMAT_VERSION:
            raise HypernetFormatError(
                f"this hypernetwork ({config.base_model_name or 'unnamed base'}) is in export format "
                f"{config.format_version} ({FORMAT_HISTORY.get(config.format_version, 'unknown')}), but this version "
                f"of zett reads format {FORMAT_VERSION} ({FORMAT_HISTORY[FORMAT_VERSION]}); its predictions would "
                "silently change. Retrain it with this zett (zett-train), or use the zett version it was exported "
                "with.")
        super().__init__(config)
        c = config
        d, hidden, eps = c.base_hidden_size, c.hidden_size, c.layer_norm_eps
        self.fallback_embeddings = nn.Parameter(torch.zeros(c.n_fallback, c.source_dim))   # [256, n_in]
        self.in_scaler = Rescaler(c.source_dim)
        self.input_linear = nn.Linear(c.source_dim, hidden)
        self.input_block = ProjectorBlock(hidden, c.intermediate_size, eps)
        self.position_embeddings = nn.Embedding(c.max_pieces, hidden)
        self.embed_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(EncoderLayer(hidden, c.num_heads, c.intermediate_size, eps)
                                    for _ in range(c.num_layers))
        self.input_head = _Head(hidden, c.intermediate_size, d, eps)
        self.output_head = None if c.base_tied else _Head(hidden, c.intermediate_size, d, eps)
        self.bias_head = nn.Linear(hidden, 1) if c.predict_bias else None
        # residual: per-dim scale of the correction; original: affine map onto the base embedding statistics
        self.input_scaler = Rescaler(d)
        self.output_scaler = None if c.base_tied else Rescaler(d)
        self.bias_scaler = Rescaler(1) if c.predict_bias else None
        self.post_init()

    # ---------------------------------------------------------------- init
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if self.config.residual and isinstance(module, ZettHypernet):
            module._zero_last_layers()

    @torch.no_grad()
    def _zero_last_layers(self) -> None:
        """The residual variant starts as the FVT baseline: every head's last layer is zero."""
        for head in (self.input_head, self.output_head):
            if head is not None:
                head.proj.weight.zero_()
                head.proj.bias.zero_()
        if self.bias_head is not None:
            self.bias_head.weight.zero_()
            self.bias_head.bias.zero_()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained`` plus ``digest.json`` (sha256 of the safetensors files,
        ``zett.models.digest``), which every load checks."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            from zett.models import digest

            digest.write(save_directory)
        return out

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; a local directory's weights are checked against its
        ``digest.json`` first (a mismatch raises HypernetFormatError; no digest: one warning)."""
        from pathlib import Path

        local = Path(str(pretrained_model_name_or_path)).expanduser()
        if local.is_dir():
            from zett.models import digest

            digest.verify(local)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def from_base_model(cls, base_model, **overrides) -> ZettHypernet:
        """A fresh hypernetwork for ``base_model`` (its config records the base; frozen rescalers calibrated).

        overrides: any :class:`ZettHypernetConfig` field, e.g. hidden_size, intermediate_size, num_layers (3),
        num_heads, max_pieces (7), residual (True), predict_bias (default: the base's LM head has a bias), seed.
        """
        seed = overrides.pop("seed", 0)
        info = adapter.describe(base_model)
        unknown = set(overrides) - set(ZettHypernetConfig().to_dict()) - {"pooling"}
        if unknown:
            raise TypeError(f"unknown hypernetwork option(s) {sorted(unknown)}; see ZettHypernetConfig")
        fields = {"hidden_size": info["base_hidden_size"], "predict_bias": info["base_has_bias"], **overrides}
        fields.setdefault("intermediate_size", 2 * fields["hidden_size"])
        fields.setdefault("num_heads", max(1, fields["hidden_size"] // 64))
        config = ZettHypernetConfig(**fields, **info)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = cls(config)
        # built and calibrated on the CPU whatever the base's device; move it with .to(device) afterwards
        source = adapter.source_embeddings(base_model).float().cpu()
        bias = adapter.output_bias(base_model) if config.predict_bias else None
        model.calibrate(source, None if bias is None else bias.detach().float().cpu(), seed=seed)
        return model.eval()

    @torch.no_grad()
    def calibrate(self, source: torch.Tensor, source_bias: torch.Tensor | None = None, n_anchors: int = 2048,
                  seed: int = 0) -> None:
        """Fit the frozen rescalers to the base embeddings. source # [N, n_in]; source_bias # [N].

        in_scaler: source rows to mean 0, std ``initializer_range`` per dimension. Fallback rows: Gaussian
        with the source statistics. Residual: the correction is scaled by the per-dimension std of the base
        embeddings. Original: the outputs for the first ``n_anchors`` base tokens are mapped onto the base
        matrix's per-dimension mean and std.
        """
        c, d = self.config, self.config.base_hidden_size
        source = source.to(self.dtype)
        mean, std = source.mean(0), source.std(0).clamp(min=1e-8)
        self.in_scaler.set_(c.initializer_range / std, -mean * c.initializer_range / std)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.fallback_embeddings.shape, generator=gen, dtype=source.dtype)
        self.fallback_embeddings.copy_(mean + std * noise)
        bias_mean = bias_std = None
        if self.bias_scaler is not None:
            b = source_bias.to(self.dtype) if source_bias is not None else torch.zeros(1)
            bias_mean, bias_std = b.mean().view(1), b.std().clamp(min=1e-3).view(1) if b.numel() > 1 \
                else torch.ones(1)
        if c.residual:
            self.input_scaler.set_(std[:d], torch.zeros(d))
            if self.output_scaler is not None:
                self.output_scaler.set_(std[d:], torch.zeros(d))
            if self.bias_scaler is not None:
                self.bias_scaler.set_(bias_std, bias_mean)
            return
        anchors = torch.arange(min(n_anchors, source.shape[0]))
        ids = anchors[:, None]
        out = self.forward(ids, torch.ones_like(ids, dtype=torch.bool), source)
        for scaler, pred, true in ((self.input_scaler, out.input_embeddings, source[:, :d]),
                                   (self.output_scaler, out.output_embeddings, source[:, d:])):
            if scaler is None:
                continue
            # pred was produced through the current (identity) scaler, so undo nothing: fit on top of it
            w = true.std(0) / pred.std(0).clamp(min=1e-8)
            scaler.set_(w, true.mean(0) - pred.mean(0) * w)
        if self.bias_scaler is not None:
            self.bias_scaler.set_(bias_std, bias_mean)

    # ---------------------------------------------------------------- checks
    def check_compatible(self, base_model) -> None:
        """Raise :class:`HypernetMismatchError` unless ``base_model`` is the model this hypernetwork was built for."""
        other = adapter.describe(base_model)
        c = self.config
        problems = c.mismatches(other)
        if problems:
            tied = "tied" if other["base_tied"] else "untied"
            raise HypernetMismatchError(
                f"this hypernetwork was built for {c.describe_base()}, but the base model given is "
                f"{other['base_model_name']} ({other['base_model_type']}, hidden {other['base_hidden_size']}, "
                f"vocab {other['base_vocab_size']}, {tied}, embeddings "
                f"{fingerprint_hex(other['base_fingerprint'])}): {'; '.join(problems)}. Use the base model the "
                "hypernetwork was trained for, or train one for this model (zett-train).")

    def _check_source(self, source: torch.Tensor) -> None:
        c = self.config
        if source.dim() != 2 or source.shape[1] != c.source_dim or source.shape[0] != c.base_vocab_size:
            raise HypernetMismatchError(
                f"source embeddings have shape {tuple(source.shape)}, but this hypernetwork was built for "
                f"{c.describe_base()} and needs [{c.base_vocab_size}, {c.source_dim}]; build them with "
                "zett.models.adapter.source_embeddings(base_model) from that base model")

    # ---------------------------------------------------------------- forward
    def forward(self, surface_ids: torch.Tensor, surface_mask: torch.Tensor, source: torch.Tensor,
                special: torch.Tensor | None = None, source_bias: torch.Tensor | None = None,
                overflow_ids: torch.Tensor | None = None, overflow_mask: torch.Tensor | None = None,
                validate: bool = True) -> HypernetOutput:
        """Predict embeddings for V target tokens.

        surface_ids # [V, L] base ids right-padded (ids >= N_base: byte fallback, byte = id - N_base);
        surface_mask # [V, L] True on real pieces; source # [N_base, n_in] from ``adapter.source_embeddings``;
        special # [V] base id whose rows a token copies (>= 0), else -1; source_bias # [N_base] the base LM-head
        bias (residual bias prediction and special-token copies; optional); overflow_ids / overflow_mask # [V, E]
        the pieces of tokens longer than ``max_pieces`` past the first ``max_pieces``: the encoder never reads
        them, the residual's FVT mean does (``SurfaceForms.overflow_ids``; without them a truncated token's FVT
        mean would cover its first pieces only). validate: check the id range and drop all-padding columns; both
        read tensor values on the host (a device sync on GPU), so the training step, whose surface forms come
        from ``surface_forms`` (ids in range by construction) trimmed by the collator, passes False.
        Returns input_embeddings # [V, d], output_embeddings # [V, d], bias # [V] or None.
        """
        c, d = self.config, self.config.base_hidden_size
        self._check_source(source)
        n_tokens, length = surface_ids.shape
        if length > c.max_pieces:
            raise ValueError(f"surface forms have {length} pieces, this hypernetwork accepts at most "
                             f"{c.max_pieces}; build them with max_pieces={c.max_pieces}")
        n_base = source.shape[0]
        mask = surface_mask.bool()
        used = length
        if validate:
            if bool((surface_ids >= n_base + c.n_fallback).any()) or bool((surface_ids < 0).any()):
                raise ValueError(f"surface ids must lie in [0, {n_base + c.n_fallback}) (base ids, then one "
                                 "fallback id per byte)")
            # positions past the longest real surface form are padding for every row: skip their compute
            used = int(mask.any(0).nonzero().max()) + 1 if bool(mask.any()) else 1
        ids, mask = surface_ids[:, :used], mask[:, :used]

        # Byte-fallback pieces read the learned rows: a select over every position, so no data-dependent shape.
        fallback = mask & (ids >= n_base)
        rows = source[ids.clamp(max=n_base - 1)].to(self.dtype)                           # [V, L, n_in]
        learned = self.fallback_embeddings[(ids - n_base).clamp(0, c.n_fallback - 1)].to(rows.dtype)
        rows = torch.where(fallback[..., None], learned, rows)
        x = self.input_block(self.input_linear(self.in_scaler(rows)))                      # [V, L, H]
        x = self.embed_norm(x + self.position_embeddings(torch.arange(used, device=x.device)))
        positions = torch.arange(used, device=x.device)
        attend = mask | (positions == 0)                  # a token without pieces still attends somewhere
        for layer in self.layers:
            x = layer(x, attend)
        pooled = self._pool(x, mask)                                                        # [V, H]

        if c.residual:
            base = fvt_mean(source, ids, mask, self.dtype, overflow_ids, overflow_mask)    # [V, n_in]
            e_in = base[:, :d] + self.input_scaler.weight * self.input_head(pooled)
            e_out = e_in if self.output_head is None else \
                base[:, d:] + self.output_scaler.weight * self.output_head(pooled)
        else:
            e_in = self.input_scaler(self.input_head(pooled))
            e_out = e_in if self.output_head is None else self.output_scaler(self.output_head(pooled))
        bias = None
        if self.bias_head is not None:
            raw = self.bias_head(pooled)                                                    # [V, 1]
            if c.residual and source_bias is not None:
                bias = fvt_mean(source_bias[:, None], ids, mask, self.dtype, overflow_ids, overflow_mask)[:, 0] + \
                    self.bias_scaler.weight * raw[:, 0]
            else:
                bias = self.bias_scaler(raw)[:, 0]
        if special is not None:
            e_in = copy_special_rows(e_in, source[:, :d], special)
            e_out = e_in if self.output_head is None else copy_special_rows(e_out, source[:, d:], special)
            if bias is not None and source_bias is not None:
                bias = copy_special_rows(bias, source_bias, special)
        return HypernetOutput(e_in, e_out, bias)

    def _pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x # [V, L, H] -> [V, H]: masked mean over pieces, or position 0."""
        if self.config.pooling == "first":
            return x[:, 0]
        weights = mask.to(x.dtype)
        count = weights.sum(1, keepdim=True)
        mean = torch.einsum("vl,vlh->vh", weights, x) / count.clamp(min=1)
        return torch.where(count > 0, mean, x[:, 0])

    def num_flops_per_piece(self) -> int:
        """Forward FLOPs per (token, piece) position of the encoder (heads, per token, are not counted)."""
        c = self.config
        h, i = c.hidden_size, c.intermediate_size
        per_layer = 4 * h * h + 2 * h * i
        return 2 * (c.source_dim * h + 2 * h * i + c.num_layers * per_layer)

    def forward_flops(self, n_positions: int, n_tokens: int, n_pairs: int = 0) -> int:
        """Matmul FLOPs of one forward pass over ``n_tokens`` tokens padded to ``n_positions`` piece positions in
        total, with ``n_pairs`` = sum over tokens of width**2 (attention score pairs; 0 to leave them out)."""
        c = self.config
        h, i, d = c.hidden_size, c.intermediate_size, c.base_hidden_size
        n_heads_out = 1 + (self.output_head is not None)
        per_token = n_heads_out * 2 * (2 * h * i + h * d) + (2 * h if self.bias_head is not None else 0)
        attention = c.num_layers * 2 * 2 * h * n_pairs
        return n_positions * self.num_flops_per_piece() + n_tokens * per_token + attention

