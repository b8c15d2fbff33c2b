"""Recurrent layers over behaviour sequences: DIEN's interest extractor (a GRU with the auxiliary next-behaviour
loss) and its interest evolution (a GRU whose update is steered by attention on the candidate item).

Sequences arrive as ``(B, L, E)`` padded at the end, with a boolean mask ``(B, L)`` of the valid positions.
A padded position never changes a state that a valid position reads, so rows of any length run in one batch.

Reference:
    Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction", AAAI 2019.
    https://arxiv.org/abs/1809.03672
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionSequencePoolingLayer
from .core import MLP

__all__ = ["AttentionalGRU", "InterestExtractor", "InterestEvolution", "last_valid"]


def last_valid(seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The state at each row's last valid position ``(B, L, H) → (B, H)``; zeros for an empty row."""
    length = mask.sum(dim=1)
    idx = (length - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, seq.shape[-1])
    return seq.gather(1, idx)[:, 0] * (length > 0).unsqueeze(1).to(seq.dtype)


class AttentionalGRU(nn.Module):
    """A GRU whose update gate is scaled by an attention score per step (DIEN's ``"AUGRU"``:
    ``u'_t = a_t · u_t``) or replaced by it (``"AGRU"``: ``u'_t = a_t``); ``h_t = (1 - u'_t) h_{t-1} + u'_t h̃_t``.

    The input projections of all steps are one matrix product; the loop runs over time steps only. A step with
    score 0 (padding) leaves the state unchanged, so the final state is the state at the row's last valid step.

    Args:
        input_size, hidden_size: widths of the inputs and the state.
        gru_type: ``"AUGRU"`` or ``"AGRU"``.

    Shape:
        inputs ``(B, L, E)``, scores ``(B, L)`` → final state ``(B, H)``.

    Example:
        >>> AttentionalGRU(4, 4)(torch.randn(2, 3, 4), torch.rand(2, 3)).shape
        torch.Size([2, 4])
    """

    def __init__(self, input_size: int, hidden_size: int, gru_type: str = "AUGRU") -> None:
        super().__init__()
        if gru_type not in ("AUGRU", "AGRU"):
            raise ValueError(f"AttentionalGRU: gru_type must be 'AUGRU' or 'AGRU', got {gru_type!r}.")
        self.gru_type, self.hidden_size = gru_type, hidden_size
        self.input_proj = nn.Linear(input_size, 3 * hidden_size)    # reset | update | candidate
        self.hidden_proj = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, inputs: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        B, L, _ = inputs.shape
        gi = self.input_proj(inputs)                                  # (B, L, 3H), every step at once
        h = inputs.new_zeros(B, self.hidden_size)
        for t in range(L):
            i_r, i_u, i_n = gi[:, t].chunk(3, dim=1)
            h_r, h_u, h_n = self.hidden_proj(h).chunk(3, dim=1)
            r = torch.sigmoid(i_r + h_r)
            n = torch.tanh(i_n + r * h_n)
            a = scores[:, t:t + 1]
            u = a * torch.sigmoid(i_u + h_u) if self.gru_type == "AUGRU" else a
            h = (1 - u) * h + u * n
        return h


class InterestExtractor(nn.Module):
    """DIEN's interest extractor: a GRU over the behaviour embeddings, and the auxiliary loss that asks each
    hidden state ``h_t`` to tell the next clicked behaviour ``e_{t+1}`` from a sampled negative ``e'_{t+1}``.

    Args:
        input_size: behaviour embedding width ``E`` (also the state's).
        aux_hidden_units: hidden layers of the auxiliary network (sigmoid activations, as in the paper).

    Shape:
        keys ``(B, L, E)``, mask ``(B, L)`` → interests ``(B, L, E)`` (zeros at padding). :meth:`auxiliary_loss`
        → a scalar.

    Example:
        >>> ext = InterestExtractor(4)
        >>> keys, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True, True, True]])
        >>> ext(keys, mask).shape, ext.auxiliary_loss(ext(keys, mask), keys, torch.randn(2, 3, 4), mask).dim()
        (torch.Size([2, 3, 4]), 0)
    """

    def __init__(self, input_size: int, aux_hidden_units: Sequence[int] = (100, 50)) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, input_size, batch_first=True)
        self.aux = MLP(2 * input_size, tuple(aux_hidden_units), "sigmoid")
        self.aux_out = nn.Linear(self.aux.output_dim, 1)

    def forward(self, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(keys)            # padding is at the end: valid steps never read a padded one
        return out * mask.unsqueeze(-1).to(out.dtype)

    def auxiliary_loss(self, interests: torch.Tensor, keys: torch.Tensor, neg_keys: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of ``(h_t, e_{t+1})`` as positive and ``(h_t, e'_{t+1})`` as negative, over
        the steps whose next behaviour is valid."""
        h = interests[:, :-1]
        valid = mask[:, 1:].to(h.dtype)
        pos = self.aux_out(self.aux(torch.cat([h, keys[:, 1:]], dim=-1)))[..., 0]
        neg = self.aux_out(self.aux(torch.cat([h, neg_keys[:, 1:]], dim=-1)))[..., 0]
        bce = (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none")
               + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none"))
        return (bce * valid).sum() / (2 * valid.sum()).clamp_min(1.0)


class InterestEvolution(nn.Module):
    """DIEN's interest evolution: how the extracted interests lead to the candidate item.

    ``gru_type``: ``"GRU"`` (a second GRU, then attention pooling against the candidate), ``"AIGRU"`` (the
    attention scores scale the GRU's inputs; its last valid state), ``"AGRU"`` / ``"AUGRU"`` (the scores steer
    the update gate, :class:`AttentionalGRU`).

    Args:
        input_size: width ``E`` of the interests and the candidate query.
        gru_type: one of the four above.
        att_hidden_units, att_activation, att_weight_normalization: the attention unit
            (:class:`~ctrkit.layers.AttentionSequencePoolingLayer`).

    Shape:
        query ``(B, E)``, interests ``(B, L, E)``, mask ``(B, L)`` → ``(B, E)``.

    Example:
        >>> evo = InterestEvolution(4, "AUGRU", (8,))
        >>> evo(torch.randn(2, 4), torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)).shape
        torch.Size([2, 4])
    """

    TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")

    def __init__(self, input_size: int, gru_type: str = "GRU", att_hidden_units: Sequence[int] = (64, 16),
                 att_activation: str = "relu", att_weight_normalization: bool = True) -> None:
        super().__init__()
        if gru_type not in self.TYPES:
            raise ValueError(f"InterestEvolution: gru_type must be one of {self.TYPES}, got {gru_type!r}.")
        self.gru_type = gru_type
        self.attention = AttentionSequencePoolingLayer(input_size, tuple(att_hidden_units), att_activation,
                                                       att_weight_normalization)
        self.gru: nn.Module = (AttentionalGRU(input_size, input_size, gru_type) if gru_type in ("AGRU", "AUGRU")
                               else nn.GRU(input_size, input_size, batch_first=True))

    def forward(self, query: torch.Tensor, interests: torch.Tensor, mask: torch.Tensor,
                return_scores: bool = False):
        if self.gru_type == "GRU":
            out, _ = self.gru(interests)
            scores = self.attention(query, out, mask, return_score=True)
            h = (scores.unsqueeze(-1) * out).sum(dim=1)
        else:
            scores = self.attention(query, interests, mask, return_score=True)   # 0 at padding
            if self.gru_type == "AIGRU":
                out, _ = self.gru(interests * scores.unsqueeze(-1))
                h = last_valid(out, mask)
            else:
                h = self.gru(interests, scores)
        return (h, scores) if return_scores else h
