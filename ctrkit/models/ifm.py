"""``deepctr_torch.models.ifm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.ifm import IFM

__all__ = ["IFM"]
