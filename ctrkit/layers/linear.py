"""The linear (wide / LR) part of the CTR models and the view of a batch restricted to some feature columns.

References:
    - LR as the CTR baseline: McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013.
      https://doi.org/10.1145/2487575.2488200
    - The wide part: Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016.
      https://arxiv.org/abs/1606.07792
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from ..data.inputs import TensorData
from ..exceptions import SchemaError
from ..features import DenseFeat, VarLenSparseFeat, check_feature_columns, split_feature_columns
from .embedding import EmbeddingLayer

__all__ = ["FeatureSubset", "LinearLogit"]


class FeatureSubset(nn.Module):
    """The columns of a batch that belong to a subset of the model's feature columns.

    A batch holds every feature of the model (sparse ids in feature-column order, dense values side by side);
    a part of a model that reads only some features (the linear part over ``linear_feature_columns``, the
    deep part over ``dnn_feature_columns``) sees the batch through this view. When the subset is all the
    features the batch is passed through untouched (no copy).

    Args:
        feature_columns: the model's feature columns (the batch layout).
        subset: the columns the part reads (each must be one of ``feature_columns``).

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("a", 5), SparseFeat("b", 5), DenseFeat("x")]
        >>> view = FeatureSubset(cols, [cols[1]])
        >>> view(TensorData(torch.tensor([[1, 2]]), torch.tensor([[0.5]]))).sparse.tolist()
        [[2]]
    """

    sparse_index: torch.Tensor  # buffers, registered in __init__
    dense_index: torch.Tensor

    def __init__(self, feature_columns: Sequence, subset: Sequence) -> None:
        super().__init__()
        full = split_feature_columns(check_feature_columns(feature_columns))
        part = split_feature_columns(check_feature_columns(subset))
        names = {f.name: f for f in [*full.sparse, *full.dense, *full.varlen]}
        for f in [*part.sparse, *part.dense, *part.varlen]:
            if names.get(f.name) != f:
                raise SchemaError(f"FeatureSubset: feature {f.name!r} is not one of the model's feature "
                                  f"columns {list(names)}.")
        sparse_pos = [[g.name for g in full.sparse].index(f.name) for f in part.sparse]
        starts, s = {}, 0
        for f in full.dense:
            starts[f.name] = s
            s += f.dimension
        dense_pos = [starts[f.name] + k for f in part.dense for k in range(f.dimension)]
        self.sparse_all = sparse_pos == list(range(len(full.sparse)))
        self.dense_all = dense_pos == list(range(s))
        self.has_sparse, self.has_dense = bool(sparse_pos), bool(dense_pos)
        self.register_buffer("sparse_index", torch.tensor(sparse_pos, dtype=torch.long), persistent=False)
        self.register_buffer("dense_index", torch.tensor(dense_pos, dtype=torch.long), persistent=False)
        self.identity = self.sparse_all and self.dense_all

    def forward(self, batch: TensorData) -> TensorData:
        if self.identity:
            return batch
        sparse = dense = None
        if self.has_sparse:
            assert batch.sparse is not None  # the columns include sparse features, so the batch has ids
            sparse = batch.sparse if self.sparse_all else batch.sparse.index_select(1, self.sparse_index)
        if self.has_dense:
            assert batch.dense is not None  # likewise for dense values
            dense = batch.dense if self.dense_all else batch.dense.index_select(1, self.dense_index)
        return TensorData(sparse, dense, batch.varlen, batch.lengths)


def _width(f, units: int = 1):
    if isinstance(f, VarLenSparseFeat):
        return dataclasses.replace(f, sparsefeat=dataclasses.replace(f.sparsefeat, embedding_dim=units))
    if isinstance(f, DenseFeat):
        return f
    return dataclasses.replace(f, embedding_dim=units)


class LinearLogit(nn.Module):
    """The linear (wide / LR) part: one weight per sparse id, one per dense value, and a bias.

    The per-id weights are an :class:`~ctrkit.layers.EmbeddingLayer` of width 1 over the linear feature
    columns (tables shared by ``embedding_name`` stay shared; var-length features are pooled with their
    ``combiner``).

    Args:
        linear_feature_columns: the features of the linear part (may be empty: a bias only).
        feature_columns: the model's feature columns, i.e. the batch layout (default: the linear columns).
        init_std: standard deviation of the normal initialisation of the weights.
        use_bias: add a learned bias (initialised to 0).
        sparse: sparse gradients for the id weights.
        units: number of linear outputs (MLR's region / base learners: one weight per id and output); the
            output is ``(B, units)`` when ``units > 1``.

    Shape:
        a :class:`~ctrkit.data.TensorData` batch → ``(B,)`` (``(B, units)`` when ``units > 1``). ``forward(batch,
        field_weights)`` scales each id field's weight by ``field_weights (B, F_ids)`` (IFM's input-aware
        factors; fields in the embedding layer's order: sparse, then var-length).

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> lin = LinearLogit([SparseFeat("a", 10, 8), DenseFeat("x", 2)])
        >>> sum(p.numel() for p in lin.parameters())      # 10 id weights, 2 dense weights, a bias
        13
        >>> lin(TensorData(torch.tensor([[3], [4]]), torch.zeros(2, 2))).shape
        torch.Size([2])
    """

    def __init__(self, linear_feature_columns: Sequence, feature_columns: Sequence | None = None,
                 init_std: float = 0.01, use_bias: bool = True, sparse: bool = False, units: int = 1) -> None:
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"LinearLogit: units must be an int >= 1, got {units!r}.")
        self.units = units
        lin = check_feature_columns(list(linear_feature_columns or []), where="linear_feature_columns")
        self.init_std = float(init_std)
        self.view = FeatureSubset(lin if feature_columns is None else feature_columns, lin)
        split = split_feature_columns(lin)
        tabled = [_width(f, units) for f in split.sparse + split.varlen]
        self.num_id_fields = len(tabled)
        self.embedding = EmbeddingLayer(tabled, init_std=init_std, sparse=sparse) if tabled else None
        self.dense_dim = sum(f.dimension for f in split.dense)
        self.dense_weight = nn.Parameter(torch.empty(self.dense_dim, units)) if self.dense_dim else None
        self.bias = nn.Parameter(torch.zeros(units)) if use_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.dense_weight is not None:
            nn.init.normal_(self.dense_weight, std=self.init_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, batch: TensorData, field_weights: torch.Tensor | None = None) -> torch.Tensor:
        """``field_weights`` ``(B, F)``: scales each sparse / var-length field's weight per row (IFM's and DIFM's
        input-aware factors), fields in the order of the embedding (sparse, then var-length)."""
        x = self.view(batch)
        out = None
        if self.embedding is not None:
            w = self.embedding(x)[0]            # one group: every table has width ``units``: (B, F, units)
            if field_weights is not None:
                w = w * field_weights.unsqueeze(-1)
            out = w.sum(dim=1)
        if self.dense_weight is not None:
            d = x.dense @ self.dense_weight
            out = d if out is None else out + d
        if out is None:
            n = len(batch)
            out = torch.zeros(n, self.units, device=self.bias.device if self.bias is not None else None)
        out = out + self.bias if self.bias is not None else out
        return out[:, 0] if self.units == 1 else out

    def l2_penalty(self) -> torch.Tensor | None:
        """Sum of squares of the dense weights plus the batch mean of the squared id weights looked up last
        (set ``self.embedding.keep_last = True`` to record them); None when there is nothing to penalise."""
        terms: list[torch.Tensor] = []
        if self.dense_weight is not None:
            terms.append((self.dense_weight * self.dense_weight).sum())
        last = self.embedding.last if self.embedding is not None else None
        if last:
            terms.append(sum((g * g).sum() for g in last) / last[0].shape[0])
        return cast(torch.Tensor, sum(terms)) if terms else None  # non-empty: a tensor, never sum's 0
