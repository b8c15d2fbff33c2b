"""DCN-Mix: DCN-V2 with each cross layer a mixture of low-rank experts.

Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
Systems", WWW 2021, §3.3. https://arxiv.org/abs/2008.13535
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...layers.core import MLP
from ...layers.interaction import CrossNetMix
from ...registry import register_model
from .lr import LinearDeepModel

__all__ = ["DCNMix"]


@register_model
class DCNMix(LinearDeepModel):
    """``logit = linear + w·[CrossNetMix(x0), MLP(x0)]``; every cross layer mixes ``num_experts`` rank-``low_rank``
    experts with a softmax gate (all experts of a layer computed in one batched product).

    Args:
        linear_feature_columns, dnn_feature_columns, cross_num, dnn_hidden_units, l2_reg_cross: as in
            :class:`~ctrkit.DCN`.
        low_rank: rank of each expert.
        num_experts: experts per cross layer.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), DenseFeat("age")]
        >>> m = DCNMix(cols, cols, cross_num=2, low_rank=2, num_experts=3, dnn_hidden_units=(8,))
        >>> tuple(m.crossnet.U.shape)         # (layers, experts, input width, rank)
        (2, 3, 5, 2)
    """

    def __init__(self, linear_feature_columns, dnn_feature_columns, cross_num: int = 2,
                 dnn_hidden_units: Sequence[int] = (128, 128), l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, l2_reg_cross: float = 0.0, l2_reg_dnn: float = 0.0,
                 init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0, low_rank: int = 32,
                 num_experts: int = 4, dnn_activation: str = "relu", dnn_use_bn: bool = False, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False, gpus=None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns, task=task, task_name=task_name,
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse, config=locals())
        name = type(self).__name__
        if isinstance(cross_num, bool) or not isinstance(cross_num, int) or cross_num < 0:
            raise ValueError(f"{name}: cross_num must be an int >= 0, got {cross_num!r}.")
        if cross_num == 0 and not dnn_hidden_units:
            raise ValueError(f"{name}: cross_num=0 and dnn_hidden_units=() leave no cross or deep part; set one.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: dnn_feature_columns is empty; the cross and deep parts need an input.")
        self.crossnet = CrossNetMix(self.input_dim, low_rank, num_experts, cross_num) if cross_num else None
        self.dnn = MLP(self.input_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn) \
            if dnn_hidden_units else None
        width = (self.input_dim if self.crossnet is not None else 0) + (self.dnn.output_dim if self.dnn else 0)
        self.dnn_linear = nn.Linear(width, 1, bias=False)
        if self.crossnet is not None:
            self._l2_modules = {"crossnet": float(l2_reg_cross)}
        self._finish_init()

    def forward(self, batch):
        x0 = self._deep(batch)[1]
        parts = ([self.crossnet(x0)] if self.crossnet is not None else []) + ([self.dnn(x0)] if self.dnn else [])
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self._output(self.linear(batch) + self.dnn_linear(h)[:, 0])
