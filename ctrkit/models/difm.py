"""``deepctr_torch.models.difm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.difm import DIFM

__all__ = ["DIFM"]
