"""NFM: bi-interaction pooling of the field embeddings feeding an MLP, plus a linear part.

He & Chua, "Neural Factorization Machines for Sparse Predictive Analytics", SIGIR 2017.
https://arxiv.org/abs/1708.05027
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.fm import BiInteractionPooling
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["NFM"]


@register_model
class NFM(LinearDeepModel):
    """``logit = linear + w·MLP([BiInteraction(field embeddings), dense])``.

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the bi-interaction (sparse / var-length, one embedding_dim) and of the
            MLP (the pooled ``D`` values plus the dense values).
        dnn_hidden_units: MLP layer widths (empty: the pooled vector goes straight to the output weight).
        bi_dropout: dropout on the bi-interaction vector.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: without a sparse feature in ``dnn_feature_columns``, or with unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("age")]
        >>> NFM(cols, cols, dnn_hidden_units=(8,)).dnn.net[0].in_features     # 4 pooled + 1 dense
        5
    """

    conformance_tags = {"needs_sparse": True}   # the bi-interaction is over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, dnn_hidden_units: Sequence[int] = (128, 128),
                 l2_reg_embedding: float = 0.0, l2_reg_linear: float = 0.0, l2_reg_dnn: float = 0.0,
                 init_std: float = 0.01, seed: int = 1024, bi_dropout: float = 0.0, dnn_dropout: float = 0.0,
                 dnn_activation: str = "relu", task: str = "binary", task_name: str = "label", device: str = "cpu",
                 sparse: bool = False, embedding_backend: str = "native", dnn_use_bn: bool = False, gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the bi-interaction pools their embeddings")
        dim = self._require_equal_dims("the bi-interaction pooling")
        self.bi_pooling = BiInteractionPooling()
        self.bi_dropout = nn.Dropout(bi_dropout)
        self.dnn = MLP(dim + self.dense_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        emb, dense = self._fields(batch)
        h = self.bi_dropout(self.bi_pooling(emb))
        if dense is not None:
            h = torch.cat([h, dense], dim=1)
        assert self.dnn is not None and self.dnn_linear is not None
        return self._output(self.linear(batch) + self.dnn_linear(self.dnn(h))[:, 0])
