"""ctrkit: click-through-rate prediction and multi-task ranking in PyTorch.

Importing ctrkit has no side effects: no network, no RNG seeding, no printing.
"""
from ._version import __version__
from .callbacks import (CSVLogger, EarlyStopping, History, LearningRateScheduler, LRScheduler, ModelCheckpoint,
                        ReduceLROnPlateau, TerminateOnNaN)
from .exceptions import CtrkitError, DataValidationError, ModelFormatError, NotFittedError, SchemaError
from .features import DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names
from .io import load_model, save_model
from .models import DNN, MMOE, BaseModel, MMoE, OMoE, SharedBottom
from .preprocessing import FeatureEncoder

__all__ = [
    "__version__",
    "SparseFeat", "DenseFeat", "VarLenSparseFeat", "get_feature_names",
    "FeatureEncoder",
    "BaseModel", "SharedBottom", "OMoE", "MMoE", "MMOE", "DNN",
    "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "LRScheduler", "ReduceLROnPlateau",
    "TerminateOnNaN", "CSVLogger",
    "load_model", "save_model",
    "CtrkitError", "SchemaError", "NotFittedError", "DataValidationError", "ModelFormatError",
]
