import os

# No network anywhere in the test suite: models, tokenizers and corpora come from zett's offline assets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

# -- the asset guard: tests never fetch assets -------------------------------------------------------------------
# `make test-assets` (run by `make test` first) fetches every asset the suite uses. A test that would still download
# or build an asset in the cache the session started with, download from anywhere but localhost, or run the
# machine's apt fails with the command to run; a slow one is skipped instead when run by hand (under `make test`,
# ZETT_TEST_ASSETS_READY=1, it fails: the target missed an asset; but a missing licence-gated asset is always a skip,
# `make test GATED_TEST_ASSETS=` declines its licence). Fetching into a test's own ZETT_HOME with fakes (a
# localhost server, a fake apt first on PATH or a patched subprocess.run) is fine. Subprocesses are not guarded.

_CURRENT: dict = {"item": None}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _CURRENT["item"] = item  # module and session fixtures are set up inside the first test's setup: guarded too


def _refuse(what: str, asset: str = "", gated: bool = False) -> None:
    item = _CURRENT["item"]
    one = (f"`zett-assets fetch {asset} --accept-licence` for this one, accepting its licence" if gated
           else f"`zett-assets fetch {asset}` for this one" if asset else "all of them")
    msg = (f"{item.nodeid if item else 'collection'} {what}. Tests never fetch assets: run `make test-assets` "
           f"first ({one}), or give the test its own ZETT_HOME with fakes (a localhost server, a fake apt).")
    slow = item is not None and item.get_closest_marker("slow")
    # a licence-gated asset is skipped even under `make test`: accepting its licence is the user's choice
    if slow and (gated or os.environ.get("ZETT_TEST_ASSETS_READY") != "1"):
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


def _install_asset_guard() -> None:
    import shutil
    import subprocess
    import urllib.parse

    from zett.assets import apt, store

    user_home = store.home().resolve()
    real_materialise, real_open_url, real_apt_run = store._materialise, store._open_url, apt.run
    real_subprocess_run = subprocess.run
    system_apt = {t: shutil.which(t) for t in ("apt-get", "apt-cache")}

    def materialise(asset, root, accept_licence):
        if store.home().resolve() == user_home:
            _refuse(f"would fetch asset {asset.name!r} into ZETT_HOME={user_home}", asset.name,
                    gated=bool(asset.licence_terms))
        return real_materialise(asset, root, accept_licence)

    def open_url(request):
        if urllib.parse.urlsplit(request.full_url).hostname not in {"127.0.0.1", "localhost", "::1"}:
            _refuse(f"would download {request.full_url}")
        return real_open_url(request)

    def apt_run(tool, args, **kwargs):
        if subprocess.run is real_subprocess_run and shutil.which(tool) == system_apt.get(tool):
            _refuse(f"would run the machine's {tool} ({' '.join(args)}) for asset {kwargs.get('asset')!r}",
                    kwargs.get("asset", ""))
        return real_apt_run(tool, args, **kwargs)

    store._materialise, store._open_url, apt.run = materialise, open_url, apt_run


_install_asset_guard()


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
