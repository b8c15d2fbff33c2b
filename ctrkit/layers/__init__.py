"""Reusable layers: the embedding layer that owns every table, MLPs, towers and mixtures of experts."""
from .core import ACTIVATIONS, MLP, ParallelMLP, Towers, get_activation
from .embedding import EmbeddingLayer
from .moe import MixtureOfExperts

__all__ = ["EmbeddingLayer", "MLP", "ParallelMLP", "Towers", "MixtureOfExperts", "get_activation", "ACTIVATIONS"]
