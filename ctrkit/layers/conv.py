"""CCPM's convolutional layers over the field axis, with order-preserving k-max pooling.

Field embeddings arrive as ``(B, F, D)``; each layer convolves along the fields (kernel ``(width, 1)``, "same"
padding, one 2-D convolution over all embedding dimensions), applies tanh and keeps the ``k`` largest values
of every (filter, dimension) column in their original field order.

Reference:
    Liu et al., "A Convolutional Click Prediction Model", CIKM 2015. https://doi.org/10.1145/2806416.2806603
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KMaxPooling", "ConvLayer"]


class KMaxPooling(nn.Module):
    """The ``k`` largest values along ``dim``, kept in their original order (the paper's k-max pooling).

    Shape:
        ``(..., N, ...)`` → ``(..., k, ...)`` along ``dim`` (``k <= N``).

    Example:
        >>> KMaxPooling(2, dim=1)(torch.tensor([[1.0, 5.0, 2.0, 4.0]])).tolist()
        [[5.0, 4.0]]
    """

    def __init__(self, k: int, dim: int) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"KMaxPooling: k must be an int >= 1, got {k!r}.")
        self.k, self.dim = k, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.topk(x, self.k, dim=self.dim).indices.sort(dim=self.dim).values
        return x.gather(self.dim, idx)


class ConvLayer(nn.Module):
    """CCPM's stack of convolution → tanh → k-max pooling over the field axis.

    The ``i``-th of ``l`` layers keeps ``k_i = max(1, int((1 - (i/l)^(l-i)) · F))`` positions (the last keeps
    3), capped by its input length: the paper's (and DeepCTR's) flexible p-max pooling.

    Args:
        field_size: number of fields ``F``.
        conv_kernel_width: kernel width (over fields) of each layer.
        conv_filters: number of filters (output channels) of each layer, as many as widths.

    Shape:
        ``(B, F, D)`` → ``(B, conv_filters[-1], field_shape, D)``; ``output_dim`` = their product per row with D.

    Example:
        >>> conv = ConvLayer(5, (3, 2), (4, 2))
        >>> conv(torch.randn(2, 5, 4)).shape, conv.field_shape
        (torch.Size([2, 2, 2, 4]), 2)
    """

    def __init__(self, field_size: int, conv_kernel_width: Sequence[int] = (6, 5),
                 conv_filters: Sequence[int] = (4, 4)) -> None:
        super().__init__()
        widths, filters = tuple(conv_kernel_width), tuple(conv_filters)
        if len(widths) != len(filters) or not filters:
            raise ValueError(f"ConvLayer: conv_kernel_width and conv_filters need the same non-zero length, got "
                             f"{widths!r} and {filters!r}.")
        for arg, vals in (("conv_kernel_width", widths), ("conv_filters", filters)):
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in vals):
                raise ValueError(f"ConvLayer: {arg} must hold ints >= 1, got {vals!r}.")
        n, L = int(field_size), len(filters)
        self.convs = nn.ModuleList()
        self.pools = nn.ModuleList()
        self.pads: list[tuple[int, int]] = []
        shape, in_ch = n, 1
        for i, (w, c) in enumerate(zip(widths, filters), start=1):
            k = max(1, int((1 - pow(i / L, L - i)) * n)) if i < L else 3
            k = min(k, shape)
            self.convs.append(nn.Conv2d(in_ch, c, kernel_size=(w, 1)))
            self.pads.append(((w - 1) // 2, w - 1 - (w - 1) // 2))   # "same" padding over the fields
            self.pools.append(KMaxPooling(k, dim=2))
            shape, in_ch = k, c
        self.field_shape, self.filters = shape, filters[-1]

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        x = emb.unsqueeze(1)                                             # (B, 1, F, D)
        for conv, pool, (top, bottom) in zip(self.convs, self.pools, self.pads):
            x = pool(torch.tanh(conv(F.pad(x, (0, 0, top, bottom)))))
        return x
