"""LR: logistic regression over sparse ids and dense values, and the base of the models with a linear part.

McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013 (LR as the CTR baseline).
https://doi.org/10.1145/2487575.2488200

:class:`LinearDeepModel` is the shared base of the single-task models that take DeepCTR-Torch's
``(linear_feature_columns, dnn_feature_columns, ...)``: the linear part reads the first list, the embedding /
interaction / deep part the second, and ``l2_reg_linear`` applies to the linear weights only.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...features import DenseFeat, check_feature_columns, split_feature_columns
from ...layers.core import MLP
from ...layers.linear import FeatureSubset, LinearLogit
from ...registry import register_model
from .._tasks import single_task
from ..base import BaseModel

__all__ = ["LR", "LinearDeepModel"]


class LinearDeepModel(BaseModel):
    """Base (not registered) of single-task models with a linear part plus a part over ``dnn_feature_columns``.

    The model's feature columns are the union of both lists. When the deep part reads a strict subset of
    them, ``self.embedding`` holds only that subset's tables and :meth:`_deep` sees the batch through a
    :class:`~ctrkit.layers.FeatureSubset`. Subclasses may set ``self._l2_modules = {attribute:
    coefficient}`` before :meth:`_finish_init` to give a submodule its own L2 (``l2_reg_cross``, ``l2_reg_cin``)
    instead of ``l2_reg_dnn``.
    """

    def __init__(self, linear_feature_columns: Sequence, dnn_feature_columns: Sequence,
                 task_names: Sequence[str], task_types: Sequence[str], *, l2_reg_linear: float,
                 l2_reg_embedding: float, l2_reg_dnn: float, init_std: float, seed: int | None, device,
                 sparse: bool, config: dict, embedding_backend: str = "native") -> None:
        lin = list(linear_feature_columns or [])
        dnn = list(dnn_feature_columns or [])
        encoder = getattr(dnn_feature_columns, "encoder", None) or getattr(linear_feature_columns, "encoder", None)
        super().__init__(lin + dnn, task_names, task_types, l2_reg_embedding=l2_reg_embedding,
                         l2_reg_dnn=l2_reg_dnn, init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend,
                         encoder=encoder, config=config)
        name = type(self).__name__
        if isinstance(l2_reg_linear, bool) or not isinstance(l2_reg_linear, (int, float)) or l2_reg_linear < 0:
            raise ValueError(f"{name}: l2_reg_linear must be a number >= 0, got {l2_reg_linear!r}.")
        self.l2_reg_linear = float(l2_reg_linear)
        self._l2_modules: dict[str, float] = {}
        # dense gradients for the width-1 linear tables: the optimizer builder only gives ``self.embedding``'s
        # tables SparseAdam, and a width-1 table's dense gradient is cheap
        self.linear = LinearLogit(lin, self.feature_columns, init_std=init_std, sparse=False)
        self.dnn_feature_columns = check_feature_columns(dnn, where=f"{name}: dnn_feature_columns")
        self.deep_view = FeatureSubset(self.feature_columns, self.dnn_feature_columns)
        if not self.deep_view.identity:   # no tables for features that only the linear part reads
            with torch.random.fork_rng(devices=[]):   # seeded like BaseModel's own tables, global RNG untouched
                if seed is not None:
                    torch.manual_seed(int(seed))
                self.embedding = self.make_embedding(self.dnn_feature_columns, init_std=init_std, sparse=sparse)
            self.dense_dim = sum(f.dimension for f in split_feature_columns(self.dnn_feature_columns).dense)
            self.input_dim = self.embedding.output_dim + self.dense_dim

    # ------------------------------------------------------------------ checks used by subclasses
    def _sparse_dnn_features(self) -> list:
        split = split_feature_columns(self.dnn_feature_columns)
        return split.sparse + split.varlen

    def _field_features(self) -> list:
        """The features of ``dnn_feature_columns`` that are embedding fields: the sparse / var-length ones, then
        the dense ones with a numeric embedding (the order of the fields of one dimension group)."""
        split = split_feature_columns(self.dnn_feature_columns)
        return split.sparse + split.varlen + [f for f in split.dense if getattr(f, "embedding", None) is not None]

    def _require_sparse(self, why: str) -> None:
        """Raise a ValueError when ``dnn_feature_columns`` has no SparseFeat / VarLenSparseFeat."""
        if not self._sparse_dnn_features():
            dense = [f.name for f in self.dnn_feature_columns]
            raise ValueError(f"{type(self).__name__}: needs at least one SparseFeat or VarLenSparseFeat in "
                             f"dnn_feature_columns ({why}); got only dense features {dense}. Add sparse "
                             "features, or use a model without this part (e.g. WDL or DNN).")

    def _require_equal_dims(self, why: str) -> int:
        """The common embedding_dim of the dnn fields (numeric embeddings included); a ValueError naming them when
        dims differ."""
        feats = self._field_features()
        dims = {_field_dim(f) for f in feats}
        if len(dims) > 1:
            by_dim = {d: [f.name for f in feats if _field_dim(f) == d] for d in sorted(dims)}
            raise ValueError(f"{type(self).__name__}: {why} needs one embedding_dim for every SparseFeat / "
                             f"VarLenSparseFeat / numeric embedding of dnn_feature_columns, got {by_dim} (dim: "
                             "features). Give them the same embedding_dim (e.g. FeatureEncoder(embedding_dim=8), "
                             "whose numeric embeddings take that width too).")
        return dims.pop()

    # ------------------------------------------------------------------ forward helpers
    def _deep(self, batch) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """``(field groups, flat input)`` of the deep part: the embedding groups ``[(B, F_g, D_g)]`` and their
        concatenation with the dense values ``(B, input_dim)`` (None when the deep part has no input)."""
        x = self.deep_view(batch)
        groups = self.embedding(x)
        parts = [g.flatten(1) for g in groups]
        if x.dense is not None and self.dense_dim:
            parts.append(x.dense)
        flat = None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return groups, flat

    def _fields(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(field embeddings (B, F, D), dense values (B, dense_dim) or None)`` of the deep part, for models
        that checked one embedding_dim (:meth:`_require_equal_dims`)."""
        x = self.deep_view(batch)
        return self.embedding(x)[0], x.dense if self.dense_dim else None

    def _input(self, batch) -> torch.Tensor:
        flat = self._deep(batch)[1]
        assert flat is not None, f"{type(self).__name__}: the deep part has no input features"
        return flat

    def _build_dnn(self, dnn_hidden_units, activation, dropout, use_bn) -> None:
        """The optional deep part shared by WDL / DeepFM / xDeepFM: an MLP over the deep input, then one logit."""
        self.use_dnn = bool(dnn_hidden_units) and self.input_dim > 0
        dnn = MLP(self.input_dim, tuple(dnn_hidden_units), activation, dropout, use_bn) if self.use_dnn else None
        self.dnn = dnn
        self.dnn_linear = nn.Linear(dnn.output_dim, 1, bias=False) if dnn is not None else None

    def _dnn_logit(self, flat: torch.Tensor | None) -> torch.Tensor:
        # only called when use_dnn, which needs a deep input (input_dim > 0)
        assert self.dnn is not None and self.dnn_linear is not None and flat is not None
        return self.dnn_linear(self.dnn(flat))[:, 0]

    def _output(self, logit: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.task_names[0]: logit}

    # ------------------------------------------------------------------ regularisation
    def _finish_init(self) -> None:
        super()._finish_init()
        own = {id(p) for p in self.linear.parameters()}
        for attr in self._l2_modules:
            own |= {id(p) for p in getattr(self, attr).parameters()}
        self._dnn_weights = [p for p in self._dnn_weights if id(p) not in own]
        self._l2_params = [(coef, [p for p in getattr(self, attr).parameters() if p.dim() >= 2])
                           for attr, coef in self._l2_modules.items() if coef > 0]
        if self.linear.embedding is not None:
            self.linear.embedding.keep_last = self.l2_reg_linear > 0

    def regularization_loss(self) -> torch.Tensor | float | None:
        reg = super().regularization_loss()
        terms: list[torch.Tensor | float] = [] if reg is None else [reg]
        if self.l2_reg_linear > 0:
            pen = self.linear.l2_penalty()
            if pen is not None:
                terms.append(self.l2_reg_linear * pen)
        for coef, params in self._l2_params:
            terms.append(coef * sum((p * p).sum() for p in params))
        return sum(terms) if terms else None


def _field_dim(f) -> int:
    """The width of a field: a sparse / var-length feature's embedding_dim, a numeric embedding's width."""
    if isinstance(f, DenseFeat):
        assert f.embedding is not None   # only embedded dense features are fields
        return f.embedding.embedding_dim
    return int(f.embedding_dim)


@register_model
class LR(LinearDeepModel):
    """Logistic (or, with ``task="regression"``, linear) regression: one weight per sparse id and per dense
    value, plus a bias.

    Args:
        linear_feature_columns: the features (sparse ids get a weight each; var-length ones are pooled with
            their ``combiner``; dense values get a weight each).
        l2_reg_linear: L2 on the linear weights (the looked-up id weights per batch, all dense weights).
        init_std: standard deviation of the weights' normal initialisation.
        task: ``"binary"`` or ``"regression"``; task_name: the output's name.
        task_names, task_types: as in :class:`~ctrkit.WDL`.
        seed, device, sparse: see :class:`~ctrkit.models.BaseModel`; gpus: ignored (DeepCTR compatibility).

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> m = LR([SparseFeat("user", 10, 4), DenseFeat("age")])
        >>> m.count_params()                  # 10 id weights + 1 dense weight + bias
        12
    """

    def __init__(self, linear_feature_columns, l2_reg_linear: float = 0.0, init_std: float = 0.01,
                 seed: int = 1024, task: str = "binary", task_name: str = "label", device: str = "cpu",
                 sparse: bool = False, embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, [],
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=0.0, l2_reg_dnn=0.0, init_std=init_std,
                         seed=seed, device=device, sparse=sparse, embedding_backend=embedding_backend, config=locals())
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        return self._output(self.linear(batch))
