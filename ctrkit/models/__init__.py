"""The model zoo. Every model is registered (``ctrkit.registry``) for save/load, compare and the tests."""
from .base import BaseModel
from .multitask import MMOE, MMoE, OMoE, SharedBottom
from .ranking import DNN

__all__ = ["BaseModel", "SharedBottom", "OMoE", "MMoE", "MMOE", "DNN"]
