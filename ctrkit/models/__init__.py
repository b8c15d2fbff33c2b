"""The model zoo. Every model is registered (``ctrkit.registry``) for save/load, compare and the tests."""
from .base import BaseModel
from .multitask import ESMM, MMOE, PLE, MMoE, OMoE, SharedBottom
from .ranking import (
                      AFM,
                      AFN,
                      CCPM,
                      DCN,
                      DIEN,
                      DIFM,
                      DIN,
                      DNN,
                      FM,
                      GDCN,
                      IFM,
                      LR,
                      MLR,
                      NFM,
                      ONN,
                      PNN,
                      WDL,
                      AutoInt,
                      DCNMix,
                      DeepFM,
                      FiBiNET,
                      FinalMLP,
                      MaskNet,
                      xDeepFM,
)
from .sequential import FAME, SASRec

__all__ = ["BaseModel", "SharedBottom", "OMoE", "MMoE", "MMOE", "PLE", "ESMM", "DNN", "LR", "FM", "WDL", "DeepFM",
           "DCN", "DCNMix", "xDeepFM", "AutoInt", "DIN", "NFM", "PNN", "AFM", "AFN", "CCPM", "DIFM", "FiBiNET", "IFM",
           "MLR", "ONN", "DIEN", "FinalMLP", "GDCN", "MaskNet", "SASRec", "FAME"]
