"""Transformer pieces of the sequential (next-item) models: causal self-attention blocks, the positional table
and the scaled item embedding.

Reference:
    Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. https://arxiv.org/abs/1808.09781
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PositionalEmbedding", "CausalSelfAttention", "FeedForward", "TransformerBlock", "causal_mask",
           "scaled_embedding"]


def causal_mask(seq: torch.Tensor) -> torch.Tensor:
    """``(B, 1, L, L)`` bool, True where position i may attend to position j: j <= i, and j is not padding.

    Every position may attend to itself, so no row is fully masked (padded positions produce finite values
    that are never used).
    """
    L = seq.shape[1]
    idx = torch.arange(L, device=seq.device)
    causal = idx[None, :] <= idx[:, None]                                # (L, L)
    keys = (seq != 0)[:, None, None, :]                                  # (B, 1, 1, L)
    return (causal[None, None] & keys) | torch.eye(L, dtype=torch.bool, device=seq.device)[None, None]


class PositionalEmbedding(nn.Module):
    """A learned ``(max_len, dim)`` table added to the item embeddings (SASRec's positional embedding)."""

    def __init__(self, max_len: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.init_std = init_std
        self.weight = nn.Parameter(torch.empty(max_len, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.init_std)

    def forward(self, length: int) -> torch.Tensor:
        return self.weight[-length:] if length <= self.weight.shape[0] else self.weight


class CausalSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention under a boolean mask, heads merged by an output matrix."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(a.transpose(1, 2).reshape(B, L, D))


class FeedForward(nn.Module):
    """Position-wise two-layer network ``dim -> hidden -> dim`` with GELU."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``, with dropout on both branches."""

    def __init__(self, dim: int, num_heads: int, ffn_hidden: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, num_heads, dropout)
        self.ffn = FeedForward(dim, ffn_hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.ffn(self.ln2(x)))


def scaled_embedding(table: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """Item embeddings times sqrt(dim) (as in SASRec / the Transformer), padding rows zeroed."""
    e = F.embedding(seq, table) * math.sqrt(table.shape[1])
    return e * (seq != 0).unsqueeze(-1).to(e.dtype)
