"""Attention layers of the CTR models: AutoInt's self-attention over fields, AFM's attention over field pairs
and DIN's target attention over a behaviour sequence (its local activation unit, Dice activation and attention
pooling).

Field embeddings arrive as ``(B, F, D)``; behaviour sequences as keys ``(B, L, E)`` with a query ``(B, E)``.

References:
    - InteractingLayer: Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
      Neural Networks", CIKM 2019. https://arxiv.org/abs/1810.11921
    - Dice, AttentionSequencePooling: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction",
      KDD 2018. https://arxiv.org/abs/1706.06978
    - AFMLayer: Xiao et al., "Attentional Factorization Machines: Learning the Weight of Feature Interactions
      via Attention Networks", IJCAI 2017. https://arxiv.org/abs/1708.04617
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core import _check_units, get_activation

__all__ = ["InteractingLayer", "Dice", "LocalActivationUnit", "AttentionSequencePoolingLayer", "AFMLayer"]


class InteractingLayer(nn.Module):
    """AutoInt's multi-head self-attention over fields, with a residual projection.

    Args:
        embedding_size: field embedding width ``D`` (kept: each of the ``head_num`` heads has
            ``D / head_num``).
        head_num: number of heads (must divide ``D``).
        use_res: add the projected input (residual) before the ReLU.
        scaling: divide the attention logits by ``sqrt(D / head_num)``.

    Shape:
        ``(B, F, D)`` → ``(B, F, D)``.

    Example:
        >>> InteractingLayer(4, head_num=2)(torch.randn(3, 5, 4)).shape
        torch.Size([3, 5, 4])
    """

    def __init__(self, embedding_size: int, head_num: int = 2, use_res: bool = True,
                 scaling: bool = False) -> None:
        super().__init__()
        if isinstance(head_num, bool) or not isinstance(head_num, int) or head_num < 1:
            raise ValueError(f"InteractingLayer: head_num must be an int >= 1, got {head_num!r}.")
        if embedding_size % head_num:
            raise ValueError(f"InteractingLayer: the embedding size {embedding_size} is not a multiple of "
                             f"head_num={head_num}.")
        self.head_num, self.use_res, self.scaling = head_num, bool(use_res), bool(scaling)
        D = embedding_size
        self.W = nn.Parameter(torch.empty(D, (4 if use_res else 3) * D))   # query | key | value | residual
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.W, mean=0.0, std=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, Fn, D = x.shape
        H = self.head_num
        proj = x @ self.W                                            # (B, F, 3D or 4D), one GEMM
        q, k, v = (proj[..., i * D:(i + 1) * D].reshape(B, Fn, H, D // H).transpose(1, 2) for i in range(3))
        scores = q @ k.transpose(-1, -2)                             # (B, H, F, F)
        if self.scaling:
            scores = scores / math.sqrt(D // H)
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, Fn, D)
        if self.use_res:
            out = out + proj[..., 3 * D:]
        return torch.relu(out)


class Dice(nn.Module):
    """DIN's data-adaptive activation: ``p(x)·x + (1 - p(x))·α·x`` with ``p = sigmoid(BatchNorm(x))``.

    Shape:
        ``(N, C)`` → ``(N, C)``, or ``(N, L, C)`` → ``(N, L, C)`` (normalised over the last axis ``C``).

    Example:
        >>> Dice(4)(torch.randn(8, 4)).shape
        torch.Size([8, 4])
        >>> Dice(4)(torch.randn(8, 3, 4)).shape
        torch.Size([8, 3, 4])
    """

    def __init__(self, num_features: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(num_features, eps=eps)
        self.alpha = nn.Parameter(torch.zeros(num_features))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            p = torch.sigmoid(self.bn(x.transpose(1, 2))).transpose(1, 2)
        else:
            p = torch.sigmoid(self.bn(x))
        return p * x + (1 - p) * self.alpha * x


class LocalActivationUnit(nn.Module):
    """DIN's local activation unit: an MLP over ``[q, k, q - k, q ⊙ k]`` scoring each behaviour ``k`` against
    the target ``q``.

    The first layer is split algebraically
    (``W [q, k, q-k, q⊙k] = (W_q + W_d) q + (W_k - W_d) k + W_p (q⊙k)``) so the query's share is computed once
    per row instead of once per behaviour.

    Args:
        embedding_dim: width ``E`` of queries and keys.
        hidden_units: hidden layers of the MLP (non-empty).
        activation: ``"dice"`` or any name of :func:`~ctrkit.layers.get_activation`.
        dropout, use_bn: for the hidden layers.

    Shape:
        query ``(B, E)``, keys ``(B, L, E)`` → scores ``(B, L)`` (raw).

    Example:
        >>> LocalActivationUnit(4, (8,))(torch.randn(2, 4), torch.randn(2, 3, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, embedding_dim: int, hidden_units: Sequence[int] = (64, 16), activation: str = "dice",
                 dropout: float = 0.0, use_bn: bool = False) -> None:
        super().__init__()
        units = _check_units("LocalActivationUnit", hidden_units)
        if not units:
            raise ValueError("LocalActivationUnit: hidden_units must not be empty.")
        self.E = embedding_dim
        self.first = nn.Linear(4 * embedding_dim, units[0])
        layers: list[nn.Module] = []
        prev = units[0]
        for i, u in enumerate(units):
            if i > 0:
                layers.append(nn.Linear(prev, u))
            if use_bn:
                layers.append(nn.BatchNorm1d(u))
            layers.append(Dice(u) if str(activation).lower() == "dice" else get_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = u
        self.rest = nn.Sequential(*layers)
        self.out = nn.Linear(prev, 1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        B, L, E = keys.shape
        w = self.first.weight                                      # (H, 4E): [q | k | q-k | q*k]
        wq, wk, wd, wp = w[:, :E], w[:, E:2 * E], w[:, 2 * E:3 * E], w[:, 3 * E:]
        hq = F.linear(query, wq + wd, self.first.bias).unsqueeze(1)  # (B, 1, H)
        h = hq + keys @ (wk - wd).t() + (query.unsqueeze(1) * keys) @ wp.t()
        h = self.rest(h.reshape(B * L, -1))
        return self.out(h).view(B, L)


class AttentionSequencePoolingLayer(nn.Module):
    """DIN's target attention: behaviours weighted by their local-activation score against the target, summed.

    Padded positions (``mask`` False) get weight 0. With ``weight_normalization`` the scores are softmax-ed
    over the valid positions (the paper keeps raw scores, so the output's norm reflects how strongly the
    history relates to the target).

    Args:
        embedding_dim: width ``E`` of queries and keys.
        att_hidden_units, att_activation, weight_normalization: as in DeepCTR's layer of the same name.

    Shape:
        query ``(B, E)``, keys ``(B, L, E)``, mask ``(B, L)`` bool → ``(B, E)``; with ``return_score=True``
        the weights ``(B, L)`` instead.

    Example:
        >>> att = AttentionSequencePoolingLayer(4, (8,))
        >>> keys, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [False, False, False]])
        >>> out = att(torch.randn(2, 4), keys, mask)
        >>> tuple(out.shape), out[1].abs().sum().item()          # an empty history pools to zeros
        ((2, 4), 0.0)
    """

    def __init__(self, embedding_dim: int, att_hidden_units: Sequence[int] = (64, 16),
                 att_activation: str = "dice", weight_normalization: bool = False, dropout: float = 0.0,
                 use_bn: bool = False) -> None:
        super().__init__()
        self.unit = LocalActivationUnit(embedding_dim, att_hidden_units, att_activation, dropout, use_bn)
        self.weight_normalization = bool(weight_normalization)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                return_score: bool = False) -> torch.Tensor:
        scores = self.unit(query, keys)                                           # (B, L)
        m = mask.to(scores.dtype)
        if self.weight_normalization:
            scores = torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=1) * m
        else:
            scores = scores * m
        if return_score:
            return scores
        return (scores.unsqueeze(-1) * keys).sum(dim=1)


class AFMLayer(nn.Module):
    """AFM's attention-based pooling of the pairwise interactions: ``p^T sum_{i<j} a_ij (e_i ⊙ e_j)`` with
    ``a = softmax_pairs(h^T ReLU(W (e_i ⊙ e_j) + b))``.

    Args:
        field_size: number of fields ``F``.
        embedding_size: embedding width ``D``.
        attention_factor: width of the attention network's hidden layer.
        dropout: dropout on the pooled interaction vector (DeepCTR's ``afm_dropout``).

    Shape:
        ``(B, F, D)`` → ``(B,)`` (a raw logit); ``forward(x, return_score=True)`` gives the weights
        ``(B, F·(F-1)/2)`` instead.

    Example:
        >>> AFMLayer(3, 4, attention_factor=8)(torch.randn(2, 3, 4)).shape
        torch.Size([2])
    """

    rows: torch.Tensor  # buffers, registered in __init__
    cols: torch.Tensor

    def __init__(self, field_size: int, embedding_size: int, attention_factor: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(attention_factor, bool) or not isinstance(attention_factor, int) or attention_factor < 1:
            raise ValueError(f"AFMLayer: attention_factor must be an int >= 1, got {attention_factor!r}.")
        rows, cols = torch.triu_indices(field_size, field_size, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.attention = nn.Linear(embedding_size, attention_factor)           # W, b
        self.score = nn.Linear(attention_factor, 1, bias=False)                # h
        self.projection = nn.Linear(embedding_size, 1, bias=False)             # p
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.attention, self.score, self.projection):
            nn.init.xavier_normal_(m.weight)
        nn.init.zeros_(self.attention.bias)

    def forward(self, emb: torch.Tensor, return_score: bool = False) -> torch.Tensor:
        inter = emb.index_select(1, self.rows) * emb.index_select(1, self.cols)        # (B, P, D)
        a = torch.softmax(self.score(torch.relu(self.attention(inter))), dim=1)     # (B, P, 1)
        if return_score:
            return a[..., 0]
        pooled = self.dropout((a * inter).sum(dim=1))                               # (B, D)
        return self.projection(pooled)[:, 0]
