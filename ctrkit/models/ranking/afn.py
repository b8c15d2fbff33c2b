"""AFN: a logarithmic neural network learns interactions of adaptive order, read by an MLP, plus a linear part.

Cheng et al., "Adaptive Factorization Network: Learning Adaptive-Order Feature Interactions", AAAI 2020.
https://arxiv.org/abs/1909.03276
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.product import LogTransformLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["AFN"]


@register_model
class AFN(LinearDeepModel):
    """``logit = linear + w·MLP(LogTransform(field embeddings))`` (the paper's AFN, without its AFN+ ensemble).

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the logarithmic layer (sparse / var-length, one embedding_dim; dense
            features are ignored there, as in DeepCTR: give them to the linear part).
        ltl_hidden_size: number of logarithmic neurons.
        afn_dnn_hidden_units: widths of the MLP over the ``D · ltl_hidden_size`` neuron outputs.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, task,
            task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: without a sparse feature in ``dnn_feature_columns``, or with unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat(c, 10, 4) for c in "abc"]
        >>> AFN(cols, cols, ltl_hidden_size=16, afn_dnn_hidden_units=(8,)).ltl.output_dim     # 4 dims x 16
        64
    """

    conformance_tags = {"needs_sparse": True}   # the logarithmic layer is over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, ltl_hidden_size: int = 256,
                 afn_dnn_hidden_units: Sequence[int] = (256, 128), l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the logarithmic layer multiplies their embeddings")
        dim = self._require_equal_dims("the logarithmic transformation layer")
        self.ltl = LogTransformLayer(len(self._field_features()), dim, ltl_hidden_size)
        self.dnn = MLP(self.ltl.output_dim, tuple(afn_dnn_hidden_units), dnn_activation, dnn_dropout)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        emb = self.embedding(self.deep_view(batch))[0]
        assert self.dnn is not None and self.dnn_linear is not None
        return self._output(self.linear(batch) + self.dnn_linear(self.dnn(self.ltl(emb)))[:, 0])
