"""FM: Factorization Machines (linear part + pairwise interactions of the field embeddings).

Rendle, "Factorization Machines", ICDM 2010. https://doi.org/10.1109/ICDM.2010.127
"""
from __future__ import annotations

import torch

from ...data.inputs import TensorData
from ...layers.fm import FM as FMLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["FM"]


@register_model
class FM(LinearDeepModel):
    """``logit = w0 + Σ w_i x_i + Σ_{i<j} <e_i, e_j>`` over the sparse fields of ``dnn_feature_columns``.

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features whose embeddings interact (sparse / var-length, all of one
            embedding_dim; dense features here are ignored by the FM term).
        l2_reg_linear, l2_reg_embedding, init_std, seed, task, task_name, task_names, task_types, device,
            sparse, gpus: as in :class:`~ctrkit.DeepFM`.

    Raises:
        ValueError: when ``dnn_feature_columns`` has no sparse feature, or their embedding dims differ.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("age")]
        >>> FM(cols, cols).count_params()     # linear 30 + 1 + bias, embeddings 30 x 4
        152
    """

    conformance_tags = {"needs_sparse": True}   # the pairwise interactions are over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, init_std: float = 0.01, seed: int = 1024, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=0.0,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the FM term interacts their embeddings")
        self._require_equal_dims("the FM term")
        self.fm = FMLayer()
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        groups, _ = self._deep(batch)
        return self._output(self.linear(batch) + self.fm(groups[0]))
