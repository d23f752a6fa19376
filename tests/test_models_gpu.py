"""The hypernetwork and the adapter on CUDA (gpu tier: skipped without a GPU)."""

import pytest
import torch

from zett.models import ZettHypernet, adapter
from zett.models.pieces import fvt_mean
from zett.testing import tiny_llama, train_tokenizer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def untied():
    return tiny_llama(train_tokenizer(vocab_size=300), tie=False, seed=1)


def _surface(n_base, n_tokens=500, width=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n_tokens,), generator=gen)
    mask = torch.arange(width)[None] < lengths[:, None]
    ids = torch.randint(0, n_base + 256, (n_tokens, width), generator=gen)
    return torch.where(mask, ids, torch.zeros_like(ids)), mask


def test_hypernet_on_cuda_matches_cpu(untied):
    hn = ZettHypernet.from_base_model(untied)
    with torch.no_grad():
        for p in hn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    source = adapter.source_embeddings(untied)
    ids, mask = _surface(source.shape[0])
    with torch.no_grad():
        cpu = hn(ids, mask, source)
        gpu_hn = hn.to("cuda")
        gpu = gpu_hn(ids.cuda(), mask.cuda(), source.cuda())
    assert gpu.input_embeddings.is_cuda
    torch.testing.assert_close(gpu.input_embeddings.cpu(), cpu.input_embeddings, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(gpu.output_embeddings.cpu(), cpu.output_embeddings, atol=2e-4, rtol=1e-3)


def test_untrained_hypernet_on_cuda_is_fvt(untied):
    hn = ZettHypernet.from_base_model(untied).to("cuda")
    source = adapter.source_embeddings(untied).cuda()
    ids, mask = _surface(source.shape[0])
    with torch.no_grad():
        out = hn(ids.cuda(), mask.cuda(), source)
    assert torch.equal(out.input_embeddings, fvt_mean(source, ids.cuda(), mask.cuda())[:, :32])


def test_adapter_hidden_states_on_cuda(untied):
    model = tiny_llama(train_tokenizer(vocab_size=300), tie=False, seed=1).cuda()
    ids = torch.randint(0, 300, (2, 8), device="cuda")
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        hidden = adapter.hidden_states(model, adapter.input_embeddings(model)[ids])
        got = adapter.logits(model, hidden, adapter.output_embeddings(model))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_transfer_with_hypernet_on_cuda(untied):
    zett_transfer = pytest.importorskip("zett.transfer")
    base_tok = train_tokenizer(vocab_size=300)
    target = train_tokenizer(vocab_size=400, kind="unigram")
    hn = ZettHypernet.from_base_model(untied)
    cpu_model, _ = zett_transfer.transfer(untied, target, "hypernet", hn, base_tokenizer=base_tok, progress=False)
    gpu_model, _ = zett_transfer.transfer(untied, target, "hypernet", hn, base_tokenizer=base_tok, progress=False,
                                          device="cuda")
    assert adapter.input_embeddings(gpu_model).device.type == "cpu"       # the model stays where the base was
    torch.testing.assert_close(adapter.input_embeddings(gpu_model), adapter.input_embeddings(cpu_model),
                               atol=1e-6, rtol=1e-5)
