"""Single-task CTR models."""
from .dnn import DNN

__all__ = ["DNN"]
