"""OMP transplantation: exact recovery, exact anchor copies, byte-level anchors, donor checks."""

from __future__ import annotations

import pytest
import torch

from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer
from zett.tokenizers import byte_vocab
from zett.transfer import TransferError, transfer
from zett.transfer.omp import anchor_pairs, omp


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


def test_omp_transfer_reconstructs_copies_and_maps_through_the_donor(pair):
    root, base, base_tok, target, donor, m, t_ids, b_ids = pair
    model, tok = transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "donor"),
                          k=8, progress=False)
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


def test_missing_or_mismatched_donor_is_a_clear_error(pair):
    root, base, base_tok, target, *_ = pair
    with pytest.raises(TransferError, match="needs donor_model"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, progress=False)
    with pytest.raises(TransferError, match="does not use the target tokenizer"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "base"),
                 progress=False)
    with pytest.raises(TransferError, match="cannot find model"):
        transfer(base, target, method="omp", base_tokenizer=base_tok, donor_model=str(root / "nope"),
                 progress=False)
