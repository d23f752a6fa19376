"""OMP transplantation: exact recovery, exact anchor copies, byte-level anchors, donor checks."""

from __future__ import annotations

import pytest
import torch

from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer
from zett.tokenizers import byte_vocab
from zett.transfer import TransferError, transfer
from zett.transfer.omp import anchor_pairs, omp, omp_lstsq


def test_omp_recovers_an_exact_sparse_combination():
    g = torch.Generator().manual_seed(0)
    atoms = torch.randn(40, 8, generator=g, dtype=torch.float64)
    x = torch.stack([0.5 * atoms[3] - 2.0 * atoms[17], atoms[5], 1.5 * atoms[0] + atoms[39] - atoms[20]])
    idx, coef = omp(x, atoms, k=8)
    recon = torch.einsum("bs,bsd->bd", coef, atoms[idx])
    assert torch.allclose(recon, x, atol=1e-10)
    # a single atom is found in one step and the remaining coefficients stay 0
    assert idx[1, 0] == 5 and coef[1, 0] == pytest.approx(1.0) and torch.all(coef[1, 1:] == 0)


def test_omp_batches_agree_with_one_at_a_time():
    g = torch.Generator().manual_seed(1)
    atoms, x = torch.randn(50, 6, generator=g), torch.randn(7, 6, generator=g)
    idx, coef = omp(x, atoms, k=4)
    for i in range(7):
        i1, c1 = omp(x[i: i + 1], atoms, k=4)
        assert torch.equal(i1[0], idx[i]) and torch.allclose(c1[0], coef[i])


def test_fast_exact_solver_equals_the_reference_solver():
    """The incremental (Gram-Schmidt) fit picks the same atoms and coefficients as re-solving the least squares from
    scratch at every step (``omp_lstsq``, the first implementation)."""
    g = torch.Generator().manual_seed(3)
    atoms, x = torch.randn(200, 16, generator=g), torch.randn(12, 16, generator=g)
    for k in (1, 5, 12):
        idx, coef = omp(x, atoms, k)
        ref_idx, ref_coef = omp_lstsq(x, atoms, k)
        assert torch.equal(idx, ref_idx)
        assert torch.allclose(coef, ref_coef, atol=1e-5, rtol=0)


def test_preselection_with_all_anchors_is_exact_omp():
    g = torch.Generator().manual_seed(4)
    atoms, x = torch.randn(120, 16, generator=g), torch.randn(10, 16, generator=g)
    idx, coef = omp(x, atoms, k=8)
    for n in (120, 500):  # N >= number of anchors: every anchor is a candidate
        c_idx, c_coef = omp(x, atoms, k=8, candidates=n, pursuit_batch=3)
        assert torch.equal(c_idx, idx)
        assert torch.allclose(c_coef, coef, atol=1e-5, rtol=0)
    # fewer candidates: the picks are among the N atoms most correlated with each signal, the fit stays exact
    c_idx, c_coef = omp(x, atoms, k=8, candidates=20)
    unit = atoms / atoms.norm(dim=1, keepdim=True)
    top = (x @ unit.T).abs().topk(20, dim=1).indices
    assert all(set(a.tolist()) <= set(t.tolist()) for a, t in zip(c_idx, top, strict=True))
    g_sel = atoms[c_idx].double()
    ref = torch.linalg.lstsq(g_sel.transpose(1, 2), x.double().unsqueeze(-1)).solution.squeeze(-1)
    assert torch.allclose(c_coef, ref, atol=1e-5, rtol=0)


def test_preselection_recovers_an_exact_sparse_combination():
    g = torch.Generator().manual_seed(5)
    atoms = torch.randn(300, 32, generator=g, dtype=torch.float64)
    x = torch.stack([0.7 * atoms[10] + 0.5 * atoms[200], atoms[42] - 0.8 * atoms[7] + 0.9 * atoms[99]])
    unit = atoms / atoms.norm(dim=1, keepdim=True)
    top = (x @ unit.T).abs().topk(200, dim=1).indices
    assert {10, 200} <= set(top[0].tolist()) and {42, 7, 99} <= set(top[1].tolist())  # the atoms are candidates
    idx, coef = omp(x, atoms, k=16, candidates=200)
    assert torch.allclose(torch.einsum("bs,bsd->bd", coef, atoms[idx]), x, atol=1e-8)
    assert set(idx[0, :2].tolist()) == {10, 200} and set(idx[1, :3].tolist()) == {42, 7, 99}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Base (hidden 16) and a donor with the target tokenizer (hidden 8) whose anchor rows map linearly onto the
    base's anchor rows: base[anchor] = donor[anchor] @ M."""
    root = tmp_path_factory.mktemp("omp")
    base_tok = train_tokenizer(vocab_size=300)
    target = train_tokenizer(SAMPLE_TEXTS[:4] * 4, vocab_size=290)
    base = tiny_llama(base_tok, hidden_size=16)
    donor = tiny_llama(target, hidden_size=8, seed=1)
    t_ids, b_ids = anchor_pairs(byte_vocab(target), byte_vocab(base_tok))
    m = torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base.get_input_embeddings().weight[b_ids] = donor.get_input_embeddings().weight[t_ids] @ m
    donor.save_pretrained(root / "donor")
    target.save_pretrained(root / "donor")
    base.save_pretrained(root / "base")
    base_tok.save_pretrained(root / "base")
    return root, base, base_tok, target, donor, m, t_ids, b_ids


@pytest.mark.parametrize("candidates", [None, 256, 16])  # exact, default (N > anchors here), preselected
def test_omp_transfer_reconstructs_copies_and_maps_through_the_donor(pair, candidates):
    root, base, base_tok, target, donor, m, t_ids, b_ids = pair
    model, tok = transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "donor"),
                          k=8, candidates=candidates, progress=False)
    rows = model.get_input_embeddings().weight.detach()
    base_rows = base.get_input_embeddings().weight.detach()
    special = set(target.all_special_ids)
    anchors = set(t_ids.tolist())
    for t, b in zip(t_ids.tolist(), b_ids.tolist(), strict=True):
        if t not in special:
            assert torch.equal(rows[t], base_rows[b])  # bit for bit
    others = [t for t in range(len(target)) if t not in anchors and t not in special]
    assert others, "the fixture must have target tokens the base lacks"
    expected = donor.get_input_embeddings().weight.detach()[others] @ m
    assert torch.allclose(rows[others], expected, atol=1e-4)
    assert model.zett_transfer_info.n_copied == len(anchors)


def test_anchors_are_matched_by_bytes_never_by_strings():
    bpe = train_tokenizer(vocab_size=300)  # byte-level: " a" is the string "Ġa"
    uni = train_tokenizer(vocab_size=300, kind="unigram")  # metaspace: " a" is the string "▁a"
    tb, bb = byte_vocab(uni), byte_vocab(bpe)
    t_ids, b_ids = anchor_pairs(tb, bb)
    assert len(t_ids) == len({b for b in tb if b} & {b for b in bb if b})
    assert all(tb[t] == bb[b] for t, b in zip(t_ids.tolist(), b_ids.tolist(), strict=True))
    strings_t, strings_b = uni.convert_ids_to_tokens(t_ids.tolist()), bpe.convert_ids_to_tokens(b_ids.tolist())
    assert any(a != b for a, b in zip(strings_t, strings_b, strict=True))  # same bytes, different display strings
    # a token whose display string exists on the other side with other bytes is not an anchor
    assert anchor_pairs([b"\xc3\xa9"], ["Ã©".encode()])[0].numel() == 0


def test_anchors_prefer_regular_tokens_over_byte_fallback_pieces():
    """Gemma-3 has both ``<0x2E>`` (byte fallback, barely trained) and ``.``: the anchor must be ``.``."""
    base_bytes = [None, b".", b"a", b".", b"ab", b"\xe2"]  # ids 1 and 5: byte-fallback pieces
    t_ids, b_ids = anchor_pairs([b".", b"ab", b"\xe2", b"a"], base_bytes, avoid={1, 5})
    assert dict(zip(t_ids.tolist(), b_ids.tolist(), strict=True)) == {0: 3, 1: 4, 2: 5, 3: 2}
    assert anchor_pairs([b"."], base_bytes)[1].tolist() == [1]  # without avoid: the first id


def test_byte_fallback_ids_of_a_sentencepiece_tokenizer():
    from zett import assets
    from zett.tokenizers import load_tokenizer
    from zett.tokenizers.bytes import byte_fallback_ids

    assert byte_fallback_ids(train_tokenizer(vocab_size=300)) == set()  # byte-level BPE: none
    assets.path("llama2")  # as in test_tokenizers_bytes.py (make test prefetches it)
    tok = load_tokenizer("llama2")  # Llama-2 SentencePiece with <0x00>..<0xFF> byte-fallback pieces
    ids = byte_fallback_ids(tok)
    vocab = tok.backend_tokenizer.get_vocab()
    assert len(ids) == 256 and vocab["<0x2E>"] in ids and vocab["."] not in ids and vocab["▁the"] not in ids


def test_missing_or_mismatched_donor_is_a_clear_error(pair):
    root, base, base_tok, target, *_ = pair
    with pytest.raises(TransferError, match="needs donor_model"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, progress=False)
    with pytest.raises(TransferError, match="does not use the target tokenizer"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "base"),
                 progress=False)
    with pytest.raises(TransferError, match="omp candidates must be a positive number"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "donor"),
                 candidates=0, progress=False)
    with pytest.raises(TransferError, match="cannot find model"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "nope"),
                 progress=False)
