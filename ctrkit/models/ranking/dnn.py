"""DNN: a plain MLP over all embeddings and dense features, one output (the single-task baseline)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ...data.inputs import TensorData
from ...layers.core import MLP, Towers
from ...registry import register_model
from .._tasks import single_task
from ..base import BaseModel

__all__ = ["DNN"]


@register_model
class DNN(BaseModel):
    """Single-task MLP: embeddings + dense → ``dnn_hidden_units`` → one logit.

    Args:
        dnn_feature_columns: feature columns.
        dnn_hidden_units: layer widths.
        task: ``"binary"``, ``"regression"`` or ``"multiclass"`` (DeepCTR's argument).
        num_classes: the number of classes when ``task="multiclass"`` (the output is then ``C`` logits).
        task_name: the output's name in ``fit`` / ``evaluate`` targets and logs.
        task_names, task_types: the multi-task models' arguments, one entry each (e.g.
            ``task_names=["click"]``); when given they win over ``task_name`` / ``task``. More than one task
            is a ValueError.
        cross_layers, cross_rank: GDCN's gated cross network on the input (this many layers, this rank; None:
            full rank), as in :class:`~ctrkit.MMoE`; 0 layers: none.
        other arguments: as in :class:`~ctrkit.MMoE`.

    Example:
        >>> from ctrkit import SparseFeat
        >>> DNN([SparseFeat("user", 10, 4)], dnn_hidden_units=(8,)).task_names
        ['label']
    """

    supports_multiclass = True

    def __init__(self, dnn_feature_columns, dnn_hidden_units: Sequence[int] = (256, 128),
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task: str = "binary", task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native",
                 gpus=None, num_classes: int | None = None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None,
                 cross_layers: int = 0, cross_rank: int | None = None) -> None:
        super().__init__(dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn, init_std=init_std,
                         seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals(), num_classes=num_classes)
        self._add_input_cross(cross_layers, cross_rank)
        self.dnn = MLP(self.input_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.towers = Towers(self.task_names, self.dnn.output_dim, (), widths=self.task_widths)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        return self.towers(self.dnn(self.inputs(batch)))
