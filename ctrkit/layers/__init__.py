"""Reusable layers: the embedding layer that owns every table, MLPs, towers, mixtures of experts, and the
feature-interaction layers of the single-task CTR models."""
from .core import ACTIVATIONS, MLP, Dense, ParallelMLP, Towers, get_activation, glorot_uniform_
from .embedding import EmbeddingLayer
from .interaction import (CIN, FM, AttentionSequencePoolingLayer, CrossNet, CrossNetMix, Dice, FeatureSubset,
                          InteractingLayer, LinearLogit, LocalActivationUnit)
from .fold import FoldedInputProjection
from .moe import MixtureOfExperts

__all__ = ["EmbeddingLayer", "Dense", "glorot_uniform_", "FoldedInputProjection", "MLP", "ParallelMLP", "Towers", "MixtureOfExperts", "get_activation", "ACTIVATIONS",
           "FeatureSubset", "LinearLogit", "FM", "CrossNet", "CrossNetMix", "CIN", "InteractingLayer", "Dice",
           "LocalActivationUnit", "AttentionSequencePoolingLayer"]
