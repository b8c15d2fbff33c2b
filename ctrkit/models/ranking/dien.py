"""DIEN: Deep Interest Evolution Network (a GRU extracts interests from the behaviour sequence, an
attention-steered GRU evolves them towards the candidate item).

Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction", AAAI 2019.
https://arxiv.org/abs/1809.03672
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ...features import VarLenSparseFeat, split_feature_columns
from ...layers.core import MLP
from ...layers.recurrent import InterestEvolution, InterestExtractor
from ...registry import register_model
from .._tasks import single_task
from ..base import BaseModel
from .din import behaviour_features

__all__ = ["DIEN"]


@register_model
class DIEN(BaseModel):
    """The behaviour sequences ``hist_<f>`` go through the interest extractor GRU; the interest evolution layer
    (``gru_type``, attention on the candidate's ``<f>``) sums them up into one interest vector; an MLP reads it
    with the other embeddings and the dense values.

    Inputs as for :class:`~ctrkit.DIN` (DeepCTR-Torch's ``examples/run_dien.py``): for each ``f`` of
    ``history_feature_list`` a ``SparseFeat(f)`` and a ``VarLenSparseFeat(SparseFeat("hist_" + f, ...,
    embedding_name=f), maxlen=L)``; with ``use_negsampling`` also a ``VarLenSparseFeat("neg_hist_" + f, ...)``
    of the same table and ``maxlen``: the sampled non-clicked behaviours of the auxiliary loss. Padding (at the
    end) is masked: positions ``>= length`` when the first history has a ``length_name``, else id 0.

    Training adds ``alpha`` times the auxiliary loss (each extracted interest ``h_t`` must tell the next
    behaviour from its negative) to the task loss, in :meth:`train_step`; ``forward`` and ``predict`` do not
    read the negatives.

    Args:
        dnn_feature_columns: all features, including the query, ``hist_`` and ``neg_hist_`` sequences.
        history_feature_list: names of the query features, e.g. ``["item_id", "cate_id"]``.
        gru_type: interest evolution: ``"GRU"``, ``"AIGRU"``, ``"AGRU"`` or ``"AUGRU"`` (the paper's).
        use_negsampling: add the auxiliary loss (needs the ``neg_hist_`` sequences).
        alpha: the auxiliary loss's weight.
        use_bn: BatchNorm in the MLP (DeepCTR-Torch's name for ``dnn_use_bn``).
        dnn_hidden_units, dnn_activation, dnn_dropout: the MLP.
        att_hidden_units, att_activation, att_weight_normalization: the attention unit of the evolution layer.
        l2_reg_dnn, l2_reg_embedding, init_std, seed, device, sparse: see :class:`~ctrkit.models.BaseModel`.
        task, task_name, task_names, task_types, gpus: as in :class:`~ctrkit.DIN`.

    Raises:
        ValueError: as :class:`~ctrkit.DIN`, and when ``use_negsampling`` and a ``neg_hist_`` sequence is
            missing or differs from its ``hist_`` one.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``; ``forward(batch, return_scores=True)`` also returns
        the evolution layer's attention weights ``(B, L)``.

    Example:
        >>> from ctrkit import SparseFeat, VarLenSparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4),
        ...         VarLenSparseFeat(SparseFeat("hist_item", 20, 4, embedding_name="item"), maxlen=5)]
        >>> m = DIEN(cols, ["item"], gru_type="AUGRU", dnn_hidden_units=(8,), att_hidden_units=(8,))
        >>> m.predict({"user": [1, 2], "item": [3, 4], "hist_item": [[3, 5, 0, 0, 0], [0] * 5]}).shape
        (2, 1)
    """

    supports_torchrec = False   # the attention looks rows up in the tables itself

    conformance_tags = {"needs_sparse": True, "needs_sequence": True}   # GRUs over behaviour sequences

    def __init__(self, dnn_feature_columns, history_feature_list: Sequence[str], gru_type: str = "GRU",
                 use_negsampling: bool = False, alpha: float = 1.0, use_bn: bool = False,
                 dnn_hidden_units: Sequence[int] = (256, 128), dnn_activation: str = "relu",
                 att_hidden_units: Sequence[int] = (64, 16), att_activation: str = "relu",
                 att_weight_normalization: bool = True, l2_reg_dnn: float = 0.0, l2_reg_embedding: float = 0.0,
                 dnn_dropout: float = 0.0, init_std: float = 0.01, seed: int = 1024, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn, init_std=init_std,
                         seed=seed, device=device, sparse=sparse, embedding_backend=embedding_backend, config=locals())
        name = type(self).__name__
        split = split_feature_columns(self.feature_columns)
        queries, keys = behaviour_features(name, self.feature_columns, history_feature_list)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"{name}: alpha must be a number >= 0, got {alpha!r}.")
        by_name = {f.name: f for f in self.feature_columns}
        negs = []
        for f, k in zip(history_feature_list, keys):
            if use_negsampling:
                n = by_name.get("neg_hist_" + f)
                if not isinstance(n, VarLenSparseFeat) or n.embedding_name != k.embedding_name \
                        or n.maxlen != k.maxlen:
                    raise ValueError(f"{name}: use_negsampling needs a VarLenSparseFeat 'neg_hist_{f}' (the "
                                     f"non-clicked behaviours) sharing 'hist_{f}''s table "
                                     f"(embedding_name='{k.embedding_name}') and maxlen {k.maxlen}; got {n!r}.")
                negs.append(n)
        self.history_feature_list = list(history_feature_list)
        self.use_negsampling, self.alpha = bool(use_negsampling), float(alpha)
        gidx = self.embedding.group_dims.index
        self._queries = [(split.sparse.index(q), gidx(int(q.embedding_dim)), cast(str, q.embedding_name))
                         for q in queries]
        self._keys = [(k.name, gidx(k.embedding_dim), k.embedding_name) for k in keys]
        self._negs = [(n.name, gidx(n.embedding_dim), n.embedding_name) for n in negs]
        self._length_name = keys[0].length_name
        interest_dim = sum(int(q.embedding_dim) for q in queries)
        # fields of the embedding layer's output kept for the MLP: all but the (negative) histories
        seqs = {k.name for k in keys} | {n.name for n in negs}
        self._keep: list[list[int] | None] = []
        kept_dim = 0
        for gi, d in enumerate(self.embedding.group_dims):
            fields = self.embedding.group_field_names[gi]
            keep = [i for i, n in enumerate(fields) if n not in seqs]
            kept_dim += len(keep) * d
            self.register_buffer(f"_keep_{gi}", torch.tensor(keep, dtype=torch.long), persistent=False)
            self._keep.append(None if len(keep) == len(fields) else keep)
        self.extractor = InterestExtractor(interest_dim)
        self.evolution = InterestEvolution(interest_dim, gru_type, tuple(att_hidden_units), att_activation,
                                           att_weight_normalization)
        self.gru_type = gru_type
        self.dnn = MLP(kept_dim + interest_dim + self.dense_dim, tuple(dnn_hidden_units), dnn_activation,
                       dnn_dropout, use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1)
        self._finish_init()

    def _lookup(self, gi: int, table: str, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding
        return F.embedding(ids + emb.table_offsets[table], emb.weights[gi], sparse=emb.sparse)

    def _sequence(self, batch, specs) -> torch.Tensor:
        return torch.cat([self._lookup(gi, t, batch.varlen[n]) for n, gi, t in specs], dim=-1)   # (B, L, E)

    def output_biases(self) -> dict:
        return {self.task_names[0]: self.dnn_linear.bias}

    def forward(self, batch, return_scores: bool = False, return_aux_loss: bool = False):
        query = torch.cat([self._lookup(gi, t, batch.sparse[:, j]) for j, gi, t in self._queries], dim=-1)
        keys = self._sequence(batch, self._keys)
        first = batch.varlen[self._keys[0][0]]
        if self._length_name is not None:
            length = batch.lengths[self._keys[0][0]]
            mask = torch.arange(first.shape[1], device=first.device).unsqueeze(0) < length.unsqueeze(1)
        else:
            mask = first != 0
        interests = self.extractor(keys, mask)                                   # (B, L, E)
        interest, scores = self.evolution(query, interests, mask, return_scores=True)
        parts = []
        for gi, g in enumerate(self.embedding(batch)):
            if self._keep[gi] is not None:
                g = g.index_select(1, getattr(self, f"_keep_{gi}"))
            parts.append(g.flatten(1))
        parts.append(interest)
        if batch.dense is not None and self.dense_dim:
            parts.append(batch.dense)
        out = {self.task_names[0]: self.dnn_linear(self.dnn(torch.cat(parts, dim=1)))[:, 0]}
        if return_aux_loss:
            neg = self._sequence(batch, self._negs)
            return out, self.extractor.auxiliary_loss(interests, keys, neg, mask)
        return (out, scores) if return_scores else out

    def train_step(self, forward, x, y, sample_weight, loss):
        """The task loss, plus ``alpha`` times the auxiliary loss with ``use_negsampling``."""
        if not self.use_negsampling:
            return super().train_step(forward, x, y, sample_weight, loss)
        outputs, aux = forward(x, return_aux_loss=True)
        total, per_task = self.compute_loss(outputs, y, sample_weight, loss)
        return total + self.alpha * aux, per_task, outputs
