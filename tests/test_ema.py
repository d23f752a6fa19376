"""The exponential moving average of the hypernetwork's weights (``callbacks.ema``)."""

from __future__ import annotations

import pytest
import torch


class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hypernet = torch.nn.Linear(3, 2)
        self.device = torch.device("cpu")


class _Trainer:
    global_step = 0


def test_ema_averages_optimizer_steps_and_swaps_for_validation():
    from zett.training.ema import HypernetEMA

    module, trainer, ema = _Module(), _Trainer(), HypernetEMA(decay=0.5)
    w = module.hypernet.weight
    for step in range(3):
        with torch.no_grad():
            w.fill_(float(step + 1))
        trainer.global_step = step + 1
        ema.on_train_batch_end(trainer, module, None, None, 0)
        ema.on_train_batch_end(trainer, module, None, None, 1)  # an accumulation batch: no second update
    # first update copies (1), then 0.5 * 1 + 0.5 * 2 = 1.5, then 0.5 * 1.5 + 0.5 * 3 = 2.25
    assert torch.allclose(ema.shadow["weight"], torch.full_like(w, 2.25))
    ema.on_validation_epoch_start(trainer, module)
    assert torch.allclose(w, torch.full_like(w, 2.25))  # validation sees the average
    ema.on_validation_epoch_end(trainer, module)
    assert torch.allclose(w, torch.full_like(w, 3.0))  # training continues from its own weights
    restored = HypernetEMA(decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.shadow["weight"], ema.shadow["weight"]) and restored._step == 3
    ema.on_train_end(trainer, module)
    assert torch.allclose(w, torch.full_like(w, 2.25))  # what the run exports
    with pytest.raises(ValueError, match="callbacks.ema.decay=1"):
        HypernetEMA(decay=1)


def test_debug_run_with_ema_exports_the_average(tmp_path):
    from test_distill_training import compose_cfg

    from zett.models import ZettHypernet
    from zett.training.train import params_digest, train

    ema = "+callbacks.ema={_target_: zett.training.ema.HypernetEMA, decay: 0.5}"
    with_ema = train(compose_cfg("experiment=debug", "trainer.max_steps=4", ema, f"run_dir={tmp_path / 'a'}"))
    plain = train(compose_cfg("experiment=debug", "trainer.max_steps=4", f"run_dir={tmp_path / 'b'}"))
    exported = ZettHypernet.from_pretrained(str(tmp_path / "a" / "hypernet"))
    assert params_digest(exported) == with_ema["hypernet_digest"] != plain["hypernet_digest"]
