"""``deepctr_torch.models.onn`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.onn import ONN

__all__ = ["ONN"]
