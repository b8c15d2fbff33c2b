"""FiBiNET: squeeze-excitation field weights and bilinear feature interactions, read by an MLP.

Huang et al., "FiBiNET: Combining Feature Importance and Bilinear feature Interaction for Click-Through Rate
Prediction", RecSys 2019. https://arxiv.org/abs/1905.09433
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.interaction import BilinearInteraction, SENETLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["FiBiNET"]


@register_model
class FiBiNET(LinearDeepModel):
    """``logit = linear + w·MLP([Bilinear(SENET(E)), Bilinear(E), dense])`` over the field embeddings ``E``.

    The SENET layer re-weights each field's embedding by a weight learned from the whole row (field
    importance); the bilinear layer interacts every pair ``i < j`` as ``(v_i W) ⊙ v_j``. As in DeepCTR-Torch,
    one bilinear layer is applied to both the original and the re-weighted embeddings.

    Args:
        linear_feature_columns, dnn_feature_columns: as in :class:`~ctrkit.DeepFM` (the sparse / var-length
            ``dnn_feature_columns`` share one embedding_dim).
        bilinear_type: ``"interaction"`` (one ``W`` per pair), ``"each"`` (one per field) or ``"all"``.
        reduction_ratio: the SENET bottleneck's reduction ``r`` (hidden width ``max(1, F // r)``).
        dnn_hidden_units: MLP widths (DeepCTR-Torch's default ``(128, 128)``).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.DeepFM`.

    Raises:
        ValueError: without sparse features in ``dnn_feature_columns``, or with unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), SparseFeat("city", 5, 4)]
        >>> FiBiNET(cols, cols, dnn_hidden_units=(8,)).dnn.net[0].in_features   # 2 x 3 pairs x 4
        24
    """

    dnn: MLP                # always built here (the base class's optional deep part is not used)
    dnn_linear: nn.Linear
    conformance_tags = {"needs_sparse": True}   # SENET and bilinear layers are over field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, bilinear_type: str = "interaction",
                 reduction_ratio: int = 3, dnn_hidden_units: Sequence[int] = (128, 128),
                 l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0,
                 init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0, dnn_activation: str = "relu",
                 dnn_use_bn: bool = False, task: str = "binary", task_name: str = "label", device: str = "cpu",
                 sparse: bool = False, embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the SENET and bilinear layers weigh and interact their embeddings")
        dim = self._require_equal_dims("the bilinear interaction")
        fields = len(self._field_features())
        self.senet = SENETLayer(fields, reduction_ratio)
        self.bilinear = BilinearInteraction(fields, dim, bilinear_type)
        pairs = fields * (fields - 1) // 2
        self.dnn = MLP(2 * pairs * dim + self.dense_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout,
                       dnn_use_bn)
        self.dnn_linear = nn.Linear(self.dnn.output_dim, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        x = self.deep_view(batch)
        emb = self.embedding(x)[0]                                        # (B, F, D): one embedding dim
        parts = [self.bilinear(self.senet(emb)).flatten(1), self.bilinear(emb).flatten(1)]
        if x.dense is not None and self.dense_dim:
            parts.append(x.dense)
        logit = self.linear(batch) + self.dnn_linear(self.dnn(torch.cat(parts, dim=1)))[:, 0]
        return self._output(logit)
