"""PLE: Progressive Layered Extraction (stacked CGC layers of task-specific and shared experts).

Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized
Recommendations", RecSys 2020. https://doi.org/10.1145/3383313.3412236
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ...layers.core import ParallelMLP, Towers
from ...registry import register_model
from ..base import BaseModel

__all__ = ["PLE"]


class _CGC(nn.Module):
    """One extraction level: ``T * S`` task-specific experts and ``K`` shared experts (one ParallelMLP), a
    softmax gate per task over its own ``S`` + the ``K`` shared experts, and (below the last level) a shared
    gate over all experts that feeds the next level's shared experts.

    Inputs are ``(B, in)`` (level 0: every branch reads the same input) or ``(T [+ 1], B, in)`` (one per task,
    the shared branch last); outputs ``(T + 1, B, H)`` (``(T, B, H)`` at the last level or without shared
    experts) and the task gates ``(B, T, S + K)``.
    """

    task_experts: torch.Tensor  # buffers, registered in __init__
    owner: torch.Tensor

    def __init__(self, in_features: int, num_tasks: int, specific: int, shared: int, expert_units, gate_units,
                 activation: str, dropout: float, use_bn: bool, last: bool) -> None:
        super().__init__()
        T, S, K = num_tasks, specific, shared
        self.T, self.S, self.K, self.last = T, S, K, last
        n = T * S + K
        self.experts = ParallelMLP(n, in_features, expert_units, activation, dropout, use_bn)
        # the experts each task's gate mixes: its own S, then the K shared ones
        idx = [[t * S + s for s in range(S)] + [T * S + k for k in range(K)] for t in range(T)]
        self.register_buffer("task_experts", torch.tensor(idx, dtype=torch.long), persistent=False)
        # expert e reads branch owner[e] (task t for its specific experts, the shared branch T for the shared)
        owner = [t for t in range(T) for _ in range(S)] + [T] * K
        self.register_buffer("owner", torch.tensor(owner, dtype=torch.long), persistent=False)
        self.task_gates = ParallelMLP(T, in_features, tuple(gate_units) + (S + K,), activation, last_activation=False)
        self.shared_gate = None if last or K == 0 else \
            ParallelMLP(1, in_features, tuple(gate_units) + (n,), activation, last_activation=False)
        self.output_dim = self.experts.output_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.T
        shared_in: torch.Tensor | None
        if x.dim() == 2:                                   # level 0: one shared input
            experts = self.experts(x)                      # (n, B, H)
            task_logits = self.task_gates(x)               # (T, B, S+K)
            shared_in = x
        else:
            experts = self.experts(x.index_select(0, self.owner))
            task_logits = self.task_gates(x[:T])
            shared_in = x[T] if self.shared_gate is not None else None
        gates = torch.softmax(task_logits, dim=-1)                                   # (T, B, S+K)
        # a weighted sum per row: broadcast multiply + sum (a bmm over B tiny matrices is ~3x slower on CPU)
        own = experts.index_select(0, self.task_experts.flatten()).view(T, -1, *experts.shape[1:])
        mixed = (gates.permute(0, 2, 1).unsqueeze(-1) * own).sum(dim=1)               # (T, B, H)
        if self.shared_gate is None:   # the last level, or no shared experts to feed
            return mixed, gates.transpose(0, 1)
        g = torch.softmax(self.shared_gate(shared_in)[0], dim=-1)                   # (B, n)
        shared = (g.t().unsqueeze(-1) * experts).sum(dim=0)                         # (B, H)
        return torch.cat([mixed, shared.unsqueeze(0)]), gates.transpose(0, 1)


@register_model
class PLE(BaseModel):
    """Customized Gate Control (CGC) levels stacked ``num_levels`` deep; ``num_levels=1`` is CGC.

    Every level has ``specific_expert_num`` experts per task and ``shared_expert_num`` shared experts; task
    ``t``'s gate mixes its own experts and the shared ones; below the last level a shared gate mixes all
    experts into the next level's shared input. The two counts are independent (either may be 0, not both).

    Args:
        dnn_feature_columns: feature columns (an encoder's carry the encoder).
        shared_expert_num: shared experts per level.
        specific_expert_num: task-specific experts per task and level.
        num_levels: number of extraction levels (1: CGC).
        expert_dnn_hidden_units: layer widths of every expert (non-empty).
        gate_dnn_hidden_units: hidden layers of each gate before its softmax (``()``: a linear gate).
        tower_dnn_hidden_units: hidden layers of each task tower.
        l2_reg_embedding, l2_reg_dnn, init_std, seed, device, sparse: see :class:`~ctrkit.models.BaseModel`.
        dnn_dropout, dnn_activation, dnn_use_bn: for experts and towers.
        task_types: ``"binary"`` / ``"regression"`` / ``"multiclass"`` per task; task_names: one name per task.
        num_classes: classes of each multiclass task (an int, a list in task order or ``{task: C}``).
        cross_layers, cross_rank: GDCN's gated cross network on the input (this many layers, this rank; None:
            full rank), as in :class:`~ctrkit.MMoE`; 0 layers: none.
        gpus: accepted for DeepCTR-Torch compatibility and ignored.

    Shape:
        ``forward(batch)`` → ``{task: logits (B,)}``; ``forward(batch, return_gates=True)`` also returns the
        last level's task gates ``(B, T, specific_expert_num + shared_expert_num)``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), DenseFeat("age")]
        >>> m = PLE(cols, shared_expert_num=2, specific_expert_num=1, num_levels=2,
        ...         expert_dnn_hidden_units=(8,), gate_dnn_hidden_units=(), task_names=["ctr", "cvr"])
        >>> g = m.gate_weights({"user": [1, 2, 3], "age": [0.1, 0.2, 0.3]})
        >>> g["ctr"].shape                    # 1 specific + 2 shared experts
        (3, 3)
    """

    multitask = True
    supports_multiclass = True

    def __init__(self, dnn_feature_columns, shared_expert_num: int = 1, specific_expert_num: int = 1,
                 num_levels: int = 2, expert_dnn_hidden_units: Sequence[int] = (256, 128),
                 gate_dnn_hidden_units: Sequence[int] = (64,), tower_dnn_hidden_units: Sequence[int] = (64,),
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task_types: Sequence[str] = ("binary", "binary"), task_names: Sequence[str] = ("ctr", "ctcvr"),
                 device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, num_classes=None, cross_layers: int = 0,
                 cross_rank: int | None = None) -> None:
        super().__init__(dnn_feature_columns, task_names, task_types, l2_reg_embedding=l2_reg_embedding,
                         l2_reg_dnn=l2_reg_dnn, init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend,
                         config=locals(), num_classes=num_classes)
        name = type(self).__name__
        for arg, v, lo in (("shared_expert_num", shared_expert_num, 0), ("specific_expert_num", specific_expert_num, 0),
                           ("num_levels", num_levels, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: {arg} must be an int >= {lo}, got {v!r}.")
        if shared_expert_num + specific_expert_num == 0:
            raise ValueError(f"{name}: shared_expert_num and specific_expert_num are both 0; a level needs experts.")
        if not expert_dnn_hidden_units:
            raise ValueError(f"{name}: expert_dnn_hidden_units must not be empty, got {expert_dnn_hidden_units!r}.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: the feature columns give an input of width 0.")
        self._add_input_cross(cross_layers, cross_rank)
        T = len(self.task_names)
        units = tuple(expert_dnn_hidden_units)
        self.levels = nn.ModuleList()
        width = self.input_dim
        for lv in range(num_levels):
            level = _CGC(width, T, specific_expert_num, shared_expert_num, units, tuple(gate_dnn_hidden_units),
                         dnn_activation, dnn_dropout, dnn_use_bn, last=lv == num_levels - 1)
            self.levels.append(level)
            width = level.output_dim
        self.towers = Towers(self.task_names, width, tuple(tower_dnn_hidden_units), dnn_activation, dnn_dropout,
                             dnn_use_bn, widths=self.task_widths)
        self._finish_init()

    def forward(self, batch, return_gates: bool = False):
        h = self._input(batch)
        gates = None
        for level in self.levels:
            h, gates = level(h)
        out = self.towers(h)
        return (out, gates) if return_gates else out

    def gate_weights(self, x, batch_size: int = 4096) -> dict[str, np.ndarray]:
        """The last level's gate weights per task: ``{task: (n, specific_expert_num + shared_expert_num)}``,
        the task's own experts first, then the shared ones."""
        g = self._map_batches(x, lambda b: self.forward(b, return_gates=True)[1], "gate_weights",
                              batch_size).numpy()  # (n, T, S+K)
        return {t: g[:, i] for i, t in enumerate(self.task_names)}
