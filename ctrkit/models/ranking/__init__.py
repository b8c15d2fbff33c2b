"""Single-task CTR models."""
from .autoint import AutoInt
from .dcn import DCN
from .dcnmix import DCNMix
from .deepfm import DeepFM
from .din import DIN
from .dnn import DNN
from .fm import FM
from .lr import LR
from .wdl import WDL
from .xdeepfm import xDeepFM

__all__ = ["DNN", "LR", "FM", "WDL", "DeepFM", "DCN", "DCNMix", "xDeepFM", "AutoInt", "DIN"]
