"""Factorization-machine interaction of field embeddings.

Field embeddings arrive as ``(B, F, D)`` (one row per field, one embedding width ``D``); the output is a raw
logit (no sigmoid).

Reference:
    Rendle, "Factorization Machines", ICDM 2010. https://doi.org/10.1109/ICDM.2010.127
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FM"]


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
