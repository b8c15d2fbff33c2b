"""ctrkit: click-through-rate prediction and multi-task ranking in PyTorch.

Importing ctrkit has no side effects (no network, no RNG seeding, no printing) and is cheap: the public names
below are loaded on first use (PEP 562), so ``import ctrkit`` does not import torch, pandas or scikit-learn
until a model, encoder or dataset is touched.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "ctrkit.features": ["SparseFeat", "DenseFeat", "NumericEmbedding", "VarLenSparseFeat", "get_feature_names"],
    "ctrkit.preprocessing": ["FeatureEncoder"],
    "ctrkit.models": ["BaseModel", "SharedBottom", "OMoE", "MMoE", "MMOE", "PLE", "ESMM", "DNN", "LR", "FM", "WDL",
                      "DeepFM", "DCN", "DCNMix", "xDeepFM", "AutoInt", "DIN", "NFM", "PNN", "AFM", "AFN", "CCPM",
                      "DIFM", "FiBiNET", "IFM", "MLR", "ONN", "DIEN", "FinalMLP", "GDCN", "MaskNet", "SASRec",
                      "FAME"],
    "ctrkit.callbacks": ["History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "LRScheduler",
                         "ReduceLROnPlateau", "TerminateOnNaN", "WeightAveraging", "CSVLogger", "BackupAndRestore"],
    "ctrkit.io": ["load_model", "save_model", "save_checkpoint", "load_checkpoint"],
    "ctrkit.export": ["export_onnx", "export_torch"],
    "ctrkit.exceptions": ["CtrkitError", "SchemaError", "NotFittedError", "DataValidationError", "ModelFormatError"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_WHERE]


_SUBMODULES = ("data", "distributed", "datasets", "viz")  # ``ctrkit.data.open(...)`` after ``import ctrkit``


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"ctrkit.{name}")
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'ctrkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .callbacks import (  # noqa: F401
        BackupAndRestore,
        CSVLogger,
        EarlyStopping,
        History,
        LearningRateScheduler,
        LRScheduler,
        ModelCheckpoint,
        ReduceLROnPlateau,
        TerminateOnNaN,
        WeightAveraging,
    )
    from .exceptions import CtrkitError, DataValidationError, ModelFormatError, NotFittedError, SchemaError  # noqa: F401
    from .export import export_onnx, export_torch  # noqa: F401
    from .features import DenseFeat, NumericEmbedding, SparseFeat, VarLenSparseFeat, get_feature_names  # noqa: F401
    from .io import load_checkpoint, load_model, save_checkpoint, save_model  # noqa: F401
    from .models import (  # noqa: F401
        AFM,
        AFN,
        CCPM,
        DCN,
        DIEN,
        DIFM,
        DIN,
        DNN,
        ESMM,
        FAME,
        FM,
        GDCN,
        IFM,
        LR,
        MLR,
        MMOE,
        NFM,
        ONN,
        PLE,
        PNN,
        WDL,
        AutoInt,
        BaseModel,
        DCNMix,
        DeepFM,
        FiBiNET,
        FinalMLP,
        MaskNet,
        MMoE,
        OMoE,
        SASRec,
        SharedBottom,
        xDeepFM,
    )
    from .preprocessing import FeatureEncoder  # noqa: F401
