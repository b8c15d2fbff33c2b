"""``deepctr_torch.models.mlr`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.mlr import MLR

__all__ = ["MLR"]
