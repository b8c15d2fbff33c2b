"""Shared-Bottom: one bottom network shared by all tasks, one tower per task.

Caruana, "Multitask Learning", Machine Learning 1997; the baseline of the MMoE paper (KDD 2018).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ...data.inputs import TensorData
from ...layers.core import MLP, Towers
from ...registry import register_model
from ..base import BaseModel

__all__ = ["SharedBottom"]


@register_model
class SharedBottom(BaseModel):
    """A shared MLP bottom and one tower per task.

    Args:
        dnn_feature_columns: feature columns.
        bottom_dnn_hidden_units: layer widths of the shared bottom.
        tower_dnn_hidden_units: hidden layers of each task tower.
        cross_layers, cross_rank: GDCN's gated cross network on the input (this many layers, this rank; None:
            full rank), as in :class:`~ctrkit.MMoE`; 0 layers: none.
        other arguments: as in :class:`~ctrkit.MMoE`.

    Example:
        >>> from ctrkit import SparseFeat
        >>> m = SharedBottom([SparseFeat("user", 10, 4)], bottom_dnn_hidden_units=(8,), task_names=["a", "b"])
        >>> m.task_names
        ['a', 'b']
    """

    multitask = True
    supports_multiclass = True

    def __init__(self, dnn_feature_columns, bottom_dnn_hidden_units: Sequence[int] = (256, 128),
                 tower_dnn_hidden_units: Sequence[int] = (64,), l2_reg_embedding: float = 0.0,
                 l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0,
                 dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task_types: Sequence[str] = ("binary", "binary"), task_names: Sequence[str] = ("ctr", "ctcvr"),
                 device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, num_classes=None, cross_layers: int = 0,
                 cross_rank: int | None = None) -> None:
        super().__init__(dnn_feature_columns, task_names, task_types, l2_reg_embedding=l2_reg_embedding,
                         l2_reg_dnn=l2_reg_dnn, init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend,
                         config=locals(), num_classes=num_classes)
        self._add_input_cross(cross_layers, cross_rank)
        self.bottom = MLP(self.input_dim, tuple(bottom_dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.towers = Towers(self.task_names, self.bottom.output_dim, tuple(tower_dnn_hidden_units),
                             dnn_activation, dnn_dropout, dnn_use_bn, widths=self.task_widths)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        return self.towers(self.bottom(self.inputs(batch)))
