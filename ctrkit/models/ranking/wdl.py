"""WDL: Wide & Deep (a linear "wide" part and an MLP "deep" part trained jointly).

Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016. https://arxiv.org/abs/1606.07792
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ...data.inputs import TensorData
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["WDL"]


@register_model
class WDL(LinearDeepModel):
    """``logit = wide(linear_feature_columns) + w·MLP(embeddings + dense of dnn_feature_columns)``.

    Args:
        linear_feature_columns: features of the wide (linear) part, e.g. including cross-product features the
            deep part does not read.
        dnn_feature_columns: features of the deep part.
        dnn_hidden_units: MLP layer widths (empty: the wide part alone).
        l2_reg_linear: L2 on the wide weights; l2_reg_embedding, l2_reg_dnn, init_std, seed, device, sparse: see
            :class:`~ctrkit.models.BaseModel`.
        dnn_dropout, dnn_activation, dnn_use_bn: for the MLP.
        task: ``"binary"`` or ``"regression"``; task_name: the output's name; gpus: ignored.
        task_names, task_types: the multi-task models' arguments, one entry each (e.g.
            ``task_names=["click"]``); when given they win over ``task_name`` / ``task``. More than one task
            is a ValueError.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), DenseFeat("age")]
        >>> WDL(cols, cols, dnn_hidden_units=(8,)).dnn.output_dim
        8
    """

    def __init__(self, linear_feature_columns, dnn_feature_columns, dnn_hidden_units: Sequence[int] = (256, 128),
                 l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0,
                 init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0, dnn_activation: str = "relu",
                 dnn_use_bn: bool = False, task: str = "binary", task_name: str = "label", device: str = "cpu",
                 sparse: bool = False, embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._build_dnn(dnn_hidden_units, dnn_activation, dnn_dropout, dnn_use_bn)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        logit = self.linear(batch)
        if self.use_dnn:
            logit = logit + self._dnn_logit(self._deep(batch)[1])
        return self._output(logit)
