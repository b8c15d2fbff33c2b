"""Single-task CTR models."""
from .autoint import AutoInt
from .dcn import DCN
from .dcnmix import DCNMix
from .deepfm import DeepFM
from .dien import DIEN
from .din import DIN
from .dnn import DNN
from .fibinet import FiBiNET
from .fm import FM
from .ifm import IFM
from .lr import LR
from .mlr import MLR
from .onn import ONN
from .wdl import WDL
from .xdeepfm import xDeepFM

__all__ = ["DNN", "LR", "FM", "WDL", "DeepFM", "DCN", "DCNMix", "xDeepFM", "AutoInt", "DIN", "FiBiNET", "IFM",
           "MLR", "ONN", "DIEN"]
