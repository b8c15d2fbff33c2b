"""``deepctr_torch.models.multitask.sharedbottom`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .shared_bottom import SharedBottom

__all__ = ["SharedBottom"]
