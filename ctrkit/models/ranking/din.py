"""DIN: Deep Interest Network (target attention over the user's behaviour sequence).

Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018.
https://arxiv.org/abs/1706.06978
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ...features import SparseFeat, VarLenSparseFeat, split_feature_columns
from ...layers.attention import AttentionSequencePoolingLayer
from ...layers.core import MLP
from ...registry import register_model
from .._tasks import single_task
from ..base import BaseModel

__all__ = ["DIN"]


@register_model
class DIN(BaseModel):
    """Each behaviour sequence ``hist_<f>`` is pooled by its relevance to the candidate's feature ``<f>``
    (DIN's local activation unit), then an MLP reads all embeddings, the pooled interest and the dense values.

    As in DeepCTR-Torch, for every name ``f`` in ``history_feature_list`` the columns hold a
    ``SparseFeat(f)`` (the query: the candidate item, its category, ...) and a
    ``VarLenSparseFeat(SparseFeat("hist_" + f, ..., embedding_name=f), maxlen=L)`` (the keys: the items the user
    interacted with, padded with id 0 at the end), so that both are looked up in one table. The query is the
    concatenation of the ``f`` embeddings, the keys that of the ``hist_f`` sequences (all of one ``maxlen``).
    Padding is masked out: positions ``>= length`` when the first history feature has a ``length_name``,
    otherwise positions whose id is 0. Other var-length features are pooled with their combiner as usual.

    Args:
        dnn_feature_columns: all features, including the query and the ``hist_`` sequences.
        history_feature_list: names of the query features, e.g. ``["item_id", "cate_id"]``.
        dnn_use_bn, dnn_hidden_units, dnn_activation, dnn_dropout: the MLP.
        att_hidden_size: hidden layers of the local activation unit.
        att_activation: activation of the local activation unit: ``"dice"`` (the paper's) or a name such as
            ``"prelu"`` / ``"sigmoid"``.
        att_weight_normalization: softmax the attention scores over the valid positions (the paper does not).
        l2_reg_dnn, l2_reg_embedding, init_std, seed, device, sparse: see :class:`~ctrkit.models.BaseModel`.
        task: ``"binary"`` or ``"regression"``; task_name: the output's name; gpus: ignored.
        task_names, task_types: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: without sparse features, when a query or ``hist_`` feature is missing, when a query and
            its history have different embedding dims, or the histories different ``maxlen``.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``; ``forward(batch, return_scores=True)`` also returns
        the attention weights ``(B, L)``.

    Example:
        >>> from ctrkit import SparseFeat, VarLenSparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4),
        ...         VarLenSparseFeat(SparseFeat("hist_item", 20, 4, embedding_name="item"), maxlen=5)]
        >>> m = DIN(cols, ["item"], dnn_hidden_units=(8,), att_hidden_size=(8,))
        >>> out = m.predict({"user": [1, 2], "item": [3, 4], "hist_item": [[3, 5, 0, 0, 0], [0, 0, 0, 0, 0]]})
        >>> out.shape
        (2, 1)
    """

    supports_torchrec = False   # the attention looks rows up in the tables itself

    conformance_tags = {"needs_sparse": True, "needs_sequence": True}   # attention over behaviour sequences

    def __init__(self, dnn_feature_columns, history_feature_list: Sequence[str], dnn_use_bn: bool = False,
                 dnn_hidden_units: Sequence[int] = (256, 128), dnn_activation: str = "relu",
                 att_hidden_size: Sequence[int] = (64, 16), att_activation: str = "dice",
                 att_weight_normalization: bool = False, l2_reg_dnn: float = 0.0, l2_reg_embedding: float = 0.0,
                 dnn_dropout: float = 0.0, init_std: float = 0.01, seed: int = 1024, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn, init_std=init_std,
                         seed=seed, device=device, sparse=sparse, embedding_backend=embedding_backend, config=locals())
        name = type(self).__name__
        queries, keys = behaviour_features(name, self.feature_columns, history_feature_list)
        split = split_feature_columns(self.feature_columns)
        self.history_feature_list = list(history_feature_list)
        # SparseFeat.__post_init__ made each embedding_dim an int and each embedding_name a str
        self._queries = [(split.sparse.index(q), self.embedding.group_dims.index(int(q.embedding_dim)),
                          cast(str, q.embedding_name)) for q in queries]
        self._keys = [(k.name, self.embedding.group_dims.index(k.embedding_dim), k.embedding_name) for k in keys]
        self._length_name = keys[0].length_name
        att_dim = sum(int(q.embedding_dim) for q in queries)
        # fields of the embedding layer's output that are not histories (those are replaced by the attention)
        hist = {k.name for k in keys}
        self._keep: list[list[int] | None] = []
        for gi, d in enumerate(self.embedding.group_dims):
            fields = self.embedding.group_field_names[gi]
            keep = [i for i, n in enumerate(fields) if n not in hist]
            self.register_buffer(f"_keep_{gi}", torch.tensor(keep, dtype=torch.long), persistent=False)
            self._keep.append(None if len(keep) == len(fields) else keep)
        self.attention = AttentionSequencePoolingLayer(att_dim, tuple(att_hidden_size), att_activation,
                                                       att_weight_normalization)
        self.dnn = MLP(self.input_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1)
        self._finish_init()

    def _lookup(self, gi: int, table: str, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding
        return F.embedding(ids + emb.table_offsets[table], emb.weights[gi], sparse=emb.sparse)

    def output_biases(self) -> dict:
        return {self.task_names[0]: self.dnn_linear.bias}

    def forward(self, batch, return_scores: bool = False):
        query = torch.cat([self._lookup(gi, t, batch.sparse[:, j]) for j, gi, t in self._queries], dim=-1)
        keys = torch.cat([self._lookup(gi, t, batch.varlen[n]) for n, gi, t in self._keys], dim=-1)  # (B, L, E)
        first = batch.varlen[self._keys[0][0]]
        if self._length_name is not None:
            length = batch.lengths[self._keys[0][0]]
            mask = torch.arange(first.shape[1], device=first.device).unsqueeze(0) < length.unsqueeze(1)
        else:
            mask = first != 0
        scores = self.attention(query, keys, mask, return_score=True)             # (B, L)
        interest = (scores.unsqueeze(-1) * keys).sum(dim=1)                      # (B, E)
        parts = []
        for gi, g in enumerate(self.embedding(batch)):
            if self._keep[gi] is not None:
                g = g.index_select(1, getattr(self, f"_keep_{gi}"))
            parts.append(g.flatten(1))
        parts.append(interest)
        if batch.dense is not None and self.dense_dim:
            parts.append(batch.dense)
        logit = self.dnn_linear(self.dnn(torch.cat(parts, dim=1)))[:, 0]
        out = {self.task_names[0]: logit}
        return (out, scores) if return_scores else out


def behaviour_features(name: str, feature_columns: Sequence, history_feature_list: Sequence[str]
                       ) -> tuple[list[SparseFeat], list[VarLenSparseFeat]]:
    """The candidate features (attention queries) and their behaviour sequences ``hist_<f>`` of DIN / DIEN,
    checked: one ``SparseFeat`` and one ``VarLenSparseFeat`` of the same dim per name, one ``maxlen`` for all.
    Errors name the model, the feature and the column to declare."""
    split = split_feature_columns(feature_columns)
    if not split.sparse and not split.varlen:
        raise ValueError(f"{name}: needs at least one SparseFeat or VarLenSparseFeat in dnn_feature_columns "
                         "(the candidate features and behaviour sequences of the attention); got only dense "
                         f"features {[f.name for f in split.dense]}.")
    if isinstance(history_feature_list, str) or not history_feature_list:
        raise ValueError(f"{name}: history_feature_list must be a non-empty list of feature names, e.g. "
                         f"['item_id'], got {history_feature_list!r}.")
    by_name = {f.name: f for f in feature_columns}
    queries, keys = [], []
    for f in history_feature_list:
        q, k = by_name.get(f), by_name.get("hist_" + f)
        if not isinstance(q, SparseFeat):
            raise ValueError(f"{name}: history_feature_list names {f!r} but dnn_feature_columns has no "
                             f"SparseFeat {f!r} (the candidate's value, the attention query).")
        if not isinstance(k, VarLenSparseFeat):
            raise ValueError(f"{name}: history_feature_list names {f!r} but dnn_feature_columns has no "
                             f"VarLenSparseFeat 'hist_{f}' (the behaviour sequence). Declare "
                             f"VarLenSparseFeat(SparseFeat('hist_{f}', {q.vocabulary_size}, "
                             f"{q.embedding_dim}, embedding_name='{f}'), maxlen=...).")
        if k.embedding_dim != q.embedding_dim:
            raise ValueError(f"{name}: {f!r} has embedding_dim {q.embedding_dim} but 'hist_{f}' has "
                             f"{k.embedding_dim}; a query and its history need the same dim (share the table "
                             f"with embedding_name='{f}').")
        queries.append(q)
        keys.append(k)
    if len({k.maxlen for k in keys}) > 1:
        raise ValueError(f"{name}: the behaviour sequences need one maxlen, got "
                         f"{ {k.name: k.maxlen for k in keys} }.")
    return queries, keys
