"""``deepctr_torch.models.pnn`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.pnn import PNN

__all__ = ["PNN"]
