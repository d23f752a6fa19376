"""OMP: training-free tokenizer transplantation by Orthogonal Matching Pursuit (Goddard & Fernandes Neto, 2025).

OMP needs a *donor*: a model that already uses the target tokenizer. The anchors are the tokens the target and the
base vocabularies share byte for byte (``zett.tokenizers.byte_vocab``; display strings are never compared). For
every other target token, OMP writes the donor's embedding of it as a sparse combination of the donor's embeddings
of the anchors (``k`` atoms, default 64 as in the paper); the same coefficients applied to the base's embeddings of
the anchors give the new row. Anchors copy their base row exactly; special tokens copy their role counterpart.

Batched in torch (``batch_size`` target tokens at a time; memory O(batch_size x anchors)), on ``device``. Exact OMP
(``candidates=None``) costs k x anchors x d multiply-adds per token, hours for the Gemma-3 vocabulary on a CPU;
``candidates=N`` (default 256) pursues over the N anchors closest to each token only, about 40x faster there and
an approximation (docs/evaluation.md, "OMP": close on prose, 0.07 bits per byte worse on code in one pair).
"""

from __future__ import annotations

import torch

from zett.tokenizers.bytes import base_id_by_bytes

# anchors preselected per target token (``omp(candidates=...)``); chosen from benchmarks/omp_quality.py, see
# docs/evaluation.md "OMP"
DEFAULT_CANDIDATES = 256


class DonorMismatchError(ValueError):
    """The donor model does not use the target tokenizer; the message says what differs and the fix."""


def anchor_pairs(target_bytes: list, base_bytes: list, avoid: set | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(target ids [A], base ids [A]) of tokens with identical, non-empty bytes.

    Where several base tokens have the same bytes, the first id that is not in ``avoid`` wins (``avoid``: e.g. the
    base's byte-fallback pieces, ``zett.tokenizers.bytes.byte_fallback_ids``, whose rows are barely trained; the
    first of them only when no other base token has those bytes)."""
    lookup = base_id_by_bytes(base_bytes, avoid)
    pairs = [(t, lookup[b]) for t, b in enumerate(target_bytes) if b and b in lookup]
    t = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    s = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return t, s


@torch.no_grad()
def omp_lstsq(x: torch.Tensor, atoms: torch.Tensor, k: int, tol: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference OMP (the first implementation, kept for tests and ``benchmarks/bench_omp.py``): refits every
    coefficient from scratch with a batched ``torch.linalg.lstsq`` at each step, which dominates its run time.

    x # [B, d]: signals; atoms # [A, d]: dictionary. Each step adds the atom most correlated (by cosine) with the
    residual and refits all chosen coefficients by least squares. Stops per row once its residual norm is below
    ``tol`` times the signal's norm (extra steps then get coefficient 0).
    Returns (indices [B, k'] into atoms, coefficients [B, k']) with k' = min(k, A, d).
    """
    x, atoms = x.double(), atoms.double()
    b, d = x.shape
    k = min(k, atoms.shape[0], d)
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


class Dictionary:
    """The anchors' donor rows, prepared once for many ``omp`` calls: ``atoms`` # [A, d] float64 (the fits) and
    ``unit`` # [A, d] float32, rows scaled to norm 1 (atom selection by cosine, the bulk of the work)."""

    def __init__(self, atoms: torch.Tensor):
        self.atoms = atoms.double()
        self.unit = (self.atoms / self.atoms.norm(dim=1, keepdim=True).clamp(min=1e-12)).float()

    def __len__(self) -> int:
        return self.atoms.shape[0]

    @property
    def unit_bf16(self) -> torch.Tensor:
        """``unit`` in bfloat16 (made once): candidate ranking only."""
        if getattr(self, "_unit_bf16", None) is None:
            self._unit_bf16 = self.unit.to(torch.bfloat16)
        return self._unit_bf16


class _Fit:
    """Least squares of x # [B, d] on a growing sequence of atoms, never re-solved: each new atom is
    orthonormalised against the chosen ones (classical Gram-Schmidt applied twice, float64), the residual is
    updated in place, and the coefficients come from one triangular solve at the end."""

    def __init__(self, x: torch.Tensor, k: int):
        b, d = x.shape
        self.x, self.s = x, 0
        self.basis = x.new_zeros(b, k, d)  # orthonormal rows spanning the chosen atoms
        self.tri = x.new_zeros(b, k, k)  # upper triangular: atom_s = sum_i tri[i, s] basis_i
        self.proj = x.new_zeros(b, k)  # x . basis_s
        self.residual = x.clone()

    def add(self, g: torch.Tensor, use: torch.Tensor) -> None:
        """g # [B, d]: the next atom per row; use # [B] bool: rows that take it (others get coefficient 0)."""
        s, basis = self.s, self.basis
        v, h = g, g.new_zeros(g.shape[0], s)
        if s:
            for _ in range(2):  # twice: one pass loses orthogonality when atoms are nearly dependent
                # the [1, d] x [d, s] orientation: bmm's [s, d] x [d, 1] one is ~10x slower on CPU
                c = torch.bmm(v.unsqueeze(1), basis[:, :s].transpose(1, 2)).squeeze(1)  # [B, s]
                v = v - torch.bmm(c.unsqueeze(1), basis[:, :s]).squeeze(1)
                h = h + c
        norm = v.norm(dim=1)
        ok = use & (norm > 1e-10 * g.norm(dim=1))  # an atom in the span of the chosen ones adds nothing
        q = torch.where(ok[:, None], v / norm.clamp(min=1e-300)[:, None], 0.0)
        basis[:, s] = q
        self.tri[:, :s, s] = torch.where(ok[:, None], h, 0.0)
        self.tri[:, s, s] = torch.where(ok, norm, 1.0)
        self.proj[:, s] = (q * self.residual).sum(1)
        self.residual = self.residual - self.proj[:, s, None] * q
        self.s += 1

    def coef(self) -> torch.Tensor:
        """# [B, s] coefficients of the atoms added so far."""
        s = self.s
        return torch.linalg.solve_triangular(self.tri[:, :s, :s], self.proj[:, :s, None], upper=True).squeeze(-1)


def _select_in_gram(x: torch.Tensor, dic: Dictionary, cand: torch.Tensor, k: int,
                    tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """OMP's atom choices among per-row candidates, in the candidates' Gram matrix (Batch-OMP, Rubinstein et al.
    2008): after one [N, d] x [d, N] product per row nothing per step touches d.

    x # [B, d] float64; cand # [B, N] atom ids. Returns (local picks
    [B, k'] into cand, used [B, k'] bool: the row was still active when it picked that atom)."""
    b, n = cand.shape
    sub = dic.unit[cand]  # [B, N, d]
    gram = torch.bmm(sub, sub.transpose(1, 2))  # [B, N, N] cosines between candidates (float32)
    a0 = torch.bmm(x.float().unsqueeze(1), sub.transpose(1, 2)).squeeze(1)  # [B, N] x . unit atom
    alpha = a0.abs()
    rows = torch.arange(b, device=x.device)
    chol = x.new_zeros(b, k, k)  # lower Cholesky factor of the chosen atoms' Gram
    picked_rows = gram.new_zeros(b, k, n)  # gram rows of the chosen atoms
    local = torch.zeros(b, k, dtype=torch.long, device=x.device)
    used = torch.zeros(b, k, dtype=torch.bool, device=x.device)
    rhs = x.new_zeros(b, k)
    xx = (x * x).sum(1)
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    steps = k
    for s in range(k):
        if s:
            alpha.scatter_(1, local[:, :s], -1.0)  # never pick an atom twice
        j = alpha.argmax(1)
        local[:, s], used[:, s] = j, active
        picked_rows[:, s] = gram[rows, j]
        ok = active.clone()
        if s:
            g_in = picked_rows[:, s].gather(1, local[:, :s]).double()  # [B, s] cosines with the chosen atoms
            w = torch.linalg.solve_triangular(chol[:, :s, :s], g_in[..., None], upper=False).squeeze(-1)  # [B, s]
            d2 = 1.0 - (w * w).sum(1)
            ok &= d2 > 1e-10  # an atom (numerically) in the span of the chosen ones adds nothing
            chol[:, s, :s] = torch.where(ok[:, None], w, 0.0)
            chol[:, s, s] = torch.where(ok, d2.clamp(min=1e-10).sqrt(), 1.0)
        else:
            chol[:, 0, 0] = 1.0
        rhs[:, s] = torch.where(ok, a0[rows, j].double(), 0.0)
        gamma = torch.cholesky_solve(rhs[:, : s + 1, None], chol[:, : s + 1, : s + 1]).squeeze(-1)  # [B, s+1]
        alpha = (a0 - torch.bmm(gamma.float().unsqueeze(1), picked_rows[:, : s + 1]).squeeze(1)).abs()
        active &= xx - (rhs[:, : s + 1] * gamma).sum(1) > (tol * tol) * xx  # residual norm^2 = |x|^2 - x.P x
        if not bool(active.any()):
            steps = s + 1
            break
    return local[:, :steps], used[:, :steps]


@torch.no_grad()
def omp(x: torch.Tensor, atoms, k: int, tol: float = 1e-7, candidates: int | None = None,
        pursuit_batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal Matching Pursuit for a batch of signals.

    x # [B, d]: signals; atoms # [A, d] (or a prepared ``Dictionary``). Each step adds the atom most correlated
    (by cosine) with the residual and refits all chosen coefficients by least squares. Stops per row once its
    residual norm is below ``tol`` times the signal's norm (extra steps then get coefficient 0).

    candidates=None: exact OMP. Per step one [B, d] x [d, A] matmul (float32) picks the atoms; the fit is
    incremental (``_Fit``), so it is the same as ``omp_lstsq`` up to rounding at a fraction of its cost.

    candidates=N: per signal, keep the N atoms whose cosine with the signal itself is largest (one [B, d] x [d, A]
    matmul for the whole batch) and pursue over those only, in their Gram matrix (``pursuit_batch`` signals at a
    time, memory pursuit_batch x N x (d + N)); the chosen atoms are then fitted exactly in float64 as above. N >= A
    is exact OMP.

    Returns (indices [B, k'] into atoms, coefficients [B, k'] float64) with k' <= min(k, A, d, N).
    """
    dic = atoms if isinstance(atoms, Dictionary) else Dictionary(atoms.to(x.device))
    x = x.double()
    b, d = x.shape
    k = min(k, len(dic), d)
    if candidates is None:
        fit = _Fit(x, k)
        idx = torch.zeros(b, k, dtype=torch.long, device=x.device)
        scale = x.norm(dim=1).clamp(min=1e-12)
        active = torch.ones(b, dtype=torch.bool, device=x.device)
        for s in range(k):
            corr = (fit.residual.float() @ dic.unit.T).abs()  # [B, A]
            if s:
                corr.scatter_(1, idx[:, :s], -1.0)  # never pick an atom twice
            idx[:, s] = corr.argmax(1)
            fit.add(dic.atoms[idx[:, s]], active)
            active &= fit.residual.norm(dim=1) > tol * scale
            if not bool(active.any()):
                break
        return idx[:, : fit.s], fit.coef()

    n = min(int(candidates), len(dic))
    if n < 1:
        raise ValueError(f"omp candidates must be a positive number of anchors per token, got {candidates}")
    k = min(k, n)
    # ranking only, in bfloat16 (~4x faster on CPU): near-ties at the N-th place may swap, the pursuit below
    # recomputes every correlation it uses in float32
    cand = (x.to(torch.bfloat16) @ dic.unit_bf16.T).abs().topk(n, dim=1).indices  # [B, N]
    idx = torch.zeros(b, k, dtype=torch.long, device=x.device)
    coef = x.new_zeros(b, k)
    for s0 in range(0, b, pursuit_batch):
        sl = slice(s0, s0 + pursuit_batch)
        local, used = _select_in_gram(x[sl], dic, cand[sl], k, tol)
        chosen = cand[sl].gather(1, local)
        idx[sl, : chosen.shape[1]] = chosen
        coef[sl, : chosen.shape[1]] = _refit(x[sl], dic.atoms[chosen], used)
    return idx, coef


def _refit(x: torch.Tensor, g: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """Least-squares coefficients # [B, s] of x # [B, d] on the atoms g # [B, s, d] where used # [B, s] (0
    elsewhere), float64: normal equations by Cholesky, rows whose Gram is not numerically positive definite by
    ``_Fit`` (Gram-Schmidt) instead."""
    m = used[:, :, None] & used[:, None, :]
    eye = torch.eye(g.shape[1], dtype=g.dtype, device=g.device)
    gram = torch.where(m, torch.bmm(g, g.transpose(1, 2)), eye)  # unused atoms: identity rows, right side 0
    rhs = torch.where(used, torch.bmm(x.unsqueeze(1), g.transpose(1, 2)).squeeze(1), 0.0)
    chol, info = torch.linalg.cholesky_ex(gram)
    coef = torch.cholesky_solve(rhs[..., None], chol).squeeze(-1)
    bad = torch.nonzero(info != 0)[:, 0]
    if bad.numel():
        fit = _Fit(x[bad], g.shape[1])
        for s in range(g.shape[1]):
            fit.add(g[bad, s], used[bad, s])
        coef[bad] = fit.coef()
    return coef


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
             progress: bool = False, candidates: int | None = DEFAULT_CANDIDATES,
             base_avoid: set | None = None) -> tuple[torch.Tensor, int]:
    """New rows # [V, n] for the target vocabulary.

    target_bytes / base_bytes: ``byte_vocab`` of the two tokenizers; donor # [>=V, d_donor]: the donor's
    embeddings by target id; base # [N, n]: the base's joint source rows (input ‖ output ‖ bias); special # [V]:
    base row to copy for special tokens, else -1; candidates: per-token preselection (``omp``; None = exact);
    base_avoid: base ids to pair only when nothing else has their bytes (``anchor_pairs``).
    Returns (rows, number of anchors).
    """
    from zett.models.pieces import copy_special_rows

    device = torch.device(device) if device is not None else base.device
    n_target = len(target_bytes)
    t_ids, b_ids = anchor_pairs(target_bytes, base_bytes, base_avoid)
    keep = (b_ids < base.shape[0]) & (t_ids < donor.shape[0])
    t_ids, b_ids = t_ids[keep], b_ids[keep]
    if t_ids.numel() == 0:
        raise DonorMismatchError("the target and base vocabularies share no token byte for byte: OMP has no anchors")
    rows = torch.zeros(n_target, base.shape[1], dtype=torch.float32)
    rows[t_ids] = base[b_ids].float().cpu()  # anchors: exact copies
    is_anchor = torch.zeros(n_target, dtype=torch.bool)
    is_anchor[t_ids] = True
    todo = torch.nonzero(~is_anchor & (special[:n_target] < 0) & (torch.arange(n_target) < donor.shape[0]))[:, 0]
    atoms = Dictionary(donor[t_ids].to(device))
    base_anchor = base[b_ids].to(device).double()
    it = range(0, todo.numel(), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="omp", unit="batch", leave=False)
    for s in it:
        chunk = todo[s: s + batch_size]
        idx, coef = omp(donor[chunk].to(device), atoms, k, candidates=candidates)
        rows[chunk] = torch.einsum("bs,bsn->bn", coef, base_anchor[idx]).float().cpu()
    return copy_special_rows(rows, base.float().cpu(), special), int(t_ids.numel())


def omp_transfer_rows(tok, target, base_tok, source: torch.Tensor, special: torch.Tensor,
                      source_bias: torch.Tensor | None, dtype=None, device=None, progress: bool = False, *,
                      donor_model=None, donor_tokenizer=None, k: int = 64, batch_size: int = 256,
                      candidates: int | None = DEFAULT_CANDIDATES):
    """``zett.transfer(method="omp")``: rows # [V, n (+1)] for tokenizer ``tok`` (the target plus any added special
    tokens) and the number of anchors. ``donor_model``: asset name, path or loaded model using ``target``
    (``donor_tokenizer`` when a loaded donor has no directory to read its tokenizer from). ``candidates``: anchors
    preselected per token (None: exact OMP over all anchors)."""
    from zett.models import adapter
    from zett.tokenizers import byte_vocab
    from zett.tokenizers.bytes import byte_fallback_ids
    from zett.transfer.api import TransferError, _load_base_tokenizer, _name, load_model

    if donor_model is None:
        raise TransferError("method='omp' needs donor_model=...: a model that already uses the target tokenizer "
                            "(e.g. donor_model=gemma3-270m for target gemma3's tokenizer)")
    if int(k) < 1:
        raise TransferError(f"omp k must be a positive number of anchors per token, got {k}")
    if candidates is not None and (isinstance(candidates, bool) or int(candidates) < 1):
        raise TransferError(f"omp candidates must be a positive number of anchors preselected per token (or null for "
                            f"exact OMP over all anchors), got {candidates}")
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
                    device, progress, None if candidates is None else int(candidates), byte_fallback_ids(base_tok))


__all__ = ["DEFAULT_CANDIDATES", "Dictionary", "DonorMismatchError", "anchor_pairs", "check_donor", "omp", "omp_lstsq",
           "omp_rows", "omp_transfer_rows"]
