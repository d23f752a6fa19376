"""Finite or nothing: predicted embedding rows are checked before they are installed, saved or scored."""

from __future__ import annotations

import torch

from zett.cli.errors import UserError


class NonFiniteError(UserError):
    """Predicted embeddings (or a score) hold NaN or infinity; the message names what produced them."""


def check_finite_rows(rows, method: str, base: str, target: str) -> None:
    """Raise :class:`NonFiniteError` if any of ``rows``' matrices (``input_embeddings`` [V, d],
    ``output_embeddings`` [V, d] or None, ``bias`` [V] or None) has a NaN or infinite entry."""
    for name in ("input_embeddings", "output_embeddings", "bias"):
        t = getattr(rows, name, None)
        if t is None:
            continue
        bad = ~torch.isfinite(t)
        if bad.any():
            n_rows = int(bad.reshape(t.shape[0], -1).any(1).sum()) if t.dim() else 1
            hint = ("the hypernetwork's weights (hypernet_path) or the base model hold NaN/Inf; retrain or pass "
                    "another hypernet_path" if method == "hypernet" else
                    "the base model's embeddings hold NaN/Inf; check base_model (a cached asset: `zett-assets verify "
                    "<name>` re-hashes its files and re-fetches what differs)")
            raise NonFiniteError(f"method={method} predicted non-finite {name} for {n_rows} of {t.shape[0]} tokens "
                                 f"of target_tokenizer={target} (base model {base}); nothing was saved: {hint}")
