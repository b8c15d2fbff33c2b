"""``deepctr_torch.models.dcnmix`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.dcnmix import DCNMix

__all__ = ["DCNMix"]
