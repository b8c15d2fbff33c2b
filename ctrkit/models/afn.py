"""``deepctr_torch.models.afn`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.afn import AFN

__all__ = ["AFN"]
