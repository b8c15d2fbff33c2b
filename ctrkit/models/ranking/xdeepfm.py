"""xDeepFM: a Compressed Interaction Network (explicit vector-wise interactions) plus an MLP and a linear part.

Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for Recommender Systems", KDD 2018.
https://arxiv.org/abs/1803.05170
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.cross import CIN
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["xDeepFM"]


@register_model
class xDeepFM(LinearDeepModel):  # noqa: N801 (the paper's and DeepCTR's spelling)
    """``logit = linear + w·CIN(field embeddings) + w'·MLP(embeddings + dense)``.

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the CIN (sparse / var-length, one embedding_dim) and the MLP (all).
        dnn_hidden_units: MLP layer widths (empty: no MLP).
        cin_layer_size: feature maps per CIN layer (empty: no CIN).
        cin_split_half: half of each hidden CIN layer's maps go to the output, half to the next layer.
        cin_activation: activation of the CIN feature maps.
        l2_reg_cin: L2 on the CIN weights (instead of ``l2_reg_dnn``).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: with a CIN and no sparse feature in ``dnn_feature_columns``, or unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4)]
        >>> xDeepFM(cols, cols, dnn_hidden_units=(8,), cin_layer_size=(4, 2)).cin.output_dim
        4
    """

    conformance_tags = {"needs_sparse": True}   # the CIN is over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, dnn_hidden_units: Sequence[int] = (256, 256),
                 cin_layer_size: Sequence[int] = (256, 128), cin_split_half: bool = True,
                 cin_activation: str = "relu", l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0,
                 l2_reg_dnn: float = 0.0, l2_reg_cin: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task: str = "binary", task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native",
                 gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self.use_cin = bool(cin_layer_size)
        self.cin: CIN | None = None
        self.cin_linear: nn.Linear | None = None
        if self.use_cin:
            self._require_sparse("the CIN interacts their embeddings")
            self._require_equal_dims("the CIN")
            self.cin = CIN(len(self._field_features()), tuple(cin_layer_size), cin_activation, cin_split_half)
            self.cin_linear = nn.Linear(self.cin.output_dim, 1, bias=False)
            self._l2_modules = {"cin": float(l2_reg_cin)}
        self._build_dnn(dnn_hidden_units, dnn_activation, dnn_dropout, dnn_use_bn)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        logit = self.linear(batch)
        if self.use_cin or self.use_dnn:
            groups, flat = self._deep(batch)
            if self.use_cin:
                assert self.cin is not None and self.cin_linear is not None
                logit = logit + self.cin_linear(self.cin(groups[0]))[:, 0]
            if self.use_dnn:
                logit = logit + self._dnn_logit(flat)
        return self._output(logit)
