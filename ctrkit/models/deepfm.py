"""``deepctr_torch.models.deepfm`` under ctrkit.

A thin re-export so that DeepCTR-Torch imports run with only the package name changed
(see docs/deepctr_torch.md).
"""
from .ranking.deepfm import DeepFM

__all__ = ["DeepFM"]
