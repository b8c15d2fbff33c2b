"""Product interactions of field embeddings: PNN's inner and outer products over field pairs, and AFN's
logarithmic transformation (products of fields raised to learned powers).

Field embeddings arrive as ``(B, F, D)``; every pair ``i < j`` is computed in one batched op (the pairs are
index tensors, no loop over fields).

References:
    - InnerProductLayer, OuterProductLayer: Qu et al., "Product-based Neural Networks for User Response
      Prediction", ICDM 2016. https://arxiv.org/abs/1611.00144
    - LogTransformLayer: Cheng et al., "Adaptive Factorization Network: Learning Adaptive-Order Feature
      Interactions", AAAI 2020. https://arxiv.org/abs/1909.03276
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .fm import pair_indices

__all__ = ["InnerProductLayer", "OuterProductLayer", "LogTransformLayer"]

KERNEL_TYPES = ("mat", "vec", "num")


class _Pairs(nn.Module):
    rows: torch.Tensor  # buffers, registered in __init__
    cols: torch.Tensor
    flat: torch.Tensor

    def __init__(self, field_size: int) -> None:
        super().__init__()
        if isinstance(field_size, bool) or not isinstance(field_size, int) or field_size < 1:
            raise ValueError(f"{type(self).__name__}: field_size must be an int >= 1, got {field_size!r}.")
        rows, cols = pair_indices(field_size)
        self.num_pairs = int(rows.numel())
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("flat", rows * field_size + cols, persistent=False)   # (i, j) in a flat F x F

    def _pq(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return emb.index_select(1, self.rows), emb.index_select(1, self.cols)     # (B, P, D) each


class InnerProductLayer(_Pairs):
    """PNN's inner products ``<e_i, e_j>`` of every field pair ``i < j``.

    Shape:
        ``(B, F, D)`` → ``(B, F·(F-1)/2)``.

    Example:
        >>> InnerProductLayer(3)(torch.ones(2, 3, 4)).tolist()[0]
        [4.0, 4.0, 4.0]
    """

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        # the upper triangle of the Gram matrix E E^T: one bmm (about 5x faster to train on CPU than
        # gathering both sides of every pair, whose backward scatters P·D values)
        return (emb @ emb.transpose(1, 2)).flatten(1).index_select(1, self.flat)


class OuterProductLayer(_Pairs):
    """PNN's kernel products of every field pair ``i < j``: ``e_i^T K_ij e_j`` with a ``D×D`` kernel per pair
    (``kernel_type="mat"``: the outer product ``e_i e_j^T`` weighted by ``K_ij``), a ``D``-vector per pair
    (``"vec"``: ``sum_d K_ij,d e_i,d e_j,d``) or a number per pair (``"num"``: ``K_ij <e_i, e_j>``).

    Args:
        field_size: number of fields ``F``.
        embedding_size: embedding width ``D``.
        kernel_type: ``"mat"``, ``"vec"`` or ``"num"`` (DeepCTR's names).

    Shape:
        ``(B, F, D)`` → ``(B, F·(F-1)/2)``.

    Example:
        >>> OuterProductLayer(3, 4, kernel_type="vec")(torch.ones(2, 3, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, field_size: int, embedding_size: int, kernel_type: str = "mat") -> None:
        super().__init__(field_size)
        if kernel_type not in KERNEL_TYPES:
            raise ValueError(f"OuterProductLayer: kernel_type must be one of {KERNEL_TYPES}, got {kernel_type!r}.")
        self.kernel_type, self.D = kernel_type, int(embedding_size)
        P, D = self.num_pairs, self.D
        shape = {"mat": (P, D, D), "vec": (P, D), "num": (P, 1)}[kernel_type]
        self.kernel = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.D)    # as nn.Linear's default for a D -> D map
        nn.init.uniform_(self.kernel, -bound, bound)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        p, q = self._pq(emb)                                              # (B, P, D)
        if self.kernel_type == "mat":
            # (B, P, 1, D) @ (P, D, D): one matmul broadcast over the batch and the pairs
            pk = torch.matmul(p.unsqueeze(2), self.kernel).squeeze(2)           # (B, P, D)
            return (pk * q).sum(dim=-1)
        if self.kernel_type == "vec":
            return (p * q * self.kernel).sum(dim=-1)
        return (p * q).sum(dim=-1) * self.kernel[:, 0]


class LogTransformLayer(nn.Module):
    """AFN's logarithmic transformation: ``ltl_hidden_size`` learned-order products of the fields,
    ``exp(sum_i w_ik · log|e_i|)`` per embedding dimension, between two batch norms.

    Each neuron ``k`` raises every field's embedding (element-wise, in absolute value, clamped at 1e-7) to the
    power ``w_ik`` and multiplies the fields, so it learns the order of its interaction.

    Args:
        field_size: number of fields ``F``.
        embedding_size: embedding width ``D`` (the batch norms are over it).
        ltl_hidden_size: number of logarithmic neurons ``H``.

    Shape:
        ``(B, F, D)`` → ``(B, D·H)``.

    Example:
        >>> LogTransformLayer(3, 4, 5)(torch.randn(8, 3, 4)).shape
        torch.Size([8, 20])
    """

    def __init__(self, field_size: int, embedding_size: int, ltl_hidden_size: int = 256) -> None:
        super().__init__()
        for arg, v in (("field_size", field_size), ("embedding_size", embedding_size),
                       ("ltl_hidden_size", ltl_hidden_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LogTransformLayer: {arg} must be an int >= 1, got {v!r}.")
        self.weight = nn.Parameter(torch.empty(field_size, ltl_hidden_size))
        self.bias = nn.Parameter(torch.empty(ltl_hidden_size))
        self.bn_in = nn.BatchNorm1d(embedding_size)
        self.bn_out = nn.BatchNorm1d(embedding_size)
        self.output_dim = embedding_size * ltl_hidden_size
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=0.1)
        nn.init.zeros_(self.bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        x = torch.log(emb.abs().clamp_min(1e-7)).transpose(1, 2)       # (B, D, F)
        x = self.bn_in(x)
        x = torch.exp(x @ self.weight + self.bias)                      # (B, D, H)
        return self.bn_out(x).flatten(1)
