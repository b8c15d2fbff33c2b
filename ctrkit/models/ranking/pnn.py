"""PNN: an MLP over the field embeddings and their pairwise inner and / or outer products.

Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016.
https://arxiv.org/abs/1611.00144
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.product import KERNEL_TYPES, InnerProductLayer, OuterProductLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["PNN"]


@register_model
class PNN(LinearDeepModel):
    """``logit = b + w·MLP([field embeddings, inner products, outer products, dense])`` (IPNN, OPNN or PNN*).

    Args:
        dnn_feature_columns: the features (sparse / var-length ones with one embedding_dim; dense values go
            into the MLP's input as they are).
        dnn_hidden_units: MLP layer widths.
        use_inner: add the ``F·(F-1)/2`` inner products of the field pairs (IPNN).
        use_outter: add the ``F·(F-1)/2`` kernel products of the field pairs (OPNN; DeepCTR's spelling).
        kernel_type: the outer-product kernel per pair: ``"mat"`` (``D×D``), ``"vec"`` (``D``) or ``"num"``
            (a number).
        l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn, task, task_name,
            task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    There is no linear part (as in the paper and DeepCTR): the output bias is the only other term.

    Raises:
        ValueError: an unknown ``kernel_type``; no sparse feature in ``dnn_feature_columns``; unequal embedding
            dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat(c, 10, 4) for c in "abc"]
        >>> PNN(cols, dnn_hidden_units=(8,), use_outter=True).dnn.net[0].in_features   # 12 + 3 + 3
        18
    """

    conformance_tags = {"needs_sparse": True}   # the products are over field embeddings

    def __init__(self, dnn_feature_columns, dnn_hidden_units: Sequence[int] = (128, 128),
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", use_inner: bool = True,
                 use_outter: bool = False, kernel_type: str = "mat", task: str = "binary", task_name: str = "label",
                 device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", dnn_use_bn: bool = False, gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        if kernel_type not in KERNEL_TYPES:
            raise ValueError(f"PNN: kernel_type must be one of {KERNEL_TYPES}, got {kernel_type!r}.")
        super().__init__([], dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=0.0, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the product layer multiplies their embeddings")
        dim = self._require_equal_dims("the product layer")
        F = len(self._field_features())
        self.use_inner, self.use_outter = bool(use_inner), bool(use_outter)
        self.inner = InnerProductLayer(F) if self.use_inner else None
        self.outer = OuterProductLayer(F, dim, kernel_type) if self.use_outter else None
        P = F * (F - 1) // 2
        width = F * dim + P * (self.use_inner + self.use_outter) + self.dense_dim
        self.dnn = MLP(width, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        emb, dense = self._fields(batch)
        parts = [emb.flatten(1)]
        if self.inner is not None:
            parts.append(self.inner(emb))
        if self.outer is not None:
            parts.append(self.outer(emb))
        if dense is not None:
            parts.append(dense)
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        assert self.dnn is not None and self.dnn_linear is not None and self.linear.bias is not None
        # the linear part has no features: its bias (the output bias) alone, without a batch-sized zeros
        return self._output(self.dnn_linear(self.dnn(h))[:, 0] + self.linear.bias)
