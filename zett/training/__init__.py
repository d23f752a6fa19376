"""Hypernetwork training: Lightning module, data module, collators, loss terms, schedule.

    from zett.training import train            # train(cfg) with a composed Hydra config (configs/train.yaml)
"""

from zett.training.alignment import align_batch, token_table
from zett.training.chunked_ce import IGNORE_INDEX, chunked_cross_entropy
from zett.training.distill import AlignedKLLoss, ALMLoss, LatentLoss
from zett.training.losses import CausalLMLoss, IdentityLoss, LexicalLoss, LossTerm, MaskedLMLoss
from zett.training.schedule import JoinedWarmupCosine, build_scheduler
from zett.training.train import CONFIG_DIR, train

__all__ = [
    "ALMLoss", "AlignedKLLoss", "CONFIG_DIR", "IGNORE_INDEX", "CausalLMLoss", "IdentityLoss", "JoinedWarmupCosine",
    "LatentLoss", "LexicalLoss", "LossTerm", "MaskedLMLoss", "align_batch", "build_scheduler",
    "chunked_cross_entropy", "token_table", "train",
]
