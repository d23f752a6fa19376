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
