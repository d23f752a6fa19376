"""FVT over every piece and one byte-fallback contract in training, transfer and evaluation (tiny models)."""

import pytest
import torch

import zett.transfer
from zett.models import HypernetFormatError, ZettHypernet, ZettHypernetConfig, adapter
from zett.testing import tiny_llama, train_tokenizer
from zett.tokenizers import surface_forms

LONG = ["internationalisation", "misunderstandings", "counterrevolutionaries", "electroencephalograph"]


@pytest.fixture(scope="module")
def base_tok():
    return train_tokenizer(vocab_size=280)


@pytest.fixture(scope="module")
def target_tok():
    from zett.testing import SAMPLE_TEXTS

    return train_tokenizer(list(SAMPLE_TEXTS) + LONG * 50, vocab_size=600, kind="unigram")


def _perturbed(base, **overrides):
    hn = ZettHypernet.from_base_model(base, **overrides)
    with torch.no_grad():
        for p in hn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return hn.eval()


def test_fvt_averages_every_piece_even_when_the_hypernetwork_input_is_truncated(base_tok, target_tok):
    base = tiny_llama(base_tok)
    model, tok = zett.transfer(base, target_tok, "fvt", base_tokenizer=base_tok, max_pieces=2, progress=False)
    full = surface_forms(tok, base_tok, max_pieces=64)
    assert surface_forms(tok, base_tok, max_pieces=2).n_truncated > 10  # the case the fix is about
    e_base, e_new = adapter.input_embeddings(base), adapter.input_embeddings(model)
    checked = 0
    for i in torch.nonzero(full.lengths > 2).flatten().tolist():
        if full.special[i] >= 0:
            continue
        pieces = full.ids[i][full.mask[i]]
        torch.testing.assert_close(e_new[i], e_base[pieces].mean(0), atol=1e-6, rtol=1e-5)
        checked += 1
    assert checked > 10
    # an untrained residual hypernetwork of 2 pieces is still exactly this FVT
    hn = ZettHypernet.from_base_model(base, max_pieces=2)
    hn_model, _ = zett.transfer(base, target_tok, "hypernet", hn, base_tokenizer=base_tok, progress=False)
    assert torch.equal(adapter.input_embeddings(hn_model), e_new)


def test_training_and_transfer_predict_the_same_rows_on_a_padded_base():
    """A base whose embedding matrix has more rows than its tokenizer has tokens, and a target with a byte the base
    cannot spell: training (the validation collator + module.predict) and transfer feed the same fallback rows."""
    from zett.training.collator import FixedTokenizerCollator
    from zett.training.losses import CausalLMLoss
    from zett.training.module import ZettTrainingModule

    base_tok = train_tokenizer(["plain ascii text only, " * 20], vocab_size=120, kind="wordpiece")
    target_tok = train_tokenizer(["naïve café à propos über straße " * 20], vocab_size=200, kind="bpe")
    base = tiny_llama(base_tok, vocab_size=len(base_tok) + 37)
    n_rows = adapter.input_embeddings(base).shape[0]
    hn = _perturbed(base)
    model, tok = zett.transfer(base, target_tok, "hypernet", hn, base_tokenizer=base_tok, progress=False)

    col = FixedTokenizerCollator(tok, base_tok, block_size=16, max_pieces=hn.config.max_pieces,
                                 n_base_rows=n_rows)
    fallback = (col.sf.ids >= n_rows) & col.sf.mask
    assert fallback.any() and (col.sf.ids[col.sf.mask] < n_rows + 256).all()
    assert not ((col.sf.ids >= len(base_tok)) & (col.sf.ids < n_rows) & col.sf.mask).any()  # no padding rows
    batch = col(["naïve café"])
    module = ZettTrainingModule(base, hn, {"clm": CausalLMLoss()})
    with torch.no_grad():
        e_in, _, _ = module.predict(batch["surface_ids"], batch["surface_mask"], batch["special"],
                                    batch["buckets"], batch["overflow_ids"], batch["overflow_mask"])
    order = col.selection.ids  # row r of the batch is vocabulary id order[r]
    torch.testing.assert_close(e_in, adapter.input_embeddings(model)[order], atol=1e-6, rtol=1e-5)


def test_exports_of_an_older_format_are_refused(tmp_path, base_tok):
    import json

    hn = ZettHypernet.from_base_model(tiny_llama(base_tok), hidden_size=32, num_layers=1)
    hn.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["format_version"] == 2
    assert ZettHypernet.from_pretrained(tmp_path).config.format_version == 2
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["format_version"]  # what every export before format versions looks like
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert ZettHypernetConfig.from_pretrained(tmp_path).format_version == 1
    with pytest.raises(HypernetFormatError, match="format 1"):
        ZettHypernet.from_pretrained(tmp_path)
    with pytest.raises(zett.transfer.TransferError, match="format 1"):
        zett.transfer.load_hypernet(tmp_path)
