"""Single-task CTR models."""
from .afm import AFM
from .afn import AFN
from .autoint import AutoInt
from .ccpm import CCPM
from .dcn import DCN
from .dcnmix import DCNMix
from .deepfm import DeepFM
from .dien import DIEN
from .difm import DIFM
from .din import DIN
from .dnn import DNN
from .fibinet import FiBiNET
from .finalmlp import FinalMLP
from .fm import FM
from .gdcn import GDCN
from .ifm import IFM
from .lr import LR
from .masknet import MaskNet
from .mlr import MLR
from .nfm import NFM
from .onn import ONN
from .pnn import PNN
from .wdl import WDL
from .xdeepfm import xDeepFM

__all__ = ["DNN", "LR", "FM", "WDL", "DeepFM", "DCN", "DCNMix", "xDeepFM", "AutoInt", "DIN", "NFM", "PNN", "AFM", "AFN",
           "CCPM", "DIFM", "FiBiNET", "IFM", "MLR", "ONN", "DIEN",
           "FinalMLP", "GDCN", "MaskNet"]
