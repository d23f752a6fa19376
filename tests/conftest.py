import os

# No network anywhere in the test suite: models, tokenizers and corpora come from zett's offline assets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def bpe_tokenizer():
    from zett.testing import train_tokenizer

    return train_tokenizer(vocab_size=300, kind="bpe")


@pytest.fixture(scope="session")
def wordpiece_tokenizer():
    from zett.testing import train_tokenizer

    return train_tokenizer(vocab_size=300, kind="wordpiece")


@pytest.fixture
def tiny_llama(bpe_tokenizer):
    from zett.testing import tiny_llama

    return tiny_llama(bpe_tokenizer)


@pytest.fixture
def tiny_bert(wordpiece_tokenizer):
    from zett.testing import tiny_bert

    return tiny_bert(wordpiece_tokenizer)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny random Llama and its tokenizer saved as a Hugging Face directory (what base_model.path= points at)."""
    from zett.testing import tiny_llama, train_tokenizer

    tok = train_tokenizer(vocab_size=300)
    path = tmp_path_factory.mktemp("base")
    tiny_llama(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_llama_bpe(bpe_tokenizer):
    """(tiny Llama, its byte-level BPE tokenizer), shared by a test module's training-step tests."""
    from zett.testing import tiny_llama

    return tiny_llama(bpe_tokenizer), bpe_tokenizer


class _StepTrainer:
    """The few trainer attributes ``training_step`` reads (no logging)."""

    world_size, global_step, global_rank, log_every_n_steps = 1, 0, 0, 10


@pytest.fixture
def step_module():
    """Factory of a ``ZettTrainingModule`` used outside a Trainer (CLM + lexical losses, a tiny hypernetwork, logging
    off): ``step_module(model, hypernet={...}, perturb=0.05, **module_kwargs)``. ``perturb`` adds seeded noise to the
    hypernetwork's trainable weights so that its correction (not only the FVT residual) shapes the loss."""
    import torch

    from zett.models import ZettHypernet
    from zett.training.losses import CausalLMLoss, LexicalLoss
    from zett.training.module import ZettTrainingModule

    def make(model, hypernet=None, perturb=0.0, **kwargs):
        hn = ZettHypernet.from_base_model(model, **{"hidden_size": 16, "num_layers": 1, "num_heads": 2, "seed": 0,
                                                    **(hypernet or {})})
        module = ZettTrainingModule(model, hn, {"clm": CausalLMLoss(), "lexical": LexicalLoss(0.5)},
                                    scheduler={"learning_rates": [1e-3], "warmup_steps": [1], "total_steps": 10},
                                    **kwargs)
        if perturb:
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in module.hypernet.parameters():
                    if p.requires_grad:
                        p.add_(perturb * torch.randn(p.shape, generator=g))
        module._trainer = _StepTrainer()
        module.log = module.log_dict = lambda *a, **k: None
        return module

    return make
