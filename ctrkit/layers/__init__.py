"""Reusable layers: the embedding layer that owns every table, MLPs, towers, mixtures of experts, and the
feature-interaction layers of the single-task CTR models."""
from .core import ACTIVATIONS, MLP, ParallelMLP, Towers, get_activation
from .embedding import EmbeddingLayer
from .interaction import (CIN, FM, AttentionSequencePoolingLayer, CrossNet, CrossNetMix, Dice, FeatureSubset,
                          InteractingLayer, LinearLogit, LocalActivationUnit)
from .moe import MixtureOfExperts
from .projection import InputProjection, ModelInput

__all__ = ["EmbeddingLayer", "InputProjection", "ModelInput", "MLP", "ParallelMLP", "Towers", "MixtureOfExperts",
           "get_activation", "ACTIVATIONS", "FeatureSubset", "LinearLogit", "FM", "CrossNet", "CrossNetMix", "CIN", "InteractingLayer", "Dice",
           "LocalActivationUnit", "AttentionSequencePoolingLayer"]
