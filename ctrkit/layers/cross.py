"""Explicit feature-crossing networks: DCN's cross network, DCN-V2's mixture of low-rank experts, GDCN's gated
cross network and xDeepFM's CIN.

Flat inputs arrive as ``(B, d)``, field embeddings as ``(B, F, D)``.

References:
    - CrossNet: Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017.
      https://arxiv.org/abs/1708.05123
    - CrossNetV2 / CrossNetMix: Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
      Web-scale Learning to Rank Systems", WWW 2021. https://arxiv.org/abs/2008.13535
    - GatedCrossNet: Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
      Prediction", CIKM 2023. https://arxiv.org/abs/2311.04635
    - CIN: Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for Recommender
      Systems", KDD 2018. https://arxiv.org/abs/1803.05170
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core import _check_units, get_activation

__all__ = ["CrossNet", "CrossNetMix", "GatedCrossNet", "CIN"]


class CrossNet(nn.Module):
    """The cross network of DCN (``"vector"``) and DCN-V2 (``"matrix"``).

    ``x_{l+1} = x_0 ⊙ (x_l · w_l) + b_l + x_l`` (vector) or ``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l``
    (matrix, DCN-V2's full-rank cross layer).

    Args:
        in_features: width ``d`` of the input.
        layer_num: number of cross layers.
        parameterization: ``"vector"`` (DCN) or ``"matrix"`` (DCN-V2).

    Shape:
        ``(B, d)`` → ``(B, d)``.

    Example:
        >>> CrossNet(6, layer_num=2, parameterization="matrix")(torch.randn(3, 6)).shape
        torch.Size([3, 6])
    """

    def __init__(self, in_features: int, layer_num: int = 2, parameterization: str = "vector") -> None:
        super().__init__()
        if parameterization not in ("vector", "matrix"):
            raise ValueError("CrossNet: parameterization must be 'vector' or 'matrix', "
                             f"got {parameterization!r}.")
        if isinstance(layer_num, bool) or not isinstance(layer_num, int) or layer_num < 1:
            raise ValueError(f"CrossNet: layer_num must be an int >= 1, got {layer_num!r}.")
        self.parameterization = parameterization
        shape = ((layer_num, in_features) if parameterization == "vector"
                 else (layer_num, in_features, in_features))
        self.kernels = nn.Parameter(torch.empty(*shape))
        self.bias = nn.Parameter(torch.empty(layer_num, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        w = self.kernels.data
        for i in range(w.shape[0]):
            nn.init.xavier_normal_(w[i].view(-1, 1) if w.dim() == 2 else w[i])
        nn.init.zeros_(self.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, b in zip(self.kernels, self.bias):
            if self.parameterization == "vector":
                x = x0 * (x @ w).unsqueeze(1) + b + x
            else:
                x = x0 * F.linear(x, w, b) + x
        return x


class CrossNetMix(nn.Module):
    """DCN-V2's mixture of low-rank cross experts (DCN-Mix), all experts of a layer computed together.

    Expert ``i`` of layer ``l``: ``E_i(x_l) = x_0 ⊙ (U_i g(C_i g(V_iᵀ x_l)) + b_l)`` with ``g = tanh``; a
    softmax gate over the experts (a linear function of ``x_l``) mixes them and a residual adds ``x_l``.

    Args:
        in_features: width ``d`` of the input.
        low_rank: rank ``r`` of each expert.
        num_experts: number of experts per layer.
        layer_num: number of cross layers.

    Shape:
        ``(B, d)`` → ``(B, d)``.

    Example:
        >>> CrossNetMix(6, low_rank=2, num_experts=3, layer_num=2)(torch.randn(5, 6)).shape
        torch.Size([5, 6])
    """

    def __init__(self, in_features: int, low_rank: int = 32, num_experts: int = 4,
                 layer_num: int = 2) -> None:
        super().__init__()
        for arg, v in (("low_rank", low_rank), ("num_experts", num_experts), ("layer_num", layer_num)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CrossNetMix: {arg} must be an int >= 1, got {v!r}.")
        L, E, d, r = layer_num, num_experts, in_features, low_rank
        self.U = nn.Parameter(torch.empty(L, E, d, r))
        self.V = nn.Parameter(torch.empty(L, E, d, r))
        self.C = nn.Parameter(torch.empty(L, E, r, r))
        self.gate = nn.Parameter(torch.empty(d, E))
        self.bias = nn.Parameter(torch.empty(L, d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.U, self.V, self.C):
            w = p.data.view(-1, *p.shape[-2:])
            for i in range(w.shape[0]):
                nn.init.xavier_normal_(w[i])
        nn.init.xavier_normal_(self.gate)
        nn.init.zeros_(self.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for U, V, C, b in zip(self.U, self.V, self.C, self.bias):
            v = torch.tanh(torch.einsum("bd,edr->ber", x, V))
            v = torch.tanh(torch.einsum("ber,ers->bes", v, C))
            u = torch.einsum("bes,eds->bed", v, U)                       # (B, E, d)
            experts = x0.unsqueeze(1) * (u + b)
            gates = torch.softmax(x @ self.gate, dim=1)                  # (B, E)
            x = (gates.unsqueeze(-1) * experts).sum(dim=1) + x
        return x


class GatedCrossNet(nn.Module):
    """GDCN's gated cross network: DCN-V2's full-rank cross layer with an information gate per bit.

    ``c_{l+1} = c_0 ⊙ (W_l c_l + b_l) ⊙ sigmoid(W^g_l c_l) + c_l``: the gate learns, for each row, how much of
    each cross term of order ``l + 2`` to keep, so deep stacks do not drown in noisy high-order crosses. The
    cross and gate matrices of a layer are one ``(d, 2d)`` matmul.

    Args:
        in_features: width ``d`` of the input.
        layer_num: number of gated cross layers.
        low_rank: None for the paper's full-rank ``(2d, d)`` kernel; an int ``r`` factors it as
            ``(2d, r) @ (r, d)``, as DCN-V2 does for its cross layer, so a layer costs ``3dr`` weights, not ``2d²``.

    Shape:
        ``(B, d)`` → ``(B, d)``. :meth:`gates` gives each layer's gate values ``(L, B, d)``.

    Example:
        >>> net = GatedCrossNet(6, layer_num=3)
        >>> net(torch.randn(4, 6)).shape, tuple(net.gates(torch.randn(4, 6)).shape)
        (torch.Size([4, 6]), (3, 4, 6))
    """

    def __init__(self, in_features: int, layer_num: int = 3, low_rank: int | None = None) -> None:
        super().__init__()
        if isinstance(layer_num, bool) or not isinstance(layer_num, int) or layer_num < 1:
            raise ValueError(f"GatedCrossNet: layer_num must be an int >= 1, got {layer_num!r}.")
        if low_rank is not None and (isinstance(low_rank, bool) or not isinstance(low_rank, int) or low_rank < 1):
            raise ValueError(f"GatedCrossNet: low_rank must be None or an int >= 1, got {low_rank!r}.")
        self.in_features = in_features
        self.low_rank = low_rank
        d = in_features
        if low_rank is None:
            self.kernels = nn.Parameter(torch.empty(layer_num, 2 * d, d))  # [W_l; W^g_l]
        else:
            self.kernels = nn.Parameter(torch.empty(layer_num, 2 * d, low_rank))  # [U_l; U^g_l]
            self.down = nn.Parameter(torch.empty(layer_num, low_rank, d))    # V_lᵀ, shared by cross and gate
        self.bias = nn.Parameter(torch.empty(layer_num, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        d = self.in_features
        for w in self.kernels.data:
            nn.init.xavier_uniform_(w[:d])
            nn.init.xavier_uniform_(w[d:])
        if self.low_rank is not None:
            for v in self.down.data:
                nn.init.xavier_uniform_(v)
        nn.init.zeros_(self.bias)

    def _layers(self, x0: torch.Tensor):
        x = x0
        d = self.in_features
        downs = self.down if self.low_rank is not None else [None] * len(self.bias)
        for w, v, b in zip(self.kernels, downs, self.bias):
            h = F.linear(x if v is None else F.linear(x, v), w)
            gate = torch.sigmoid(h[:, d:])
            x = x0 * (h[:, :d] + b) * gate + x
            yield x, gate

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for x, _ in self._layers(x0):
            pass
        return x

    @torch.no_grad()
    def gates(self, x0: torch.Tensor) -> torch.Tensor:
        """The information gates of every layer for the rows ``x0``: ``(L, B, d)`` values in (0, 1) (the
        paper's interpretability: which bits of which cross order a row keeps)."""
        return torch.stack([g for _, g in self._layers(x0)])


class CIN(nn.Module):
    """xDeepFM's Compressed Interaction Network.

    Layer ``k``: ``X^k_h = act(sum_{i,j} W^{k,h}_{ij} (X^{k-1}_i ⊙ X^0_j))`` over the field vectors; each
    layer's feature maps are summed over the embedding dimension and concatenated. With ``split_half`` half of
    a hidden layer's maps feed the next layer and half go to the output.

    Args:
        field_size: number of fields ``F``.
        layer_size: feature maps per layer.
        activation: activation of the feature maps (``"linear"`` for none).
        split_half: as in the paper.

    Shape:
        ``(B, F, D)`` → ``(B, output_dim)``.

    Example:
        >>> cin = CIN(4, layer_size=(8, 6))
        >>> cin.output_dim, tuple(cin(torch.randn(2, 4, 3)).shape)
        (10, (2, 10))
    """

    def __init__(self, field_size: int, layer_size: Sequence[int] = (256, 128), activation: str = "relu",
                 split_half: bool = True) -> None:
        super().__init__()
        sizes = _check_units("CIN", layer_size)
        if not sizes:
            raise ValueError("CIN: layer_size must not be empty.")
        if split_half and any(s % 2 for s in sizes[:-1]):
            raise ValueError("CIN: with split_half=True every layer but the last needs an even size, "
                             f"got {sizes}.")
        self.split_half = bool(split_half)
        self.sizes = sizes
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        hidden = field_size
        out = 0
        for i, s in enumerate(sizes):
            self.weights.append(nn.Parameter(torch.empty(s, hidden, field_size)))
            self.biases.append(nn.Parameter(torch.empty(s)))
            last = i == len(sizes) - 1
            hidden = s // 2 if split_half and not last else s
            out += s // 2 if split_half and not last else s
        self.act = get_activation(activation)
        self.output_dim = out
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w, b in zip(self.weights, self.biases):   # nn.Conv1d's default, kernel size 1
            fan_in = w.shape[1] * w.shape[2]
            nn.init.kaiming_uniform_(w.view(w.shape[0], -1), a=math.sqrt(5))
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        h = x0
        outs = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.einsum("bhd,bmd->bhmd", h, x0).flatten(1, 2)              # (B, H*F, D)
            z = self.act(torch.einsum("oc,bcd->bod", w.flatten(1), z) + b.view(1, -1, 1))
            if self.split_half and i < len(self.sizes) - 1:
                h, direct = torch.split(z, [z.shape[1] // 2] * 2, dim=1)
            else:
                h = direct = z
            outs.append(direct)
        return torch.cat(outs, dim=1).sum(dim=2)
