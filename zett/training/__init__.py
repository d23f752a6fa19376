"""Hypernetwork training: Lightning module, data module, collators, loss terms, schedule.

    from zett.training import train            # train(cfg) with a composed Hydra config (configs/train.yaml)
"""

from zett.training.chunked_ce import IGNORE_INDEX, chunked_cross_entropy
from zett.training.losses import CausalLMLoss, IdentityLoss, LexicalLoss, LossTerm, MaskedLMLoss
from zett.training.schedule import JoinedWarmupCosine, build_scheduler
from zett.training.train import CONFIG_DIR, train

__all__ = [
    "CONFIG_DIR", "IGNORE_INDEX", "CausalLMLoss", "IdentityLoss", "JoinedWarmupCosine", "LexicalLoss", "LossTerm",
    "MaskedLMLoss", "build_scheduler", "chunked_cross_entropy", "train",
]
