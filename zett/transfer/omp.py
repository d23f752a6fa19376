"""OMP: training-free tokenizer transplantation by Orthogonal Matching Pursuit (Goddard & Fernandes Neto, 2025).

OMP needs a *donor*: a model that already uses the target tokenizer. The anchors are the tokens the target and the
base vocabularies share byte for byte (``zett.tokenizers.byte_vocab``; display strings are never compared). For
every other target token, OMP writes the donor's embedding of it as a sparse combination of the donor's embeddings
of the anchors (``k`` atoms, default 64 as in the paper); the same coefficients applied to the base's embeddings of
the anchors give the new row. Anchors copy their base row exactly; special tokens copy their role counterpart.

Batched in torch (``batch_size`` target tokens at a time; memory O(batch_size x anchors)), on ``device``.
"""

from __future__ import annotations

import torch


class DonorMismatchError(ValueError):
    """The donor model does not use the target tokenizer; the message says what differs and the fix."""


def anchor_pairs(target_bytes: list, base_bytes: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(target ids [A], base ids [A]) of tokens with identical, non-empty bytes (the first base id per bytes)."""
    lookup: dict[bytes, int] = {}
    for i, b in enumerate(base_bytes):
        if b:
            lookup.setdefault(b, i)
    pairs = [(t, lookup[b]) for t, b in enumerate(target_bytes) if b and b in lookup]
    t = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    s = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return t, s


@torch.no_grad()
def omp(x: torch.Tensor, atoms: torch.Tensor, k: int, tol: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal Matching Pursuit for a batch of signals.

    x # [B, d]: signals; atoms # [A, d]: dictionary. Each step adds the atom most correlated (by cosine) with the
    residual and refits all chosen coefficients by least squares. Stops per row once its residual norm is below
    ``tol`` times the signal's norm (extra steps then get coefficient 0).
    Returns (indices [B, k'] into atoms, coefficients [B, k']) with k' = min(k, A, d).
    """
    x, atoms = x.double(), atoms.double()
    b, d = x.shape
    k = min(k, atoms.shape[0], d)
    # atom selection (the [B, A] correlation, the bulk of the work) in float32; the fits in float64
    unit = (atoms / atoms.norm(dim=1, keepdim=True).clamp(min=1e-12)).float()
    idx = torch.zeros(b, k, dtype=torch.long, device=x.device)
    coef = torch.zeros(b, k, dtype=x.dtype, device=x.device)
    residual = x.clone()
    scale = x.norm(dim=1).clamp(min=1e-12)
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    for step in range(k):
        corr = (residual.float() @ unit.T).abs()  # [B, A]
        if step:
            corr.scatter_(1, idx[:, :step], -1.0)  # never pick an atom twice
        idx[:, step] = corr.argmax(1)
        g = atoms[idx[:, : step + 1]]  # [B, s, d]
        sol = torch.linalg.lstsq(g.transpose(1, 2), x.unsqueeze(-1)).solution.squeeze(-1)  # [B, s]
        sol = torch.where(active[:, None], sol, coef[:, : step + 1])
        coef[:, : step + 1] = sol
        residual = x - torch.einsum("bs,bsd->bd", sol, g)
        active &= residual.norm(dim=1) > tol * scale
        if not bool(active.any()):
            idx, coef = idx[:, : step + 1], coef[:, : step + 1]
            break
    return idx, coef


def check_donor(donor_tokenizer, target_bytes: list, donor_rows: int, donor_name: str) -> None:
    """Raise ``DonorMismatchError`` unless the donor's tokenizer has the target's vocabulary (by bytes)."""
    from zett.tokenizers import byte_vocab

    donor_bytes = byte_vocab(donor_tokenizer)
    n = len(target_bytes)
    diff = [i for i in range(min(n, len(donor_bytes))) if donor_bytes[i] != target_bytes[i]]
    if len(donor_bytes) < n or diff:
        detail = f"{len(diff)} of {n} tokens differ (first id {diff[0]})" if diff else \
            f"the donor vocabulary has {len(donor_bytes)} tokens, the target {n}"
        raise DonorMismatchError(
            f"donor_model {donor_name!r} does not use the target tokenizer: {detail}. OMP needs a donor model that "
            "was trained with the target tokenizer (e.g. donor_model=gemma3-270m for the Gemma-3 tokenizer)")
    if donor_rows < n:
        raise DonorMismatchError(f"donor_model {donor_name!r} has {donor_rows} embedding rows for a {n}-token "
                                 "target vocabulary")


@torch.no_grad()
def omp_rows(target_bytes: list, base_bytes: list, donor: torch.Tensor, base: torch.Tensor,
             special: torch.Tensor, k: int = 64, batch_size: int = 256, device=None,
             progress: bool = False) -> tuple[torch.Tensor, int]:
    """New rows # [V, n] for the target vocabulary.

    target_bytes / base_bytes: ``byte_vocab`` of the two tokenizers; donor # [>=V, d_donor]: the donor's
    embeddings by target id; base # [N, n]: the base's joint source rows (input ‖ output ‖ bias); special # [V]:
    base row to copy for special tokens, else -1. Returns (rows, number of anchors).
    """
    from zett.models.pieces import copy_special_rows

    device = torch.device(device) if device is not None else base.device
    n_target = len(target_bytes)
    t_ids, b_ids = anchor_pairs(target_bytes, base_bytes)
    keep = (b_ids < base.shape[0]) & (t_ids < donor.shape[0])
    t_ids, b_ids = t_ids[keep], b_ids[keep]
    if t_ids.numel() == 0:
        raise DonorMismatchError("the target and base vocabularies share no token byte for byte: OMP has no anchors")
    rows = torch.zeros(n_target, base.shape[1], dtype=torch.float32)
    rows[t_ids] = base[b_ids].float().cpu()  # anchors: exact copies
    is_anchor = torch.zeros(n_target, dtype=torch.bool)
    is_anchor[t_ids] = True
    todo = torch.nonzero(~is_anchor & (special[:n_target] < 0) & (torch.arange(n_target) < donor.shape[0]))[:, 0]
    atoms = donor[t_ids].to(device)
    base_anchor = base[b_ids].to(device).double()
    it = range(0, todo.numel(), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="omp", unit="batch", leave=False)
    for s in it:
        chunk = todo[s: s + batch_size]
        idx, coef = omp(donor[chunk].to(device), atoms, k)
        rows[chunk] = torch.einsum("bs,bsn->bn", coef, base_anchor[idx]).float().cpu()
    return copy_special_rows(rows, base.float().cpu(), special), int(t_ids.numel())


def omp_transfer_rows(tok, target, base_tok, source: torch.Tensor, special: torch.Tensor,
                      source_bias: torch.Tensor | None, dtype=None, device=None, progress: bool = False, *,
                      donor_model=None, donor_tokenizer=None, k: int = 64, batch_size: int = 256):
    """``zett.transfer(method="omp")``: rows # [V, n (+1)] for tokenizer ``tok`` (the target plus any added special
    tokens) and the number of anchors. ``donor_model``: asset name, path or loaded model using ``target``
    (``donor_tokenizer`` when a loaded donor has no directory to read its tokenizer from)."""
    from zett.models import adapter
    from zett.tokenizers import byte_vocab
    from zett.transfer.api import TransferError, _load_base_tokenizer, _name, load_model

    if donor_model is None:
        raise TransferError("method='omp' needs donor_model=...: a model that already uses the target tokenizer "
                            "(e.g. donor_model=gemma3-270m for target gemma3's tokenizer)")
    if int(k) < 1:
        raise TransferError(f"omp k must be a positive number of anchors per token, got {k}")
    try:
        donor, _ = load_model(donor_model, dtype)
    except (OSError, ValueError) as e:
        raise TransferError(f"cannot load donor_model {_name(donor_model)!r}: {e}") from e
    donor_tok = _load_base_tokenizer(donor_model, donor, donor_tokenizer)
    donor_emb = adapter.input_embeddings(donor).detach()
    target_bytes = byte_vocab(tok)
    try:
        check_donor(donor_tok, byte_vocab(target), donor_emb.shape[0], _name(donor_model))
    except DonorMismatchError as e:
        raise TransferError(str(e)) from e
    joint = source.detach().float()
    if source_bias is not None:
        joint = torch.cat([joint, source_bias.detach().float()[:, None]], 1)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return omp_rows(target_bytes, byte_vocab(base_tok), donor_emb.float(), joint, special, int(k), int(batch_size),
                    device, progress)


__all__ = ["DonorMismatchError", "anchor_pairs", "check_donor", "omp", "omp_rows", "omp_transfer_rows"]
