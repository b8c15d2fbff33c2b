"""Pairwise field-interaction layers: FiBiNET's squeeze-excitation and bilinear interaction, and ONN's
operation-aware (field-aware) products.

Field embeddings arrive as ``(B, F, D)``; every pair ``i < j`` of fields is computed in one batched op (the
pairs are gathered with index tensors, never looped over in Python).

References:
    - SENETLayer, BilinearInteraction: Huang et al., "FiBiNET: Combining Feature Importance and Bilinear
      feature Interaction for Click-Through Rate Prediction", RecSys 2019. https://arxiv.org/abs/1905.09433
    - FieldAwareProduct: Yang et al., "Operation-aware Neural Networks for User Response Prediction",
      Neural Networks 2020. https://arxiv.org/abs/1904.12579
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SENETLayer", "BilinearInteraction", "FieldAwareProduct", "pair_indices"]


def pair_indices(num_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(I, J)``: the fields of every pair ``i < j``, in row-major order (``F(F-1)/2`` each)."""
    i, j = torch.triu_indices(num_fields, num_fields, offset=1)
    return i, j


class SENETLayer(nn.Module):
    """Squeeze-excitation over fields: each field's embedding is scaled by a learned weight of the row.

    ``z = mean_D(E)`` (squeeze), ``a = relu(W2 relu(W1 z))`` (excitation, bottleneck ``max(1, F // r)``),
    output ``E * a`` (re-weight).

    Args:
        num_fields: ``F``.
        reduction_ratio: ``r``, the bottleneck's reduction.

    Shape:
        ``(B, F, D)`` → ``(B, F, D)``; ``forward(e, return_weights=True)`` gives the weights ``(B, F)``.

    Example:
        >>> SENETLayer(6, reduction_ratio=3)(torch.randn(2, 6, 4)).shape
        torch.Size([2, 6, 4])
    """

    def __init__(self, num_fields: int, reduction_ratio: int = 3) -> None:
        super().__init__()
        if isinstance(reduction_ratio, bool) or not isinstance(reduction_ratio, int) or reduction_ratio < 1:
            raise ValueError(f"SENETLayer: reduction_ratio must be an int >= 1, got {reduction_ratio!r}.")
        hidden = max(1, num_fields // reduction_ratio)
        self.excitation = nn.Sequential(nn.Linear(num_fields, hidden, bias=False), nn.ReLU(),
                                        nn.Linear(hidden, num_fields, bias=False), nn.ReLU())

    def forward(self, emb: torch.Tensor, return_weights: bool = False) -> torch.Tensor:
        a = self.excitation(emb.mean(dim=-1))                  # (B, F)
        return a if return_weights else emb * a.unsqueeze(-1)


class BilinearInteraction(nn.Module):
    """FiBiNET's bilinear interaction ``p_ij = (v_i W) ⊙ v_j`` for every pair ``i < j``.

    Args:
        num_fields: ``F``.
        embedding_size: ``D``.
        bilinear_type: ``"all"`` (one ``W`` for all pairs), ``"each"`` (one ``W_i`` per field) or
            ``"interaction"`` (one ``W_ij`` per pair).

    Shape:
        ``(B, F, D)`` → ``(B, F(F-1)/2, D)``.

    Example:
        >>> BilinearInteraction(4, 3, "each")(torch.randn(2, 4, 3)).shape
        torch.Size([2, 6, 3])
    """

    TYPES = ("all", "each", "interaction")
    pair_i: torch.Tensor  # buffers, registered in __init__
    pair_j: torch.Tensor

    def __init__(self, num_fields: int, embedding_size: int, bilinear_type: str = "interaction") -> None:
        super().__init__()
        if bilinear_type not in self.TYPES:
            raise ValueError(f"BilinearInteraction: bilinear_type must be one of {self.TYPES}, "
                             f"got {bilinear_type!r}.")
        self.bilinear_type = bilinear_type
        i, j = pair_indices(num_fields)
        self.register_buffer("pair_i", i, persistent=False)
        self.register_buffer("pair_j", j, persistent=False)
        n = {"all": 1, "each": num_fields, "interaction": len(i)}[bilinear_type]
        self.weight = nn.Parameter(torch.empty(n, embedding_size, embedding_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.weight)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        left, right = emb[:, self.pair_i], emb[:, self.pair_j]        # (B, P, D) each
        if self.bilinear_type == "all":
            return (left @ self.weight[0]) * right
        if self.bilinear_type == "each":
            return torch.einsum("bpd,pde->bpe", left, self.weight[self.pair_i]) * right
        return torch.einsum("bpd,pde->bpe", left, self.weight) * right


class FieldAwareProduct(nn.Module):
    """ONN's operation-aware second-order term: field ``i`` has one embedding per other field ``j`` (its
    "operation" with ``j``), and the pair ``i < j`` is ``e_i^{(j)} ⊙ e_j^{(i)}``.

    The input holds, per field, its ``F - 1`` operation embeddings side by side: ``(B, F, (F-1)·D)``, copy
    ``k`` of field ``i`` being its embedding towards field ``k`` if ``k < i``, else towards field ``k + 1``.

    Args:
        num_fields: ``F`` (>= 2).
        embedding_size: ``D``.

    Shape:
        ``(B, F, (F-1)·D)`` → ``(B, F(F-1)/2, D)``.

    Example:
        >>> FieldAwareProduct(3, 2)(torch.ones(5, 3, 4)).shape
        torch.Size([5, 3, 2])
    """

    left: torch.Tensor  # buffers, registered in __init__
    right: torch.Tensor

    def __init__(self, num_fields: int, embedding_size: int) -> None:
        super().__init__()
        if num_fields < 2:
            raise ValueError(f"FieldAwareProduct: needs at least 2 fields, got {num_fields}.")
        self.F, self.D = num_fields, embedding_size
        i, j = pair_indices(num_fields)
        # field i's copy towards j > i is j - 1; field j's copy towards i < j is i
        self.register_buffer("left", i * (num_fields - 1) + (j - 1), persistent=False)
        self.register_buffer("right", j * (num_fields - 1) + i, persistent=False)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        e = emb.reshape(emb.shape[0], self.F * (self.F - 1), self.D)
        return e[:, self.left] * e[:, self.right]
