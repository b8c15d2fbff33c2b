"""``deepctr_torch.models.afm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.afm import AFM

__all__ = ["AFM"]
