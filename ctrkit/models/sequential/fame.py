"""FAME: facet-aware multi-head mixture-of-experts for sequential recommendation (Liu, Zhang, Long, WSDM 2025).

SASRec's blocks, except the last attention layer: there every head is a *facet*. Inside head h, N experts
(query projections ``W_Q^(h,n)``) attend over keys and values shared by the head; a router mixes the experts'
outputs per position (``beta = softmax(W_exp^(h) [f^(h,1); ...; f^(h,N)])``). The head's output goes through a
feed-forward network shared by all heads (``FFN'``, in the head's sub-space) and scores every item against the
item's facet sub-embedding ``e_v W_f^(h)``. A gate ``g = softmax(W_g [F^(1); ...; F^(H)] + b_g)`` weighs the
heads' predictions per position. See ``docs/sequential.md`` for every choice the paper leaves open.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data.inputs import TensorData
from ...layers.transformer import FeedForward, causal_mask
from ...registry import register_model
from .base import SEQ_FEATURE, SequentialModel

__all__ = ["FAME", "FacetMoEAttention", "FacetHeads"]

MIXES = ("probs", "logits")
_MASKED = -1e9   # finite: a logsumexp over heads of -inf entries only would give NaN gradients


class FacetMoEAttention(nn.Module):
    """The last attention layer of FAME: per head, N query experts over shared keys/values and a router.

    Args:
        dim: hidden size D; each of the ``num_heads`` heads works in ``D // num_heads`` dimensions.
        num_heads: heads (= facets).
        num_experts: query experts per head.
        ffn_hidden: hidden width of the per-head feed-forward network ``FFN'`` (shared by the heads).
        dropout: dropout on attention weights and residual branches.

    Shape:
        - input: ``x (B, L, D)``, ``mask (B, 1, L, L)`` bool (True: may attend).
        - output: ``(B, L, H, D // H)`` one representation per head, and the router weights ``(B, H, L, N)``.
    """

    def __init__(self, dim: int, num_heads: int, num_experts: int, ffn_hidden: int, dropout: float) -> None:
        super().__init__()
        self.H, self.N, self.dh = num_heads, num_experts, dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, num_heads * num_experts * self.dh)      # W_Q^(h,n), all at once
        self.key_value = nn.Linear(dim, 2 * dim)                            # W_K^(h), W_V^(h), shared by experts
        self.router_weight = nn.Parameter(torch.empty(num_heads, num_experts * self.dh, num_experts))
        self.router_bias = nn.Parameter(torch.empty(num_heads, num_experts))
        self.head_norm = nn.LayerNorm(self.dh)
        self.ffn = FeedForward(self.dh, ffn_hidden, dropout)                # FFN', shared by the heads
        self.out_norm = nn.LayerNorm(self.dh)
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.router_weight, std=1.0 / math.sqrt(self.N * self.dh))
        nn.init.zeros_(self.router_bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, D = x.shape
        H, N, dh = self.H, self.N, self.dh
        h = self.norm(x)
        # queries of all experts stacked along the sequence axis: (B, H, N*L, dh); row n*L + i is expert n, pos i
        q = self.query(h).view(B, L, H, N, dh).permute(0, 2, 3, 1, 4).reshape(B, H, N * L, dh)
        k, v = self.key_value(h).view(B, L, 2, H, dh).permute(2, 0, 3, 1, 4)            # (B, H, L, dh) each
        f = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.repeat(1, 1, N, 1),
                                           dropout_p=self.dropout if self.training else 0.0)
        f = f.view(B, H, N, L, dh).transpose(2, 3)                                          # (B, H, L, N, dh)
        beta = torch.softmax(torch.einsum("bhlk,hkn->bhln", f.reshape(B, H, L, N * dh), self.router_weight)
                             + self.router_bias[None, :, None, :], dim=-1)                  # (B, H, L, N)
        mixed = torch.einsum("bhln,bhlnd->bhld", beta, f)                                  # (B, H, L, dh)
        o = x.view(B, L, H, dh).transpose(1, 2) + self.drop(mixed)      # residual: the head's slice of x
        o = o + self.drop(self.ffn(self.head_norm(o)))
        return self.out_norm(o).transpose(1, 2), beta


class FacetHeads(nn.Module):
    """Per-head item scores from facet sub-embeddings, and the gate that weighs the heads.

    Shape:
        - input: ``F (N, H, dh)`` head representations, ``items (V, D)`` the item table.
        - output: per-head scores ``(N, H, V)`` and gate logits ``(N, H)`` (the gate weights are their softmax).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.H, self.dh = num_heads, dim // num_heads
        self.item_proj = nn.Parameter(torch.empty(num_heads, dim, self.dh))  # W_f^(h): item -> facet sub-embedding
        self.gate = nn.Linear(num_heads * self.dh, num_heads)                # W_g, b_g
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.item_proj, std=1.0 / math.sqrt(self.item_proj.shape[1]))

    def forward(self, F_: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sub = torch.einsum("vd,hdk->hvk", items, self.item_proj)            # (H, V, dh)
        scores = torch.einsum("nhk,hvk->nhv", F_, sub)                      # (N, H, V)
        return scores, self.gate(F_.flatten(1))                             # (N, H, V), (N, H)


@register_model
class FAME(SequentialModel):
    """SASRec whose last attention layer is FAME's facet-aware multi-head mixture of experts.

    Args:
        num_items: the largest item id (ids run from 1; 0 is padding).
        embedding_dim: item embedding / hidden size D (each head's facet has ``D // num_heads`` dimensions).
        max_len: the number of most recent items read.
        num_blocks: attention layers in all; the last one is the facet MoE layer (``num_blocks - 1`` plain
            SASRec blocks come first).
        num_heads: heads of every layer; in the last layer each head is a facet with its own prediction.
        num_experts: query experts per head in the last layer.
        ffn_hidden: feed-forward width of the plain blocks (default D); ``FFN'`` of the facets gets
            ``ffn_hidden // num_heads``.
        dropout: dropout rate.
        mix: how the gate combines the heads: ``"probs"`` (default) mixes the heads' softmax distributions,
            ``p(v) = sum_h g_h softmax(s^(h))_v`` (a mixture of softmaxes); ``"logits"`` mixes their scores,
            ``s(v) = sum_h g_h s^(h)_v``, before one softmax.
        init_std, seed, device: as in :class:`SASRec`.

    Shape:
        - input: a :class:`~ctrkit.data.TensorData` with ``varlen["item_seq"]`` ``(B, L)``, left-padded with 0.
        - output: ``{"next_item": (B, num_items + 1)}`` logits (log-probabilities with ``mix="probs"``).

    Example:
        >>> from ctrkit.models.sequential import FAME
        >>> m = FAME(num_items=5, embedding_dim=8, max_len=4, num_blocks=1, num_heads=2, num_experts=2)
        >>> m.gate_weights([[1, 2, 3], [4]]).sum(1).tolist()
        [1.0, 1.0]

    References:
        Mingrui Liu, Sixiao Zhang, Cheng Long. Facet-Aware Multi-Head Mixture-of-Experts Model for Sequential
        Recommendation. WSDM 2025 (arXiv:2411.01457).
    """

    def __init__(self, num_items: int, embedding_dim: int = 64, max_len: int = 50, num_blocks: int = 2,
                 num_heads: int = 2, num_experts: int = 2, ffn_hidden: int | None = None, dropout: float = 0.2,
                 mix: str = "probs", init_std: float = 0.02, seed: int | None = 1024, device: Any = "cpu") -> None:
        if mix not in MIXES:
            raise ValueError(f"FAME: mix must be one of {list(MIXES)}, got {mix!r}.")
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
            raise ValueError(f"FAME: num_experts must be an int >= 1, got {num_experts!r}.")
        super().__init__(num_items, embedding_dim=embedding_dim, max_len=max_len, num_blocks=num_blocks,
                         num_heads=num_heads, ffn_hidden=ffn_hidden, dropout=dropout, init_std=init_std, seed=seed,
                         device=device, shared_blocks=num_blocks - 1, config=locals())
        self.num_experts, self.mix = int(num_experts), mix
        self.facet_attention = FacetMoEAttention(self.embedding_dim, self.num_heads, self.num_experts,
                                                 max(1, self.ffn_hidden // self.num_heads), self.dropout_rate)
        self.facets = FacetHeads(self.embedding_dim, self.num_heads)
        self._finish_init()

    def states(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, L, H, D // H)``: each head's representation at each position."""
        x = self.encode(seq)
        return self.facet_attention(x, causal_mask(seq))[0]

    def head_scores(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head scores of the real items ``(N, H, num_items)`` (column j is item j + 1) and the gate's log
        weights ``(N, H)``."""
        scores, gate_logits = self.facets(states, self.item_table()[1:])
        return scores, torch.log_softmax(gate_logits, dim=-1)

    def state_scores(self, states: torch.Tensor) -> torch.Tensor:
        scores, log_gate = self.head_scores(states)
        if self.mix == "logits":       # one score per item: the gate-weighted sum of the heads' scores
            mixed = (log_gate.exp().unsqueeze(-1) * scores).sum(1)
        else:                          # log of the gate-weighted mixture of the heads' softmax distributions
            mixed = torch.logsumexp(log_gate.unsqueeze(-1) + torch.log_softmax(scores, dim=-1), dim=1)
        return F.pad(mixed, (1, 0), value=float("-inf"))   # item 0 (padding) is never recommended

    def candidate_scores(self, states: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        table, W = self.item_table(), self.facets.item_proj
        pos = (states * torch.einsum("nd,hdk->nhk", table[targets], W)).sum(-1, keepdim=True)  # (n, H, 1)
        neg = torch.einsum("nhk,hjk->nhj", states, torch.einsum("jd,hdk->hjk", table[negatives], W))  # (n, H, K)
        hit = self._candidate_mask(targets, negatives)
        scores = torch.cat([pos, neg], dim=-1).masked_fill(hit.unsqueeze(1), _MASKED)          # (n, H, 1 + K)
        log_gate = torch.log_softmax(self.facets.gate(states.flatten(1)), dim=-1)
        if self.mix == "logits":
            return (log_gate.exp().unsqueeze(-1) * scores).sum(1).masked_fill(hit, _MASKED)
        return torch.logsumexp(log_gate.unsqueeze(-1) + torch.log_softmax(scores, dim=-1), dim=1)

    def gate_weights(self, sequences: Any, batch_size: int = 1024) -> torch.Tensor:
        """The gate's weight of each head at each sequence's last position: ``(n, num_heads)``, rows sum to 1."""
        return self._map_sequences(sequences, "gate_weights", lambda b: self.head_scores(self.states(b)[:, -1])[1]
                                   .exp(), self.num_heads, batch_size)

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        return {"next_item": self.state_scores(self.states(batch.varlen[SEQ_FEATURE])[:, -1])}
