"""``deepctr_torch.models.autoint`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.autoint import AutoInt

__all__ = ["AutoInt"]
