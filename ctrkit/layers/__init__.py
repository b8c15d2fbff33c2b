"""Reusable layers: the embedding layer that owns every table, MLPs, towers, mixtures of experts, the
feature-interaction layers of the single-task CTR models and the transformer blocks of the sequential models.

Modules by concern: ``core`` (MLPs, towers, activations), ``embedding`` (with ``numeric``: the numeric
features' embeddings), ``projection`` (the first layer over the model input; ``fold`` behind it), ``moe``,
``linear`` (the linear / wide part), ``fm`` (FM, NFM's bi-interaction), ``interaction`` (FiBiNET, ONN),
``cross`` (CrossNet, CrossNetMix, GDCN's GatedCrossNet, CIN), ``gating`` (FinalMLP's feature gates and bilinear
fusion, MaskNet's MaskBlocks), ``attention`` (AutoInt, AFM, DIN), ``product`` (PNN's inner / outer products,
AFN's logarithmic layer), ``conv`` (CCPM), ``recurrent`` (DIEN) and ``transformer`` (SASRec / FAME blocks).
"""
from .attention import AFMLayer, AttentionSequencePoolingLayer, Dice, InteractingLayer, LocalActivationUnit
from .conv import ConvLayer, KMaxPooling
from .core import ACTIVATIONS, MLP, ParallelMLP, Towers, get_activation
from .cross import CIN, CrossNet, CrossNetMix, GatedCrossNet
from .embedding import EmbeddingLayer
from .fm import FM, BiInteractionPooling
from .gating import BilinearFusion, FeatureGate, FieldLayerNorm, MaskBlock, ParallelMaskBlocks
from .interaction import BilinearInteraction, FieldAwareProduct, SENETLayer, pair_indices
from .linear import FeatureSubset, LinearLogit
from .moe import MixtureOfExperts
from .numeric import NumericEmbeddings
from .product import InnerProductLayer, LogTransformLayer, OuterProductLayer
from .projection import InputProjection, ModelInput
from .recurrent import AttentionalGRU, InterestEvolution, InterestExtractor, last_valid
from .transformer import (
                          CausalSelfAttention,
                          FeedForward,
                          PositionalEmbedding,
                          TransformerBlock,
                          causal_mask,
                          scaled_embedding,
)

__all__ = ["EmbeddingLayer", "NumericEmbeddings", "InputProjection", "ModelInput", "MLP", "ParallelMLP", "Towers",
           "MixtureOfExperts",
           "get_activation", "ACTIVATIONS", "FeatureSubset", "LinearLogit", "FM", "CrossNet", "CrossNetMix",
           "CIN", "InteractingLayer", "Dice", "LocalActivationUnit", "AttentionSequencePoolingLayer",
           "PositionalEmbedding", "CausalSelfAttention", "FeedForward", "TransformerBlock", "causal_mask",
           "scaled_embedding", "BiInteractionPooling", "AFMLayer", "InnerProductLayer", "OuterProductLayer",
           "LogTransformLayer", "ConvLayer", "KMaxPooling", "SENETLayer", "BilinearInteraction", "FieldAwareProduct",
           "pair_indices", "AttentionalGRU", "InterestExtractor", "InterestEvolution", "last_valid", "GatedCrossNet",
           "FeatureGate", "BilinearFusion", "FieldLayerNorm", "MaskBlock", "ParallelMaskBlocks"]
