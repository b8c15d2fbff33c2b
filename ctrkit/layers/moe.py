"""Mixture-of-experts layer: an expert bank and softmax gates computed together."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .core import MLP, ParallelMLP

__all__ = ["MixtureOfExperts"]


class MixtureOfExperts(nn.Module):
    """``num_experts`` experts mixed by ``num_gates`` softmax gates over a shared input.

    When the gates have no hidden layer (the MMoE paper's linear gate), the experts' first layer and all gates
    are **one** GEMM against concatenated weights; the experts' later layers are one batched matmul each.

    Args:
        in_features: input width.
        num_experts: number of experts (>= 1).
        num_gates: number of gates: 1 for OMoE, one per task for MMoE.
        expert_hidden_units: layer widths of every expert (non-empty).
        gate_hidden_units: hidden layers of each gate before its softmax (empty: linear gate).
        activation, dropout, use_bn: for the experts (and gate hidden layers).

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
                 use_bn: bool = False) -> None:
        super().__init__()
        self.num_experts, self.num_gates = int(num_experts), int(num_gates)
        self.experts = ParallelMLP(num_experts, in_features, expert_hidden_units, activation, dropout, use_bn)
        self.gate_hidden = gate_hidden_units and ParallelMLP(num_gates, in_features, gate_hidden_units, activation)
        gate_in = self.gate_hidden.output_dim if self.gate_hidden else in_features
        # gate projections stacked: (G, gate_in, E)
        self.gate_weight = nn.Parameter(torch.empty(num_gates, gate_in, num_experts))
        self.gate_bias = nn.Parameter(torch.empty(num_gates, 1, num_experts))
        self.fused = not self.gate_hidden and not use_bn
        self.output_dim = self.experts.output_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / self.gate_weight.shape[1] ** 0.5
        nn.init.uniform_(self.gate_weight, -bound, bound)
        nn.init.zeros_(self.gate_bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        E, G = self.num_experts, self.num_gates
        B = x.shape[0]
        w0, b0 = self.experts.weights[0], self.experts.biases[0]
        u = w0.shape[2]
        if self.fused:
            d = x.shape[1]
            weight = torch.cat([w0.permute(1, 0, 2).reshape(d, E * u), self.gate_weight.permute(1, 0, 2).reshape(d, G * E)],
                               dim=1)
            bias = torch.cat([b0.reshape(E * u), self.gate_bias.reshape(G * E)])
            h = torch.addmm(bias, x, weight)
            first, gate_logits = h[:, : E * u], h[:, E * u:].view(B, G, E)
            experts = self.experts(x, first=first)
        else:
            experts = self.experts(x)
            g_in = self.gate_hidden(x) if self.gate_hidden else x.unsqueeze(0).expand(G, -1, -1)
            gate_logits = torch.baddbmm(self.gate_bias, g_in, self.gate_weight).transpose(0, 1)  # (B, G, E)
        gates = torch.softmax(gate_logits, dim=-1)
        # (B, G, E, 1) * (B, 1, E, H) summed over E: an element-wise product beats B tiny (G,E)@(E,H) matmuls
        mix = (gates.unsqueeze(-1) * experts.transpose(0, 1).unsqueeze(1)).sum(2).transpose(0, 1)  # (G, B, H)
        return mix, gates
