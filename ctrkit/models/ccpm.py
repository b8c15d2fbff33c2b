"""``deepctr_torch.models.ccpm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.ccpm import CCPM

__all__ = ["CCPM"]
