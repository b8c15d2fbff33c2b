"""CCPM: convolutions with k-max pooling over the sequence of field embeddings, read by an MLP, plus a linear
part.

Liu et al., "A Convolutional Click Prediction Model", CIKM 2015. https://doi.org/10.1145/2806416.2806603
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.conv import ConvLayer
from ...layers.core import MLP
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["CCPM"]


@register_model
class CCPM(LinearDeepModel):
    """``logit = linear + w·MLP(flatten(ConvLayer(field embeddings)))``.

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the convolutions (sparse / var-length, one embedding_dim, in the
            order given: the convolution runs along it; dense features are ignored there, as in DeepCTR: give
            them to the linear part).
        conv_kernel_width: kernel width (over fields) of each convolution layer.
        conv_filters: filters of each convolution layer (as many as widths).
        dnn_hidden_units: MLP layer widths.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: ``conv_kernel_width`` and ``conv_filters`` of different lengths; no sparse feature in
            ``dnn_feature_columns``; unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat(c, 10, 4) for c in "abcde"]
        >>> CCPM(cols, cols, conv_kernel_width=(3, 2), conv_filters=(4, 2), dnn_hidden_units=(8,)).conv.field_shape
        2
    """

    conformance_tags = {"needs_sparse": True}   # the convolutions are over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, conv_kernel_width: Sequence[int] = (6, 5),
                 conv_filters: Sequence[int] = (4, 4), dnn_hidden_units: Sequence[int] = (256,),
                 l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0,
                 dnn_dropout: float = 0.0, init_std: float = 0.01, seed: int = 1024, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", dnn_use_bn: bool = False,
                 dnn_activation: str = "relu", sparse: bool = False, embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        if len(tuple(conv_kernel_width)) != len(tuple(conv_filters)):
            raise ValueError(f"CCPM: conv_kernel_width and conv_filters must have the same length, got "
                             f"{tuple(conv_kernel_width)!r} and {tuple(conv_filters)!r}.")
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the convolutions run over their embeddings")
        dim = self._require_equal_dims("the convolution layers")
        self.conv = ConvLayer(len(self._field_features()), conv_kernel_width, conv_filters)
        width = self.conv.field_shape * self.conv.filters * dim
        self.dnn = MLP(width, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        emb = self.embedding(self.deep_view(batch))[0]
        assert self.dnn is not None and self.dnn_linear is not None
        return self._output(self.linear(batch) + self.dnn_linear(self.dnn(self.conv(emb).flatten(1)))[:, 0])
