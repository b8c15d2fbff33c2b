"""OMoE: One-gate Mixture-of-Experts, the MMoE paper's main baseline (one softmax gate shared by all tasks).

Ma et al., KDD 2018, §4 and §5 (https://doi.org/10.1145/3219819.3220007). No peer library ships it.
"""
from __future__ import annotations

from ...registry import register_model
from .mmoe import MMoE

__all__ = ["OMoE"]


@register_model
class OMoE(MMoE):
    """Like :class:`~ctrkit.MMoE` (same arguments) but with a single gate: every task sees the same mixture.

    Example:
        >>> from ctrkit import SparseFeat
        >>> m = OMoE([SparseFeat("user", 10, 4)], num_experts=2, expert_dnn_hidden_units=(8,))
        >>> m.moe.num_gates
        1
    """

    _num_gates_per_task = False
