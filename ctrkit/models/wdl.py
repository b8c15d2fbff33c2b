"""``deepctr_torch.models.wdl`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.wdl import WDL

__all__ = ["WDL"]
