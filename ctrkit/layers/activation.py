"""``deepctr_torch.layers.activation`` under ctrkit: ``Dice`` with DeepCTR-Torch's argument names.

ctrkit's own :class:`~ctrkit.layers.Dice` takes ``(num_features, eps)``; this module keeps DeepCTR-Torch's
``Dice(emb_size, dim=2, epsilon=1e-8, device="cpu")`` so that its code runs with only the package name
changed. ``dim`` (2 for ``(N, C)`` input, 3 for ``(N, L, C)``) is accepted for compatibility: ctrkit's Dice
handles both shapes.
"""
from __future__ import annotations

from .attention import Dice as _Dice

__all__ = ["Dice"]


class Dice(_Dice):
    """DeepCTR-Torch's signature over :class:`ctrkit.layers.Dice`."""

    def __init__(self, emb_size: int, dim: int = 2, epsilon: float = 1e-8, device: str = "cpu") -> None:
        if dim not in (2, 3):
            raise ValueError(f"Dice: dim must be 2 (input (N, C)) or 3 (input (N, L, C)), got {dim!r}.")
        super().__init__(emb_size, eps=epsilon)
        self.dim = dim
        self.to(device)

