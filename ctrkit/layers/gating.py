"""Multiplicative gates and masks over the model input: FinalMLP's feature selection and bilinear fusion of two
streams, MaskNet's instance-guided masks (MaskBlocks) and its per-field layer normalisation.

Flat inputs arrive as ``(B, d)``, field embeddings as ``(B, F, D)``.

References:
    - FeatureGate, BilinearFusion: Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
      Prediction", AAAI 2023. https://arxiv.org/abs/2304.00902
    - MaskBlock, ParallelMaskBlocks, FieldLayerNorm: Wang et al., "MaskNet: Introducing Feature-Wise
      Multiplication to CTR Ranking Models by Instance-Guided Mask", DLP-KDD 2021. https://arxiv.org/abs/2102.07619
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core import MLP, ParallelMLP, get_activation

__all__ = ["FeatureGate", "BilinearFusion", "FieldLayerNorm", "MaskBlock", "ParallelMaskBlocks"]


class FeatureGate(nn.Module):
    """FinalMLP's feature selection for one stream: ``x ⊙ 2·sigmoid(MLP(context))``.

    The gate is computed from context features (e.g. the user or item id embeddings); without them it is
    computed from a learned vector, i.e. one learned gate per input bit shared by every row. Gates start near 1
    (a zero context gives ``2·sigmoid(bias terms)``), so the stream first sees its input almost unchanged.

    Args:
        in_features: width ``d`` of the input to gate.
        context_dim: width of the context; with ``learned_context=True`` the width of the learned vector.
        hidden_units: hidden layers of the gate MLP (ReLU).
        learned_context: the context is a learned vector (no context features).

    Shape:
        ``forward(x (B, d), context (B, c) or None)`` → ``(B, d)``.

    Example:
        >>> g = FeatureGate(6, 4, (8,), learned_context=True)
        >>> g(torch.ones(3, 6)).shape
        torch.Size([3, 6])
    """

    def __init__(self, in_features: int, context_dim: int, hidden_units: Sequence[int] = (64,),
                 learned_context: bool = False) -> None:
        super().__init__()
        if context_dim < 1:
            raise ValueError(f"FeatureGate: context_dim must be >= 1, got {context_dim!r}.")
        self.context = nn.Parameter(torch.zeros(1, context_dim)) if learned_context else None
        self.hidden = MLP(context_dim, tuple(hidden_units), "relu")
        self.out = nn.Linear(self.hidden.output_dim, in_features)

    def reset_parameters(self) -> None:
        if self.context is not None:
            nn.init.zeros_(self.context)

    def gate(self, context: torch.Tensor | None = None) -> torch.Tensor:
        """The gate values in (0, 2): ``(B, d)``, or ``(1, d)`` with a learned context."""
        ctx = self.context if context is None else context
        if ctx is None:
            raise ValueError("FeatureGate: this gate reads context features; pass them as `context`.")
        return 2.0 * torch.sigmoid(self.out(self.hidden(ctx)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return x * self.gate(context)


class BilinearFusion(nn.Module):
    """FinalMLP's multi-head bilinear fusion of two stream outputs into one logit.

    ``logit = w_xᵀ x + w_yᵀ y + sum_h x_hᵀ W_h y_h``: both inputs are cut into ``num_heads`` chunks and head
    ``h`` interacts chunk ``x_h`` with chunk ``y_h`` through its own matrix ``W_h``; all heads are one batched
    matmul. ``W`` starts at the Xavier scale of the whole bilinear weight seen as one ``(h·dx·dy, 1)`` matrix
    (standard deviation ``sqrt(2 / (h·dx·dy + 1))``), so the initial bilinear term has a variance of order one.

    Args:
        x_dim, y_dim: widths of the two inputs (each divisible by ``num_heads``).
        num_heads: number of heads.
        bias: add a learned bias (off when the model has its own output bias).

    Shape:
        ``forward(x (B, x_dim), y (B, y_dim))`` → ``(B,)``.

    Example:
        >>> BilinearFusion(8, 4, num_heads=2)(torch.randn(5, 8), torch.randn(5, 4)).shape
        torch.Size([5])
    """

    def __init__(self, x_dim: int, y_dim: int, num_heads: int = 1, bias: bool = False) -> None:
        super().__init__()
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 \
                or x_dim % num_heads or y_dim % num_heads:
            raise ValueError(f"BilinearFusion: num_heads must be an int >= 1 dividing both stream widths {x_dim} "
                             f"and {y_dim}, got {num_heads!r}. Change num_heads or the last hidden units.")
        self.num_heads = num_heads
        self.w_x = nn.Linear(x_dim, 1, bias=bias)
        self.w_y = nn.Linear(y_dim, 1, bias=False)
        self.w_xy = nn.Parameter(torch.empty(num_heads, x_dim // num_heads, y_dim // num_heads))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.w_x.reset_parameters()
        self.w_y.reset_parameters()
        nn.init.normal_(self.w_xy, std=math.sqrt(2.0 / (self.w_xy.numel() + 1)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.num_heads
        xh = x.view(x.shape[0], h, -1).transpose(0, 1)                    # (h, B, dx)
        yh = y.view(y.shape[0], h, -1).transpose(0, 1)                    # (h, B, dy)
        bilinear = (torch.bmm(xh, self.w_xy) * yh).sum(dim=(0, 2))         # (B,)
        return self.w_x(x)[:, 0] + self.w_y(y)[:, 0] + bilinear


class FieldLayerNorm(nn.Module):
    """Layer normalisation of each field's embedding with the field's own gain and bias (MaskNet's LN-EMB).

    Shape:
        ``(B, F, D)`` → ``(B, F, D)``.

    Example:
        >>> out = FieldLayerNorm(3, 4)(torch.randn(2, 3, 4))
        >>> bool(out.mean(-1).abs().max() < 1e-5)
        True
    """

    def __init__(self, num_fields: int, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(num_fields, dim))
        self.bias = nn.Parameter(torch.zeros(num_fields, dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), eps=self.eps) * self.weight + self.bias


def _ratio_width(where: str, width: int, reduction_ratio: float) -> int:
    if isinstance(reduction_ratio, bool) or not isinstance(reduction_ratio, (int, float)) or reduction_ratio <= 0:
        raise ValueError(f"{where}: reduction_ratio must be a number > 0, got {reduction_ratio!r}.")
    return max(1, int(round(width * reduction_ratio)))


class MaskBlock(nn.Module):
    """One MaskBlock: ``act(LN(W (mask(v_emb) ⊙ h)))`` with the instance-guided mask
    ``mask(v) = W_2 ReLU(W_1 v + b_1) + b_2``.

    The mask reads the whole (un-normalised) embedding row ``v_emb`` of the instance and re-weights, bit by bit,
    the block's input ``h`` (the normalised embeddings for the first block, the previous block's output
    after that). The mask's aggregation layer is ``reduction_ratio`` times as wide as ``h``.

    Args:
        mask_in: width of ``v_emb``.
        in_features: width of ``h``.
        out_features: output width.
        reduction_ratio: aggregation width over ``in_features``.
        activation, dropout: of the output.
        layer_norm: layer normalisation before the activation.

    Shape:
        ``forward(v_emb (B, mask_in), h (B, in_features))`` → ``(B, out_features)``.

    Example:
        >>> MaskBlock(12, 12, 8)(torch.randn(3, 12), torch.randn(3, 12)).shape
        torch.Size([3, 8])
    """

    def __init__(self, mask_in: int, in_features: int, out_features: int, reduction_ratio: float = 1.0,
                 activation: str = "relu", dropout: float = 0.0, layer_norm: bool = True) -> None:
        super().__init__()
        agg = _ratio_width("MaskBlock", in_features, reduction_ratio)
        self.mask = nn.Sequential(nn.Linear(mask_in, agg), nn.ReLU(), nn.Linear(agg, in_features))
        self.hidden = nn.Linear(in_features, out_features, bias=not layer_norm)
        self.norm = nn.LayerNorm(out_features) if layer_norm else nn.Identity()
        self.act = get_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output_dim = out_features

    def forward(self, v_emb: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.norm(self.hidden(self.mask(v_emb) * h))))


class ParallelMaskBlocks(nn.Module):
    """``num`` MaskBlocks over the same input, computed together (ParallelMaskNet's first layer).

    Every block masks the same ``h`` with its own instance-guided mask of ``v_emb`` and projects it to
    ``block_dim``; the masks' two layers are one GEMM and one ``bmm`` for all blocks, the projections one
    ``bmm``. The outputs are concatenated.

    Args:
        num: number of blocks.
        mask_in: width of ``v_emb``; in_features: width of ``h``; block_dim: output width of each block.
        reduction_ratio, activation, dropout, layer_norm: as in :class:`MaskBlock`.

    Shape:
        ``forward(v_emb (B, mask_in), h (B, in_features))`` → ``(B, num * block_dim)``.

    Example:
        >>> ParallelMaskBlocks(3, 12, 12, 4)(torch.randn(2, 12), torch.randn(2, 12)).shape
        torch.Size([2, 12])
    """

    def __init__(self, num: int, mask_in: int, in_features: int, block_dim: int, reduction_ratio: float = 1.0,
                 activation: str = "relu", dropout: float = 0.0, layer_norm: bool = True) -> None:
        super().__init__()
        for arg, v in (("num", num), ("block_dim", block_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ParallelMaskBlocks: {arg} must be an int >= 1, got {v!r}.")
        agg = _ratio_width("ParallelMaskBlocks", in_features, reduction_ratio)
        self.masks = ParallelMLP(num, mask_in, (agg, in_features), "relu", last_activation=False)
        self.weight = nn.Parameter(torch.empty(num, in_features, block_dim))
        self.layer_norm = bool(layer_norm)
        self.gain = nn.Parameter(torch.ones(num, 1, block_dim)) if self.layer_norm else None
        self.shift = nn.Parameter(torch.zeros(num, 1, block_dim))   # LayerNorm's bias, or the projection's
        self.act = get_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output_dim = num * block_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight.shape[1])   # nn.Linear's default, per block
        nn.init.uniform_(self.weight, -bound, bound)
        if self.gain is not None:
            nn.init.ones_(self.gain)
        nn.init.zeros_(self.shift)

    def forward(self, v_emb: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        masked = self.masks(v_emb) * h.unsqueeze(0)                       # (n, B, in)
        z = torch.bmm(masked, self.weight)                                # (n, B, block_dim)
        if self.gain is not None:
            z = F.layer_norm(z, (z.shape[-1],)) * self.gain
        z = self.dropout(self.act(z + self.shift))
        return z.transpose(0, 1).reshape(h.shape[0], -1)
