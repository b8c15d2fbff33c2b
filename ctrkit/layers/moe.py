"""Mixture-of-experts layer: an expert bank and its gates (softmax or attention) computed together."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .core import ParallelMLP, _check_units, get_activation
from .projection import ModelInput

__all__ = ["MixtureOfExperts"]


class MixtureOfExperts(nn.Module):
    """``num_experts`` experts mixed by ``num_gates`` softmax gates over a shared input.

    The first layer of all experts is one weight matrix ``(in, E*h)``; when the gates have no hidden layer (the
    MMoE paper's linear gate) the gate projections are appended to it, so experts and gates start with **one**
    GEMM. Deeper expert layers are one batched matmul each; the gate-weighted mixture is one batched matmul.

    Options (off by default):

    * ``residual=True``: every expert adds a linear projection of the layer's input to its output
      (``e_i(x) = f_i(x) + x P_i``, a skip connection across the expert); the projections are more columns of
      the first GEMM.
    * ``attention_gates=True``: gate ``g`` is attention of a learned query ``q_g`` over the expert outputs:
      ``score_gi = q_g · (W_k e_i) / sqrt(d)``, softmax over the experts (``W_k`` shared by the gates, ``d`` =
      ``attention_dim``, default the expert width), instead of a softmax over a linear map of the input.

    Args:
        in_features: input width.
        num_experts: number of experts (>= 1).
        num_gates: number of gates: 1 for OMoE, one per task for MMoE.
        expert_hidden_units: layer widths of every expert (non-empty).
        gate_hidden_units: hidden layers of each gate before its softmax (empty: linear gate).
        activation, dropout, use_bn: for the experts (and gate hidden layers).
        residual: add a linear skip connection to every expert.
        attention_gates: gates attend over the expert outputs with a learned query per gate.
        attention_dim: width ``d`` of the attention keys and queries (default: the expert output width).

    Shape:
        ``(B, in)`` → mixtures ``(G, B, H)`` and gate weights ``(B, G, E)``.

    Example:
        >>> moe = MixtureOfExperts(8, num_experts=3, num_gates=2, expert_hidden_units=(16,))
        >>> mix, gates = moe(torch.zeros(5, 8))
        >>> tuple(mix.shape), tuple(gates.shape)
        ((2, 5, 16), (5, 2, 3))
    """

    def __init__(self, in_features: int, num_experts: int, num_gates: int, expert_hidden_units: Sequence[int],
                 gate_hidden_units: Sequence[int] = (), activation: str = "relu", dropout: float = 0.0,
                 use_bn: bool = False, residual: bool = False, attention_gates: bool = False,
                 attention_dim: int | None = None) -> None:
        super().__init__()
        units = _check_units("MixtureOfExperts", expert_hidden_units)
        if not units:
            raise ValueError("MixtureOfExperts: expert_hidden_units must not be empty.")
        E, G, u0 = int(num_experts), int(num_gates), units[0]
        self.num_experts, self.num_gates, self.in_features, self.first_units = E, G, in_features, u0
        gate_units = _check_units("MixtureOfExperts", gate_hidden_units)
        if attention_gates and gate_units:
            raise ValueError(f"MixtureOfExperts: attention gates have no hidden layers (a query and a key matrix); "
                             f"got gate_hidden_units={tuple(gate_hidden_units)!r}. Pass () with attention gates.")
        self.attention_gates = bool(attention_gates)
        self.linear_gates = not gate_units and not self.attention_gates
        self.residual_width = E * units[-1] if residual else 0
        if self.attention_gates:   # defined before the expert weights (GradNorm picks the last shared matrix)
            d = units[-1] if attention_dim is None else int(attention_dim)
            if d < 1:
                raise ValueError(f"MixtureOfExperts: attention_dim must be an int >= 1, got {attention_dim!r}.")
            self.attention_dim = d
            self.gate_query = nn.Parameter(torch.empty(G, d))
            self.gate_key = nn.Parameter(torch.empty(units[-1], d))
        width = E * u0 + self.residual_width + (G * E if self.linear_gates else 0)
        # [experts' layer 1 | residual projections | linear gates]
        self.w_in = nn.Parameter(torch.empty(in_features, width))
        self.b_in = nn.Parameter(torch.empty(width))
        self.bn = nn.BatchNorm1d(E * u0) if use_bn else None
        self.act = get_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.deeper = ParallelMLP(E, u0, units[1:], activation, dropout, use_bn) if len(units) > 1 else None
        self.hidden_gates = bool(gate_units)
        if self.hidden_gates:
            self.gate_hidden = ParallelMLP(G, in_features, gate_units, activation)
            self.gate_weight = nn.Parameter(torch.empty(G, gate_units[-1], E))
            self.gate_bias = nn.Parameter(torch.empty(G, 1, E))
        self.output_dim = units[-1]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        E, u0 = self.num_experts, self.first_units
        bound = 1.0 / math.sqrt(self.in_features)  # nn.Linear's default, per expert and per gate
        nn.init.uniform_(self.w_in, -bound, bound)
        nn.init.uniform_(self.b_in[: E * u0 + self.residual_width], -bound, bound)
        nn.init.zeros_(self.b_in[E * u0 + self.residual_width:])
        if self.attention_gates:
            nn.init.normal_(self.gate_query, std=1.0 / math.sqrt(self.attention_dim))
            nn.init.normal_(self.gate_key, std=1.0 / math.sqrt(self.gate_key.shape[0]))
        if self.hidden_gates:
            gb = 1.0 / math.sqrt(self.gate_weight.shape[1])
            nn.init.uniform_(self.gate_weight, -gb, gb)
            nn.init.zeros_(self.gate_bias)

    def forward(self, x: torch.Tensor | ModelInput) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: a tensor ``(B, in)``, or the model input (:class:`~ctrkit.layers.ModelInput`), whose first GEMM
        the input projection computes. Returns the mixtures ``(G, B, H)`` and the gate weights ``(B, G, E)``."""
        if isinstance(x, ModelInput):
            h = x.linear(self.w_in, self.b_in)    # h: (B, E*u0 [+ E*H] [+ G*E])
            xt = x.tensor() if self.hidden_gates else None
        else:
            h = torch.addmm(self.b_in, x, self.w_in)
            xt = x
        E, G, u0 = self.num_experts, self.num_gates, self.first_units
        B = h.shape[0]
        # split (its backward is a cat) rather than slicing (backward zero-fills the whole h per slice)
        R = self.residual_width
        experts, skip, gate_logits = torch.split(h, [E * u0, R, h.shape[1] - E * u0 - R], dim=1)
        if self.bn is not None:
            experts = self.bn(experts)
        experts = self.dropout(self.act(experts)).view(B, E, u0)    # (B, E, u0)
        if self.deeper is not None:
            experts = self.deeper(experts.transpose(0, 1)).transpose(0, 1)  # (B, E, H)
        if R:
            experts = experts + skip.view(B, E, -1)
        if self.attention_gates:   # (B, E, H) @ (H, d) @ (d, G) -> (B, E, G)
            scores = torch.matmul(torch.matmul(experts, self.gate_key), self.gate_query.t())
            gate_logits = scores.transpose(1, 2) / math.sqrt(self.attention_dim)
        elif self.linear_gates:
            gate_logits = gate_logits.reshape(B, G, E)
        else:
            gate_logits = torch.baddbmm(self.gate_bias, self.gate_hidden(xt), self.gate_weight).transpose(0, 1)
        gates = torch.softmax(gate_logits, dim=-1)                  # (B, G, E)
        mix = torch.bmm(gates, experts)                             # (B, G, H)
        return mix.transpose(0, 1), gates
