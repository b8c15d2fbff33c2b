"""``deepctr_torch.models.dien`` under ctrkit: ``DIEN`` and DeepCTR-Torch's ``InterestEvolving`` layer.

Thin re-exports so that DeepCTR-Torch imports run with only the package name changed (see
docs/deepctr_torch.md); ``InterestEvolving`` is :class:`~ctrkit.layers.InterestEvolution` called the way
DeepCTR-Torch calls it (history lengths instead of a mask).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..layers.recurrent import InterestEvolution
from .ranking.dien import DIEN

__all__ = ["DIEN", "InterestEvolving"]


class InterestEvolving(InterestEvolution):
    """DeepCTR-Torch's ``InterestEvolving(input_size, gru_type, use_neg, init_std, att_hidden_size,
    att_activation, att_weight_normalization)``; ``forward(query (B, E), keys (B, L, E), keys_length (B,))``
    returns ``(B, E)``. ``use_neg`` and ``init_std`` are accepted for compatibility (the auxiliary loss lives in
    :class:`~ctrkit.models.DIEN`, the initialisation is PyTorch's).

    Example:
        >>> layer = InterestEvolving(3, gru_type="AUGRU")
        >>> layer(torch.ones(2, 3), torch.rand(2, 4, 3), torch.tensor([3, 4])).shape
        torch.Size([2, 3])
    """

    def __init__(self, input_size: int, gru_type: str = "GRU", use_neg: bool = False, init_std: float = 0.001,
                 att_hidden_size: Sequence[int] = (64, 16), att_activation: str = "sigmoid",
                 att_weight_normalization: bool = False) -> None:
        super().__init__(int(input_size), gru_type, tuple(att_hidden_size), att_activation, att_weight_normalization)

    def forward(self, query: torch.Tensor, keys: torch.Tensor,  # type: ignore[override]  # lengths, not a mask
                keys_length: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(keys.shape[1], device=keys.device)
        mask = steps.unsqueeze(0) < keys_length.reshape(-1, 1).to(keys.device)
        return super().forward(query, keys, mask)
