"""DCN and DCN-V2: a cross network and an MLP side by side over the same input.

Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017. https://arxiv.org/abs/1708.05123
Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
Systems", WWW 2021. https://arxiv.org/abs/2008.13535
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.cross import CrossNet
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["DCN"]


class _CrossDeep(LinearDeepModel):
    """Shared body of DCN and DCN-Mix: ``logit = linear + w·[cross(x0), MLP(x0)]``."""

    def _build_cross_deep(self, make_cross, cross_num, dnn_hidden_units, dnn_activation, dnn_dropout, dnn_use_bn,
                          l2_reg_cross) -> None:
        name = type(self).__name__
        if cross_num == 0 and not dnn_hidden_units:
            raise ValueError(f"{name}: cross_num=0 and dnn_hidden_units=() leave no cross or deep part; set one.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: dnn_feature_columns is empty; the cross and deep parts need an input.")
        self.crossnet = make_cross(self.input_dim) if cross_num else None
        self.dnn = MLP(self.input_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn) \
            if dnn_hidden_units else None
        width = (self.input_dim if self.crossnet is not None else 0) + (self.dnn.output_dim if self.dnn else 0)
        self.dnn_linear = nn.Linear(width, 1, bias=False)
        if self.crossnet is not None:
            self._l2_modules = {"crossnet": float(l2_reg_cross)}
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        x0 = self._deep(batch)[1]
        parts = ([self.crossnet(x0)] if self.crossnet is not None else []) + ([self.dnn(x0)] if self.dnn else [])
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        assert self.dnn_linear is not None  # always built here (LinearDeepModel types it optional)
        return self._output(self.linear(batch) + self.dnn_linear(h)[:, 0])


@register_model
class DCN(_CrossDeep):
    """``logit = linear + w·[CrossNet(x0), MLP(x0)]`` with ``x0`` = all embeddings and dense values of
    ``dnn_feature_columns``, concatenated.

    ``cross_parameterization="vector"`` is the original DCN (``x_{l+1} = x0 ⊙ (x_l·w) + b + x_l``);
    ``"matrix"`` is DCN-V2 (``x_{l+1} = x0 ⊙ (W x_l + b) + x_l``). Both act on the concatenated ``x0``, so
    features may have different embedding dims.

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the cross and deep parts.
        cross_num: number of cross layers (0: no cross network).
        cross_parameterization: ``"vector"`` (DCN) or ``"matrix"`` (DCN-V2).
        dnn_hidden_units: MLP layer widths (empty: no MLP).
        l2_reg_cross: L2 on the cross network's weights (instead of ``l2_reg_dnn``).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 8), DenseFeat("age")]
        >>> m = DCN(cols, cols, cross_num=2, cross_parameterization="matrix", dnn_hidden_units=(8,))
        >>> tuple(m.crossnet.kernels.shape)   # DCN-V2: one 13 x 13 matrix per cross layer
        (2, 13, 13)
    """

    def __init__(self, linear_feature_columns, dnn_feature_columns, cross_num: int = 2,
                 cross_parameterization: str = "vector", dnn_hidden_units: Sequence[int] = (128, 128),
                 l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0, l2_reg_cross: float = 0.0,
                 l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0,
                 dnn_activation: str = "relu", dnn_use_bn: bool = False, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        name = type(self).__name__
        if isinstance(cross_num, bool) or not isinstance(cross_num, int) or cross_num < 0:
            raise ValueError(f"{name}: cross_num must be an int >= 0, got {cross_num!r}.")
        if cross_parameterization not in ("vector", "matrix"):
            raise ValueError(f"{name}: cross_parameterization must be 'vector' (DCN) or 'matrix' (DCN-V2), got "
                             f"{cross_parameterization!r}.")
        self._build_cross_deep(lambda d: CrossNet(d, cross_num, cross_parameterization), cross_num, dnn_hidden_units,
                               dnn_activation, dnn_dropout, dnn_use_bn, l2_reg_cross)
