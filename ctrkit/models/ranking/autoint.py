"""AutoInt: stacked multi-head self-attention over the field embeddings, plus an MLP and a linear part.

Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural Networks", CIKM 2019.
https://arxiv.org/abs/1810.11921
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.attention import InteractingLayer
from ...layers.core import MLP
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["AutoInt"]


@register_model
class AutoInt(LinearDeepModel):
    """``logit = linear + w·[flatten(InteractingLayer^att_layer_num(fields)), MLP(embeddings + dense)]``.

    Args:
        linear_feature_columns: features of the linear part (``[]`` for the paper's model without one).
        dnn_feature_columns: features of the attention (sparse / var-length, one embedding_dim, divisible by
            ``att_head_num``) and of the MLP (all).
        att_layer_num: number of interacting layers (0: no attention part).
        att_head_num: attention heads per layer.
        att_res: residual connection in each interacting layer.
        att_scaling: scale the attention logits by ``1/sqrt(head width)``.
        dnn_hidden_units: MLP layer widths (empty: no MLP).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: with attention and no sparse feature in ``dnn_feature_columns``, unequal embedding dims, or
            an embedding dim not divisible by ``att_head_num``.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4)]
        >>> len(AutoInt(cols, cols, att_layer_num=2, dnn_hidden_units=(8,)).int_layers)
        2
    """

    conformance_tags = {"needs_sparse": True}   # the attention is over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, att_layer_num: int = 3, att_head_num: int = 2,
                 att_res: bool = True, dnn_hidden_units: Sequence[int] = (256, 128), dnn_activation: str = "relu",
                 l2_reg_dnn: float = 0.0, l2_reg_embedding: float = 0.0, dnn_use_bn: bool = False,
                 dnn_dropout: float = 0.0, init_std: float = 0.01, seed: int = 1024, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", l2_reg_linear: float = 0.0,
                 att_scaling: bool = False, gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        name = type(self).__name__
        if isinstance(att_layer_num, bool) or not isinstance(att_layer_num, int) or att_layer_num < 0:
            raise ValueError(f"{name}: att_layer_num must be an int >= 0, got {att_layer_num!r}.")
        if att_layer_num == 0 and not dnn_hidden_units:
            raise ValueError(f"{name}: att_layer_num=0 and dnn_hidden_units=() leave no attention or deep part.")
        att_width, dim = 0, 0
        if att_layer_num:
            self._require_sparse("the interacting layers attend over their embeddings")
            dim = self._require_equal_dims("self-attention over fields")
            if isinstance(att_head_num, bool) or not isinstance(att_head_num, int) or att_head_num < 1 \
                    or dim % att_head_num:
                raise ValueError(f"{name}: att_head_num must be an int >= 1 dividing the embedding_dim {dim}, got "
                                 f"{att_head_num!r}.")
            att_width = len(self._field_features()) * dim
        self.int_layers = nn.ModuleList([InteractingLayer(dim, att_head_num, att_res, att_scaling)
                                         for _ in range(att_layer_num)])
        self.dnn = MLP(self.input_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn) \
            if dnn_hidden_units and self.input_dim else None
        if not att_layer_num and self.dnn is None:
            raise ValueError(f"{name}: with att_layer_num=0 the MLP is the only part, but dnn_feature_columns is "
                             "empty.")
        width = att_width + (self.dnn.output_dim if self.dnn is not None else 0)
        self.dnn_linear = nn.Linear(width, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        groups, flat = self._deep(batch)
        parts = []
        if len(self.int_layers):
            h = groups[0]
            for layer in self.int_layers:
                h = layer(h)
            parts.append(h.flatten(1))
        if self.dnn is not None:
            parts.append(self.dnn(flat))
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        assert self.dnn_linear is not None  # always built here (LinearDeepModel types it optional)
        return self._output(self.linear(batch) + self.dnn_linear(h)[:, 0])
