"""ONN (a.k.a. NFFM): operation-aware embeddings, one per field pair, whose products feed an MLP.

Yang et al., "Operation-aware Neural Networks for User Response Prediction", Neural Networks 2020.
https://arxiv.org/abs/1904.12579
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...features import DenseFeat, VarLenSparseFeat
from ...layers.core import MLP
from ...layers.embedding import EmbeddingLayer
from ...layers.interaction import FieldAwareProduct
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["ONN"]


def _widened(f, dim: int):
    if isinstance(f, VarLenSparseFeat):
        return dataclasses.replace(f, sparsefeat=dataclasses.replace(f.sparsefeat, embedding_dim=dim))
    if isinstance(f, DenseFeat):     # a numeric embedding: one width-dim field as well
        assert f.embedding is not None   # only embedded dense features are fields
        return dataclasses.replace(f, embedding=dataclasses.replace(f.embedding, embedding_dim=dim))
    return dataclasses.replace(f, embedding_dim=dim)


@register_model
class ONN(LinearDeepModel):
    """``logit = linear + w·MLP([e_i^{(j)} ⊙ e_j^{(i)} for i < j, dense])``: every field has one embedding per
    operation, i.e. per other field it is multiplied with (field-aware, as in FFM), so a feature can represent
    itself differently towards each partner.

    The ``F - 1`` operation embeddings of a field are one row of a ``(F-1)·D``-wide table, looked up once per
    field; the pair products are one gather (:class:`~ctrkit.layers.FieldAwareProduct`). Var-length features
    are fields too (their operation embeddings pooled with their combiner); DeepCTR-Torch's ONN only pairs
    the fixed-length sparse features.

    Args:
        linear_feature_columns, dnn_feature_columns: as in :class:`~ctrkit.DeepFM` (at least two sparse /
            var-length ``dnn_feature_columns``, one embedding_dim ``D``).
        dnn_hidden_units: MLP widths (DeepCTR-Torch's default ``(128, 128)``).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.DeepFM`.

    Raises:
        ValueError: with fewer than two sparse features in ``dnn_feature_columns``, or unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), SparseFeat("city", 5, 4)]
        >>> m = ONN(cols, cols, dnn_hidden_units=(8,))
        >>> m.embedding.weights[0].shape      # 35 ids x (3 - 1) operations x 4
        torch.Size([35, 8])
    """

    dnn: MLP                # always built here (the base class's optional deep part is not used)
    dnn_linear: nn.Linear
    conformance_tags = {"needs_sparse": True}   # the products are over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, dnn_hidden_units: Sequence[int] = (128, 128),
                 l2_reg_embedding: float = 0.0, l2_reg_linear: float = 0.0, l2_reg_dnn: float = 0.0,
                 dnn_dropout: float = 0.0, init_std: float = 0.01, seed: int = 1024, dnn_use_bn: bool = False,
                 dnn_activation: str = "relu", task: str = "binary", task_name: str = "label",
                 device: str = "cpu", sparse: bool = False, embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the operation-aware products pair their embeddings")
        dim = self._require_equal_dims("the operation-aware products")
        ids = self._field_features()
        if len(ids) < 2:
            raise ValueError(f"{type(self).__name__}: needs at least two SparseFeat / VarLenSparseFeat in "
                             f"dnn_feature_columns (a pair to multiply), got {[f.name for f in ids]}.")
        fields = len(ids)
        wide = [_widened(f, (fields - 1) * dim) if f in ids else f for f in self.dnn_feature_columns]
        with torch.random.fork_rng(devices=[]):     # the operation-aware tables replace the plain ones
            if seed is not None:
                torch.manual_seed(int(seed))
            self.embedding = EmbeddingLayer(wide, init_std=init_std, sparse=sparse)
        self.ffm = FieldAwareProduct(fields, dim)
        self.dnn = MLP(fields * (fields - 1) // 2 * dim + self.dense_dim, tuple(dnn_hidden_units), dnn_activation,
                       dnn_dropout, dnn_use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        x = self.deep_view(batch)
        parts = [self.ffm(self.embedding(x)[0]).flatten(1)]               # (B, P·D)
        if x.dense is not None and self.dense_dim:
            parts.append(x.dense)
        logit = self.linear(batch) + self.dnn_linear(self.dnn(torch.cat(parts, dim=1)))[:, 0]
        return self._output(logit)
