"""``deepctr_torch.models.xdeepfm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.xdeepfm import xDeepFM

__all__ = ["xDeepFM"]
