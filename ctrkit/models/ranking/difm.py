"""DIFM: input-aware factors, from a vector-wise (self-attention) and a bit-wise (MLP) view of the fields,
re-weight the linear and FM terms of every row.

Lu et al., "A Dual Input-aware Factorization Machine for CTR Prediction", IJCAI 2020.
https://www.ijcai.org/proceedings/2020/0434
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...features import split_feature_columns
from ...layers.attention import InteractingLayer
from ...layers.core import MLP
from ...layers.fm import FM as FMLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["DIFM"]


@register_model
class DIFM(LinearDeepModel):
    """``m = P_vec·flatten(InteractingLayer(E)) + P_bit·MLP(flatten(E))`` (one factor per field), then
    ``logit = sum_i m_i w_i + b + FM(m ⊙ E)`` with ``E`` the field embeddings and ``w_i`` their linear weights.

    Args:
        linear_feature_columns: features of the linear part; its sparse / var-length features must be those of
            ``dnn_feature_columns`` in the same order (each field's weight is scaled by its factor); dense ones
            are added unscaled.
        dnn_feature_columns: the fields (sparse / var-length, one embedding_dim divisible by ``att_head_num``;
            dense features are ignored there, as in DeepCTR).
        att_head_num: heads of the vector-wise self-attention layer (its logits scaled by ``1/sqrt(width)``).
        att_res: residual connection in the self-attention layer.
        dnn_hidden_units: widths of the bit-wise MLP (non-empty).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: empty ``dnn_hidden_units``; no sparse feature in ``dnn_feature_columns``; unequal embedding
            dims or one not divisible by ``att_head_num``; linear sparse fields other than the deep ones.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat(c, 10, 4) for c in "abc"]
        >>> DIFM(cols, cols, att_head_num=2, dnn_hidden_units=(8,)).p_bit.out_features    # one factor per field
        3
    """

    conformance_tags = {"needs_sparse": True}   # the factors re-weight field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, att_head_num: int = 4, att_res: bool = True,
                 dnn_hidden_units: Sequence[int] = (256, 128), l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task: str = "binary", task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native",
                 gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        if not dnn_hidden_units:
            raise ValueError("DIFM: dnn_hidden_units must not be empty (the bit-wise part is an MLP).")
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the input-aware factors re-weight their embeddings")
        dim = self._require_equal_dims("the input-aware factorization")
        name = type(self).__name__
        if isinstance(att_head_num, bool) or not isinstance(att_head_num, int) or att_head_num < 1 \
                or dim % att_head_num:
            raise ValueError(f"{name}: att_head_num must be an int >= 1 dividing the embedding_dim {dim}, got "
                             f"{att_head_num!r}.")
        fields = [f.name for f in self._sparse_dnn_features()]
        lin = split_feature_columns(list(linear_feature_columns or []))
        lin_fields = [f.name for f in lin.sparse + lin.varlen]
        if lin_fields != fields:
            raise ValueError(f"{name}: the sparse / var-length features of linear_feature_columns {lin_fields} "
                             f"must be those of dnn_feature_columns {fields}, in the same order (each linear "
                             "weight is scaled by its field's input-aware factor).")
        F = len(self._field_features())            # the id fields, then any numeric embeddings
        self._id_fields = len(fields)
        self.vector_wise = InteractingLayer(dim, att_head_num, att_res, scaling=True)
        self.bit_wise = MLP(F * dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.p_vec = nn.Linear(F * dim, F, bias=False)
        self.p_bit = nn.Linear(self.bit_wise.output_dim, F, bias=False)
        self.fm = FMLayer()
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        emb = self.embedding(self.deep_view(batch))[0]                       # (B, F, D)
        flat = emb.flatten(1)
        m = self.p_vec(self.vector_wise(emb).flatten(1)) + self.p_bit(self.bit_wise(flat))   # (B, F)
        return self._output(self.linear(batch, field_weights=m[:, :self._id_fields]) + self.fm(emb * m.unsqueeze(-1)))
