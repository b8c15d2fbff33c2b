"""``deepctr_torch.models.din`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.din import DIN

__all__ = ["DIN"]
