"""Multi-task models."""
from .esmm import ESMM
from .mmoe import MMOE, MMoE
from .omoe import OMoE
from .ple import PLE
from .shared_bottom import SharedBottom

__all__ = ["SharedBottom", "OMoE", "MMoE", "MMOE", "PLE", "ESMM"]
