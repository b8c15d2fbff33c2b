"""``deepctr_torch.models.dcn`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.dcn import DCN

__all__ = ["DCN"]
