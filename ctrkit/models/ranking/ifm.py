"""IFM: the input-aware factorization machine, whose per-field weights are re-estimated for every row.

Yu et al., "Input-aware Factorization Machine for Sparse Prediction", IJCAI 2019.
https://www.ijcai.org/proceedings/2019/203
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...features import split_feature_columns
from ...layers.core import MLP
from ...layers.fm import FM as FMLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["IFM"]


@register_model
class IFM(LinearDeepModel):
    """``logit = Σ_i m_i w_i + b + FM(m ⊙ E)``: an MLP over the field embeddings (the factor estimating
    network) gives each field a factor ``m_i = F · softmax(P·MLP(E))_i`` that refines both its linear weight and
    its embedding, so the same feature weighs differently in different rows.

    Args:
        linear_feature_columns, dnn_feature_columns: as in :class:`~ctrkit.DeepFM`. The linear part's id
            features must be those of ``dnn_feature_columns`` (each gets its factor); dense features enter the
            linear part unrefined, as in DeepCTR-Torch.
        dnn_hidden_units: the factor estimating network (non-empty; DeepCTR-Torch's default ``(256, 128)``).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.DeepFM`.

    Raises:
        ValueError: without sparse features, with unequal embedding dims, an empty ``dnn_hidden_units``, or
            linear id features that differ from the deep ones.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``; ``forward(batch, return_factors=True)`` also
        returns the factors ``m`` ``(B, F)`` (they sum to ``F`` per row).

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4)]
        >>> IFM(cols, cols, dnn_hidden_units=(8,)).factor_proj.out_features
        2
    """

    conformance_tags = {"needs_sparse": True}   # the FM and its factors are over field embeddings

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
        name = type(self).__name__
        self._require_sparse("the factor estimating network and the FM read their embeddings")
        dim = self._require_equal_dims("the FM term")
        if not dnn_hidden_units:
            raise ValueError(f"{name}: dnn_hidden_units must not be empty (the factor estimating network).")
        deep_ids = [f.name for f in self._sparse_dnn_features()]
        lin = split_feature_columns(list(linear_feature_columns or []))
        lin_ids = [f.name for f in lin.sparse + lin.varlen]
        if lin_ids != deep_ids:
            raise ValueError(f"{name}: the input-aware factors refine the linear weight of each field, so the "
                             f"linear part's id features must be the deep part's, in order: got {lin_ids} and "
                             f"{deep_ids}. Pass the same feature columns to both.")
        fields = len(self._field_features())       # the id fields, then any numeric embeddings
        self._id_fields = len(deep_ids)
        self.fen = MLP(fields * dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.factor_proj = nn.Linear(self.fen.output_dim, fields, bias=False)
        self.fm = FMLayer()
        self._finish_init()

    def forward(self, batch: TensorData, return_factors: bool = False):
        emb = self.embedding(self.deep_view(batch))[0]                   # (B, F, D)
        m = emb.shape[1] * torch.softmax(self.factor_proj(self.fen(emb.flatten(1))), dim=1)   # (B, F)
        logit = self.linear(batch, field_weights=m[:, :self._id_fields]) + self.fm(emb * m.unsqueeze(-1))
        out = self._output(logit)
        return (out, m) if return_factors else out
