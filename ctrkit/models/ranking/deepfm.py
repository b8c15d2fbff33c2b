"""DeepFM: a factorization machine and an MLP sharing the same field embeddings.

Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR Prediction", IJCAI 2017.
https://arxiv.org/abs/1703.04247
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ...data.inputs import TensorData
from ...layers.fm import FM as FMLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["DeepFM"]


@register_model
class DeepFM(LinearDeepModel):
    """``logit = linear + FM(field embeddings) + w·MLP(embeddings + dense)``.

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the FM and deep parts; the FM term interacts their sparse / var-length
            embeddings (one embedding_dim for all), the MLP also reads the dense ones.
        use_fm: include the FM term.
        dnn_hidden_units: MLP layer widths (empty: no deep part).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: with ``use_fm`` and no sparse feature in ``dnn_feature_columns``, or unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("age")]
        >>> m = DeepFM(cols, cols, dnn_hidden_units=(8,))
        >>> m.input_dim                       # 2 fields x 4 + 1 dense value
        9
    """

    conformance_tags = {"needs_sparse": True}   # the FM part is over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, use_fm: bool = True,
                 dnn_hidden_units: Sequence[int] = (256, 128), l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
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
        self.use_fm = bool(use_fm)
        if self.use_fm:
            self._require_sparse("the FM term interacts their embeddings")
            self._require_equal_dims("the FM term")
        self.fm = FMLayer() if self.use_fm else None
        self._build_dnn(dnn_hidden_units, dnn_activation, dnn_dropout, dnn_use_bn)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        logit = self.linear(batch)
        if self.use_fm or self.use_dnn:
            groups, flat = self._deep(batch)
            if self.use_fm:
                assert self.fm is not None
                logit = logit + self.fm(groups[0])
            if self.use_dnn:
                logit = logit + self._dnn_logit(flat)
        return self._output(logit)
