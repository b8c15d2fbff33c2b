"""Feature-interaction layers of the CTR models: FM, cross networks, CIN, self-attention, the linear part and
DIN's target attention.

Field embeddings arrive as ``(B, F, D)`` (one row per field, one embedding width ``D``); flat inputs as
``(B, d)``. Nothing here applies a sigmoid: the layers that end in a score return raw logits.

References:
    - FM: Rendle, "Factorization Machines", ICDM 2010. https://doi.org/10.1109/ICDM.2010.127
    - CrossNet: Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017.
      https://arxiv.org/abs/1708.05123
    - CrossNetV2 / CrossNetMix: Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
      Web-scale Learning to Rank Systems", WWW 2021. https://arxiv.org/abs/2008.13535
    - CIN: Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for Recommender
      Systems", KDD 2018. https://arxiv.org/abs/1803.05170
    - InteractingLayer: Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
      Neural Networks", CIKM 2019. https://arxiv.org/abs/1810.11921
    - Dice, AttentionSequencePooling: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction",
      KDD 2018. https://arxiv.org/abs/1706.06978
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.inputs import TensorData
from ..exceptions import SchemaError
from ..features import DenseFeat, VarLenSparseFeat, check_feature_columns, split_feature_columns
from .core import _check_units, get_activation
from .embedding import EmbeddingLayer

__all__ = ["FeatureSubset", "LinearLogit", "FM", "CrossNet", "CrossNetMix", "CIN", "InteractingLayer", "Dice",
           "LocalActivationUnit", "AttentionSequencePoolingLayer"]


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

    def __init__(self, feature_columns: Sequence, subset: Sequence) -> None:
        super().__init__()
        full = split_feature_columns(check_feature_columns(feature_columns))
        part = split_feature_columns(check_feature_columns(subset))
        names = {f.name: f for f in [*full.sparse, *full.dense, *full.varlen]}
        for f in [*part.sparse, *part.dense, *part.varlen]:
            if names.get(f.name) != f:
                raise SchemaError(f"FeatureSubset: feature {f.name!r} is not one of the model's feature columns "
                                  f"{list(names)}.")
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
            sparse = batch.sparse if self.sparse_all else batch.sparse.index_select(1, self.sparse_index)
        if self.has_dense:
            dense = batch.dense if self.dense_all else batch.dense.index_select(1, self.dense_index)
        return TensorData(sparse, dense, batch.varlen, batch.lengths)


def _width_one(f):
    if isinstance(f, VarLenSparseFeat):
        return dataclasses.replace(f, sparsefeat=dataclasses.replace(f.sparsefeat, embedding_dim=1))
    if isinstance(f, DenseFeat):
        return f
    return dataclasses.replace(f, embedding_dim=1)


class LinearLogit(nn.Module):
    """The linear (wide / LR) part: one weight per sparse id, one per dense value, and a bias.

    The per-id weights are an :class:`~ctrkit.layers.EmbeddingLayer` of width 1 over the linear feature columns
    (tables shared by ``embedding_name`` stay shared; var-length features are pooled with their ``combiner``).

    Args:
        linear_feature_columns: the features of the linear part (may be empty: a bias only).
        feature_columns: the model's feature columns, i.e. the batch layout (default: the linear columns).
        init_std: standard deviation of the normal initialisation of the weights.
        use_bias: add a learned bias (initialised to 0).
        sparse: sparse gradients for the id weights.

    Shape:
        a :class:`~ctrkit.data.TensorData` batch → ``(B,)``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> lin = LinearLogit([SparseFeat("a", 10, 8), DenseFeat("x", 2)])
        >>> sum(p.numel() for p in lin.parameters())      # 10 id weights, 2 dense weights, a bias
        13
        >>> lin(TensorData(torch.tensor([[3], [4]]), torch.zeros(2, 2))).shape
        torch.Size([2])
    """

    def __init__(self, linear_feature_columns: Sequence, feature_columns: Sequence | None = None,
                 init_std: float = 0.01, use_bias: bool = True, sparse: bool = False) -> None:
        super().__init__()
        lin = check_feature_columns(list(linear_feature_columns or []), where="linear_feature_columns")
        self.init_std = float(init_std)
        self.view = FeatureSubset(lin if feature_columns is None else feature_columns, lin)
        split = split_feature_columns(lin)
        tabled = [_width_one(f) for f in split.sparse + split.varlen]
        self.embedding = EmbeddingLayer(tabled, init_std=init_std, sparse=sparse) if tabled else None
        self.dense_dim = sum(f.dimension for f in split.dense)
        self.dense_weight = nn.Parameter(torch.empty(self.dense_dim, 1)) if self.dense_dim else None
        self.bias = nn.Parameter(torch.zeros(1)) if use_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.dense_weight is not None:
            nn.init.normal_(self.dense_weight, std=self.init_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, batch: TensorData) -> torch.Tensor:
        x = self.view(batch)
        out = None
        if self.embedding is not None:
            groups = self.embedding(x)          # one group: every table has width 1
            out = groups[0].sum(dim=(1, 2))
        if self.dense_weight is not None:
            d = (x.dense @ self.dense_weight)[:, 0]
            out = d if out is None else out + d
        if out is None:
            n = len(batch)
            out = torch.zeros(n, device=self.bias.device if self.bias is not None else None)
        return out + self.bias if self.bias is not None else out

    def l2_penalty(self) -> torch.Tensor | None:
        """Sum of squares of the dense weights plus the batch mean of the squared id weights looked up last
        (set ``self.embedding.keep_last = True`` to record them); None when there is nothing to penalise."""
        terms = []
        if self.dense_weight is not None:
            terms.append((self.dense_weight * self.dense_weight).sum())
        last = self.embedding.last if self.embedding is not None else None
        if last:
            terms.append(sum((g * g).sum() for g in last) / last[0].shape[0])
        return sum(terms) if terms else None


class FM(nn.Module):
    """Second-order factorization machine term ``sum_{i<j} <e_i, e_j>``, in O(F·D).

    Shape:
        ``(B, F, D)`` → ``(B,)``.

    Example:
        >>> e = torch.ones(2, 3, 4)
        >>> FM()(e).tolist()          # 3 pairs x <1, 1> over 4 dims
        [12.0, 12.0]
    """

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        square_of_sum = emb.sum(dim=1).pow(2)
        sum_of_square = emb.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)


class CrossNet(nn.Module):
    """The cross network of DCN (``"vector"``) and DCN-V2 (``"matrix"``).

    ``x_{l+1} = x_0 ⊙ (x_l · w_l) + b_l + x_l`` (vector) or ``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l``
    (matrix, DCN-V2's full-rank cross layer).

    Args:
        in_features: width ``d`` of the input.
        layer_num: number of cross layers.
        parameterization: ``"vector"`` (DCN) or ``"matrix"`` (DCN-V2).

    Shape:
        ``(B, d)`` → ``(B, d)``.

    Example:
        >>> CrossNet(6, layer_num=2, parameterization="matrix")(torch.randn(3, 6)).shape
        torch.Size([3, 6])
    """

    def __init__(self, in_features: int, layer_num: int = 2, parameterization: str = "vector") -> None:
        super().__init__()
        if parameterization not in ("vector", "matrix"):
            raise ValueError(f"CrossNet: parameterization must be 'vector' or 'matrix', got {parameterization!r}.")
        if isinstance(layer_num, bool) or not isinstance(layer_num, int) or layer_num < 1:
            raise ValueError(f"CrossNet: layer_num must be an int >= 1, got {layer_num!r}.")
        self.parameterization = parameterization
        shape = (layer_num, in_features) if parameterization == "vector" else (layer_num, in_features, in_features)
        self.kernels = nn.Parameter(torch.empty(*shape))
        self.bias = nn.Parameter(torch.empty(layer_num, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        w = self.kernels.data
        for i in range(w.shape[0]):
            nn.init.xavier_normal_(w[i].view(-1, 1) if w.dim() == 2 else w[i])
        nn.init.zeros_(self.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, b in zip(self.kernels, self.bias):
            if self.parameterization == "vector":
                x = x0 * (x @ w).unsqueeze(1) + b + x
            else:
                x = x0 * F.linear(x, w, b) + x
        return x


class CrossNetMix(nn.Module):
    """DCN-V2's mixture of low-rank cross experts (DCN-Mix), all experts of a layer computed together.

    Expert ``i`` of layer ``l``: ``E_i(x_l) = x_0 ⊙ (U_i g(C_i g(V_iᵀ x_l)) + b_l)`` with ``g = tanh``; a
    softmax gate over the experts (a linear function of ``x_l``) mixes them and a residual adds ``x_l``.

    Args:
        in_features: width ``d`` of the input.
        low_rank: rank ``r`` of each expert.
        num_experts: number of experts per layer.
        layer_num: number of cross layers.

    Shape:
        ``(B, d)`` → ``(B, d)``.

    Example:
        >>> CrossNetMix(6, low_rank=2, num_experts=3, layer_num=2)(torch.randn(5, 6)).shape
        torch.Size([5, 6])
    """

    def __init__(self, in_features: int, low_rank: int = 32, num_experts: int = 4, layer_num: int = 2) -> None:
        super().__init__()
        for arg, v in (("low_rank", low_rank), ("num_experts", num_experts), ("layer_num", layer_num)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CrossNetMix: {arg} must be an int >= 1, got {v!r}.")
        L, E, d, r = layer_num, num_experts, in_features, low_rank
        self.U = nn.Parameter(torch.empty(L, E, d, r))
        self.V = nn.Parameter(torch.empty(L, E, d, r))
        self.C = nn.Parameter(torch.empty(L, E, r, r))
        self.gate = nn.Parameter(torch.empty(d, E))
        self.bias = nn.Parameter(torch.empty(L, d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.U, self.V, self.C):
            w = p.data.view(-1, *p.shape[-2:])
            for i in range(w.shape[0]):
                nn.init.xavier_normal_(w[i])
        nn.init.xavier_normal_(self.gate)
        nn.init.zeros_(self.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for U, V, C, b in zip(self.U, self.V, self.C, self.bias):
            v = torch.tanh(torch.einsum("bd,edr->ber", x, V))
            v = torch.tanh(torch.einsum("ber,ers->bes", v, C))
            u = torch.einsum("bes,eds->bed", v, U)                       # (B, E, d)
            experts = x0.unsqueeze(1) * (u + b)
            gates = torch.softmax(x @ self.gate, dim=1)                  # (B, E)
            x = (gates.unsqueeze(-1) * experts).sum(dim=1) + x
        return x


class CIN(nn.Module):
    """xDeepFM's Compressed Interaction Network.

    Layer ``k``: ``X^k_h = act(sum_{i,j} W^{k,h}_{ij} (X^{k-1}_i ⊙ X^0_j))`` over the field vectors; each layer's
    feature maps are summed over the embedding dimension and concatenated. With ``split_half`` half of a
    hidden layer's maps feed the next layer and half go to the output.

    Args:
        field_size: number of fields ``F``.
        layer_size: feature maps per layer.
        activation: activation of the feature maps (``"linear"`` for none).
        split_half: as in the paper.

    Shape:
        ``(B, F, D)`` → ``(B, output_dim)``.

    Example:
        >>> cin = CIN(4, layer_size=(8, 6))
        >>> cin.output_dim, tuple(cin(torch.randn(2, 4, 3)).shape)
        (10, (2, 10))
    """

    def __init__(self, field_size: int, layer_size: Sequence[int] = (256, 128), activation: str = "relu",
                 split_half: bool = True) -> None:
        super().__init__()
        sizes = _check_units("CIN", layer_size)
        if not sizes:
            raise ValueError("CIN: layer_size must not be empty.")
        if split_half and any(s % 2 for s in sizes[:-1]):
            raise ValueError(f"CIN: with split_half=True every layer but the last needs an even size, got {sizes}.")
        self.split_half = bool(split_half)
        self.sizes = sizes
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        hidden = field_size
        out = 0
        for i, s in enumerate(sizes):
            self.weights.append(nn.Parameter(torch.empty(s, hidden, field_size)))
            self.biases.append(nn.Parameter(torch.empty(s)))
            last = i == len(sizes) - 1
            hidden = s // 2 if split_half and not last else s
            out += s // 2 if split_half and not last else s
        self.act = get_activation(activation)
        self.output_dim = out
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w, b in zip(self.weights, self.biases):   # nn.Conv1d's default, kernel size 1
            fan_in = w.shape[1] * w.shape[2]
            nn.init.kaiming_uniform_(w.view(w.shape[0], -1), a=math.sqrt(5))
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        h = x0
        outs = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.einsum("bhd,bmd->bhmd", h, x0).flatten(1, 2)              # (B, H*F, D)
            z = self.act(torch.einsum("oc,bcd->bod", w.flatten(1), z) + b.view(1, -1, 1))
            if self.split_half and i < len(self.sizes) - 1:
                h, direct = torch.split(z, [z.shape[1] // 2] * 2, dim=1)
            else:
                h = direct = z
            outs.append(direct)
        return torch.cat(outs, dim=1).sum(dim=2)


class InteractingLayer(nn.Module):
    """AutoInt's multi-head self-attention over fields, with a residual projection.

    Args:
        embedding_size: field embedding width ``D`` (kept: each of the ``head_num`` heads has ``D / head_num``).
        head_num: number of heads (must divide ``D``).
        use_res: add the projected input (residual) before the ReLU.
        scaling: divide the attention logits by ``sqrt(D / head_num)``.

    Shape:
        ``(B, F, D)`` → ``(B, F, D)``.

    Example:
        >>> InteractingLayer(4, head_num=2)(torch.randn(3, 5, 4)).shape
        torch.Size([3, 5, 4])
    """

    def __init__(self, embedding_size: int, head_num: int = 2, use_res: bool = True, scaling: bool = False) -> None:
        super().__init__()
        if isinstance(head_num, bool) or not isinstance(head_num, int) or head_num < 1:
            raise ValueError(f"InteractingLayer: head_num must be an int >= 1, got {head_num!r}.")
        if embedding_size % head_num:
            raise ValueError(f"InteractingLayer: the embedding size {embedding_size} is not a multiple of "
                             f"head_num={head_num}.")
        self.head_num, self.use_res, self.scaling = head_num, bool(use_res), bool(scaling)
        D = embedding_size
        self.W = nn.Parameter(torch.empty(D, (4 if use_res else 3) * D))   # query | key | value | residual
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.W, mean=0.0, std=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, Fn, D = x.shape
        H = self.head_num
        proj = x @ self.W                                            # (B, F, 3D or 4D), one GEMM
        q, k, v = (proj[..., i * D:(i + 1) * D].reshape(B, Fn, H, D // H).transpose(1, 2) for i in range(3))
        scores = q @ k.transpose(-1, -2)                             # (B, H, F, F)
        if self.scaling:
            scores = scores / math.sqrt(D // H)
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, Fn, D)
        if self.use_res:
            out = out + proj[..., 3 * D:]
        return torch.relu(out)


class Dice(nn.Module):
    """DIN's data-adaptive activation: ``p(x)·x + (1 - p(x))·α·x`` with ``p = sigmoid(BatchNorm(x))``.

    Shape:
        ``(N, C)`` → ``(N, C)``.

    Example:
        >>> Dice(4)(torch.randn(8, 4)).shape
        torch.Size([8, 4])
    """

    def __init__(self, num_features: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(num_features, eps=eps)
        self.alpha = nn.Parameter(torch.zeros(num_features))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.bn(x))
        return p * x + (1 - p) * self.alpha * x


class LocalActivationUnit(nn.Module):
    """DIN's local activation unit: an MLP over ``[q, k, q - k, q ⊙ k]`` scoring each behaviour ``k`` against
    the target ``q``.

    The first layer is split algebraically (``W [q, k, q-k, q⊙k] = (W_q + W_d) q + (W_k - W_d) k + W_p (q⊙k)``)
    so the query's share is computed once per row instead of once per behaviour.

    Args:
        embedding_dim: width ``E`` of queries and keys.
        hidden_units: hidden layers of the MLP (non-empty).
        activation: ``"dice"`` or any name of :func:`~ctrkit.layers.get_activation`.
        dropout, use_bn: for the hidden layers.

    Shape:
        query ``(B, E)``, keys ``(B, L, E)`` → scores ``(B, L)`` (raw).

    Example:
        >>> LocalActivationUnit(4, (8,))(torch.randn(2, 4), torch.randn(2, 3, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, embedding_dim: int, hidden_units: Sequence[int] = (64, 16), activation: str = "dice",
                 dropout: float = 0.0, use_bn: bool = False) -> None:
        super().__init__()
        units = _check_units("LocalActivationUnit", hidden_units)
        if not units:
            raise ValueError("LocalActivationUnit: hidden_units must not be empty.")
        self.E = embedding_dim
        self.first = nn.Linear(4 * embedding_dim, units[0])
        layers: list[nn.Module] = []
        prev = units[0]
        for i, u in enumerate(units):
            if i > 0:
                layers.append(nn.Linear(prev, u))
            if use_bn:
                layers.append(nn.BatchNorm1d(u))
            layers.append(Dice(u) if str(activation).lower() == "dice" else get_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = u
        self.rest = nn.Sequential(*layers)
        self.out = nn.Linear(prev, 1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        B, L, E = keys.shape
        w = self.first.weight                                      # (H, 4E): [q | k | q-k | q*k]
        wq, wk, wd, wp = w[:, :E], w[:, E:2 * E], w[:, 2 * E:3 * E], w[:, 3 * E:]
        hq = F.linear(query, wq + wd, self.first.bias).unsqueeze(1)  # (B, 1, H)
        h = hq + keys @ (wk - wd).t() + (query.unsqueeze(1) * keys) @ wp.t()
        h = self.rest(h.reshape(B * L, -1))
        return self.out(h).view(B, L)


class AttentionSequencePoolingLayer(nn.Module):
    """DIN's target attention: behaviours weighted by their local-activation score against the target, summed.

    Padded positions (``mask`` False) get weight 0. With ``weight_normalization`` the scores are softmax-ed
    over the valid positions (the paper keeps raw scores, so the output's norm reflects how strongly the
    history relates to the target).

    Args:
        embedding_dim: width ``E`` of queries and keys.
        att_hidden_units, att_activation, weight_normalization: as in DeepCTR's layer of the same name.

    Shape:
        query ``(B, E)``, keys ``(B, L, E)``, mask ``(B, L)`` bool → ``(B, E)``; with ``return_score=True``
        the weights ``(B, L)`` instead.

    Example:
        >>> att = AttentionSequencePoolingLayer(4, (8,))
        >>> keys, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [False, False, False]])
        >>> out = att(torch.randn(2, 4), keys, mask)
        >>> tuple(out.shape), out[1].abs().sum().item()          # an empty history pools to zeros
        ((2, 4), 0.0)
    """

    def __init__(self, embedding_dim: int, att_hidden_units: Sequence[int] = (64, 16), att_activation: str = "dice",
                 weight_normalization: bool = False, dropout: float = 0.0, use_bn: bool = False) -> None:
        super().__init__()
        self.unit = LocalActivationUnit(embedding_dim, att_hidden_units, att_activation, dropout, use_bn)
        self.weight_normalization = bool(weight_normalization)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                return_score: bool = False) -> torch.Tensor:
        scores = self.unit(query, keys)                                           # (B, L)
        m = mask.to(scores.dtype)
        if self.weight_normalization:
            scores = torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=1) * m
        else:
            scores = scores * m
        if return_score:
            return scores
        return (scores.unsqueeze(-1) * keys).sum(dim=1)
