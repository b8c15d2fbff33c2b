"""Embeddings of numeric features: one-value dense features turned into fields, like sparse features' embeddings.

A :class:`~ctrkit.DenseFeat` with ``embedding=NumericEmbedding(...)`` keeps its value in the dense vector and
also gets a field of ``embedding_dim`` values, which the :class:`~ctrkit.layers.EmbeddingLayer` puts among the
fields of its dimension group (so FM, cross and attention layers interact with it and a mixture of experts
reads it with the rest of the input). :class:`NumericEmbeddings` is the one module that computes those fields;
models never see it. The fields of one kind and width are computed together (a few batched ops, no loop over
features), with every operation exportable to ONNX: the bin of a value is a sum of comparisons with the edges,
not ``torch.bucketize``.

Kinds (Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022,
https://arxiv.org/abs/2203.05556):

- ``"quantile"``: bin id -> a row of the feature's table (``T`` bins + one row for NaN).
- ``"ple"``: piecewise-linear encoding ``e_t = clamp((x - b_{t-1}) / (b_t - b_{t-1}), 0, 1)`` (the first bin
  unbounded below, the last above, as in the paper) then a per-feature ``(T, D)`` linear map (+ ReLU if asked).
- ``"periodic"``: PLR, ``[sin(2 pi c x), cos(2 pi c x)]`` with trainable ``c`` (``K`` frequencies per feature),
  then a per-feature ``(2K, D)`` linear map + ReLU.

NaN (which the data boundary does not let through, but a raw tensor may hold) gets its own table row
(``"quantile"``) or a learned vector in place of the encoding (``"ple"``, ``"periodic"``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..features import NumericEmbedding, check_feature_columns, split_feature_columns

__all__ = ["NumericEmbeddings"]


# "unbounded" as a finite float32 (model weights and buffers are checked for inf during training)
_BIG = float(torch.finfo(torch.float32).max)


class _Block(nn.Module):
    """The fields of one kind and one width: ``(B, F)`` values -> ``(B, F, D)``."""

    def __init__(self, specs: list[NumericEmbedding], init_std: float) -> None:
        super().__init__()
        self.init_std = init_std
        self.dim = specs[0].embedding_dim
        self.relu = [s.activation == "relu" for s in specs]

    def _act(self, out: torch.Tensor) -> torch.Tensor:
        if all(self.relu):
            return F.relu(out)
        if any(self.relu):
            mask = torch.tensor(self.relu, device=out.device).view(1, -1, 1)
            return torch.where(mask, F.relu(out), out)
        return out

    @staticmethod
    def _per_field_linear(e: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``(B, F, K) x (F, K, D) + (F, D)`` -> ``(B, F, D)``: one batched matmul over the fields."""
        return torch.matmul(e.transpose(0, 1), weight).transpose(0, 1) + bias


class _Quantile(_Block):
    bounds: torch.Tensor
    offsets: torch.Tensor
    nan_rows: torch.Tensor

    def __init__(self, specs: list[NumericEmbedding], init_std: float) -> None:
        super().__init__(specs, init_std)
        inner = [s.boundaries[1:-1] for s in specs]          # T - 1 inner edges: bins 0..T-1
        width = max(1, max(len(b) for b in inner))
        bounds = torch.full((len(specs), width), _BIG, dtype=torch.float32)     # padding: never exceeded
        for j, b in enumerate(inner):
            bounds[j, :len(b)] = torch.tensor(b, dtype=torch.float32)
        rows = [s.n_bins + 1 for s in specs]                 # + the NaN row
        starts = [sum(rows[:j]) for j in range(len(rows))]
        self.register_buffer("bounds", bounds)
        self.register_buffer("offsets", torch.tensor(starts, dtype=torch.long))
        self.register_buffer("nan_rows", torch.tensor([s.n_bins for s in specs], dtype=torch.long))
        self.table = nn.Parameter(torch.empty(sum(rows), self.dim))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.table, std=self.init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = (x.unsqueeze(-1) > self.bounds).sum(-1)         # NaN compares False: bin 0, replaced below
        ids = torch.minimum(ids, self.nan_rows - 1)           # (+inf would pass the padding)
        ids = torch.where(torch.isnan(x), self.nan_rows, ids) + self.offsets
        return F.embedding(ids, self.table)


class _PiecewiseLinear(_Block):
    left: torch.Tensor
    inv_width: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, specs: list[NumericEmbedding], init_std: float) -> None:
        super().__init__(specs, init_std)
        T = max(s.n_bins for s in specs)
        left = torch.zeros(len(specs), T)
        inv_width = torch.zeros(len(specs), T)               # padded bins: 0, so they encode to 0
        low = torch.zeros(len(specs), T)
        high = torch.zeros(len(specs), T)
        for j, s in enumerate(specs):
            b = torch.tensor(s.boundaries, dtype=torch.float64)
            t = s.n_bins
            left[j, :t] = b[:-1].float()
            inv_width[j, :t] = (1.0 / (b[1:] - b[:-1])).float()
            high[j, :t] = 1.0
            low[j, 0] = -_BIG                                # the first bin is open below ...
            high[j, t - 1] = _BIG                            # ... the last above (the paper's PLE)
        for name, buf in (("left", left), ("inv_width", inv_width), ("low", low), ("high", high)):
            self.register_buffer(name, buf)
        self.weight = nn.Parameter(torch.empty(len(specs), T, self.dim))
        self.bias = nn.Parameter(torch.empty(len(specs), self.dim))
        self.missing = nn.Parameter(torch.empty(len(specs), self.dim))

    def reset_parameters(self) -> None:
        # each bin's encoding lies in [0, 1]: a uniform init like nn.Linear's over the T inputs
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.normal_(self.missing, std=self.init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nan = torch.isnan(x)
        x = torch.where(nan, torch.zeros_like(x), x)
        e = (x.unsqueeze(-1) - self.left) * self.inv_width
        e = torch.maximum(torch.minimum(e, self.high), self.low)
        out = self._per_field_linear(e, self.weight, self.bias)
        out = torch.where(nan.unsqueeze(-1), self.missing.expand_as(out), out)
        return self._act(out)


class _Periodic(_Block):
    sigma: torch.Tensor

    def __init__(self, specs: list[NumericEmbedding], init_std: float) -> None:
        super().__init__(specs, init_std)
        K = specs[0].n_frequencies
        self.register_buffer("sigma", torch.tensor([s.sigma for s in specs]).view(-1, 1), persistent=False)
        self.frequencies = nn.Parameter(torch.empty(len(specs), K))
        self.weight = nn.Parameter(torch.empty(len(specs), 2 * K, self.dim))
        self.bias = nn.Parameter(torch.empty(len(specs), self.dim))
        self.missing = nn.Parameter(torch.empty(len(specs), self.dim))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.frequencies.copy_(torch.randn_like(self.frequencies) * self.sigma)
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.normal_(self.missing, std=self.init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nan = torch.isnan(x)
        x = torch.where(nan, torch.zeros_like(x), x)
        v = (2 * math.pi) * self.frequencies * x.unsqueeze(-1)           # (B, F, K)
        out = self._per_field_linear(torch.cat([torch.sin(v), torch.cos(v)], dim=-1), self.weight, self.bias)
        out = torch.where(nan.unsqueeze(-1), self.missing.expand_as(out), out)
        return self._act(out)


_KINDS = {"quantile": _Quantile, "ple": _PiecewiseLinear, "periodic": _Periodic}


class NumericEmbeddings(nn.Module):
    """The fields of every embedded numeric feature of a model, by embedding width.

    Args:
        feature_columns: the model's feature columns (the batch's dense layout); those whose
            :class:`~ctrkit.DenseFeat` carries an ``embedding`` get a field.
        init_std: standard deviation of the normal initialisation of table rows and NaN vectors.

    Shape:
        - input: the batch's dense values ``(B, dense_dim)``.
        - output: ``{embedding_dim: (B, F_d, embedding_dim)}``; fields in the order of :attr:`field_names`.

    Example:
        >>> from ctrkit import DenseFeat, NumericEmbedding
        >>> cols = [DenseFeat("a", embedding=NumericEmbedding("ple", (0.0, 1.0, 2.0), embedding_dim=4)),
        ...         DenseFeat("b"), DenseFeat("c", embedding=NumericEmbedding("periodic", embedding_dim=4))]
        >>> layer = NumericEmbeddings(cols)
        >>> layer.field_names, tuple(layer(torch.randn(3, 3))[4].shape)
        ({4: ['a', 'c']}, (3, 2, 4))
    """

    def __init__(self, feature_columns: Sequence, init_std: float = 0.01) -> None:
        super().__init__()
        dense = [f for f in split_feature_columns(check_feature_columns(feature_columns)).dense]
        pos, start = {}, 0
        for f in dense:
            pos[f.name] = start
            start += f.dimension
        embedded: list[tuple[str, NumericEmbedding]] = [(f.name, f.embedding) for f in dense
                                                         if f.embedding is not None]
        #: the embedding widths, ascending
        self.dims: list[int] = sorted({e.embedding_dim for _, e in embedded})
        #: ``{dim: [feature name, ...]}``: the fields of each width, in output order
        self.field_names: dict[int, list[str]] = {}
        self.blocks = nn.ModuleList()
        self._layout: list[tuple[int, int]] = []     # per block: (dim, index of its column buffer)
        for d in self.dims:
            keys: dict[tuple, list[tuple[str, NumericEmbedding]]] = {}
            for name, e in embedded:
                if e.embedding_dim == d:   # one block per kind (and number of frequencies) and width
                    keys.setdefault((e.kind, e.n_frequencies if e.kind == "periodic" else 0), []).append((name, e))
            self.field_names[d] = []
            for (kind, _k), feats in keys.items():
                self.blocks.append(_KINDS[kind]([e for _, e in feats], float(init_std)))
                self.register_buffer(f"_cols_{len(self._layout)}",
                                     torch.tensor([pos[n] for n, _ in feats], dtype=torch.long), persistent=False)
                self._layout.append((d, len(self._layout)))
                self.field_names[d].extend(n for n, _ in feats)
        self.num_fields = {d: len(n) for d, n in self.field_names.items()}
        self.output_dim = sum(d * n for d, n in self.num_fields.items())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for b in self.blocks:
            b.reset_parameters()  # type: ignore[operator]

    def forward(self, dense: torch.Tensor) -> dict[int, torch.Tensor]:
        parts: dict[int, list[torch.Tensor]] = {}
        for block, (d, i) in zip(self.blocks, self._layout):
            parts.setdefault(d, []).append(block(dense.index_select(1, getattr(self, f"_cols_{i}"))))
        return {d: p[0] if len(p) == 1 else torch.cat(p, dim=1) for d, p in parts.items()}
