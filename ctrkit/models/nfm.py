"""``deepctr_torch.models.nfm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.nfm import NFM

__all__ = ["NFM"]
