"""``deepctr_torch.models.fibinet`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.fibinet import FiBiNET

__all__ = ["FiBiNET"]
