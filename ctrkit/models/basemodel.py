"""``deepctr_torch.models.basemodel`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .base import BaseModel

__all__ = ["BaseModel"]
