"""Factorization-machine interactions of field embeddings: the FM term and NFM's bi-interaction pooling.

Field embeddings arrive as ``(B, F, D)`` (one row per field, one embedding width ``D``); the FM term is a raw
logit (no sigmoid).

References:
    - FM: Rendle, "Factorization Machines", ICDM 2010. https://doi.org/10.1109/ICDM.2010.127
    - BiInteractionPooling: He & Chua, "Neural Factorization Machines for Sparse Predictive Analytics",
      SIGIR 2017. https://arxiv.org/abs/1708.05027
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FM", "BiInteractionPooling", "pair_indices"]


class FM(nn.Module):
    """Second-order factorization machine term ``sum_{i<j} <e_i, e_j>``, in O(F·D).

    Shape:
        ``(B, F, D)`` → ``(B,)``.

    Example:
        >>> e = torch.ones(2, 3, 4)
        >>> FM()(e).tolist()          # 3 pairs x <1, 1> over 4 dims
        [12.0, 12.0]
    """

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        square_of_sum = emb.sum(dim=1).pow(2)
        sum_of_square = emb.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)


class BiInteractionPooling(nn.Module):
    """NFM's bi-interaction pooling: the element-wise sum over field pairs ``sum_{i<j} e_i ⊙ e_j``, in O(F·D)
    as ``0.5 * ((sum_i e_i)^2 - sum_i e_i^2)`` (the FM term before its sum over dimensions).

    Reference: He & Chua, "Neural Factorization Machines for Sparse Predictive Analytics", SIGIR 2017.
    https://arxiv.org/abs/1708.05027

    Shape:
        ``(B, F, D)`` → ``(B, D)``.

    Example:
        >>> BiInteractionPooling()(torch.ones(2, 3, 4)).tolist()[0]     # 3 pairs of 1 ⊙ 1
        [3.0, 3.0, 3.0, 3.0]
    """

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return 0.5 * (emb.sum(dim=1).pow(2) - emb.pow(2).sum(dim=1))


def pair_indices(field_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)``: the ``F·(F-1)/2`` field pairs ``i < j`` in row-major order, as index tensors."""
    rows, cols = torch.triu_indices(field_size, field_size, offset=1)
    return rows, cols
