"""Multi-task models."""
from .mmoe import MMOE, MMoE
from .omoe import OMoE
from .shared_bottom import SharedBottom

__all__ = ["SharedBottom", "OMoE", "MMoE", "MMOE"]
