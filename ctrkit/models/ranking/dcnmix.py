"""DCN-Mix: DCN-V2 with each cross layer a mixture of low-rank experts.

Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
Systems", WWW 2021, §3.3. https://arxiv.org/abs/2008.13535
"""
from __future__ import annotations

from collections.abc import Sequence

from ...layers.cross import CrossNetMix
from ...registry import register_model
from .._tasks import single_task
from .dcn import _CrossDeep

__all__ = ["DCNMix"]


@register_model
class DCNMix(_CrossDeep):
    """``logit = linear + w·[CrossNetMix(x0), MLP(x0)]``; every cross layer mixes ``num_experts`` rank-``low_rank``
    experts with a softmax gate (all experts of a layer computed in one batched product).

    Args:
        linear_feature_columns, dnn_feature_columns, cross_num, dnn_hidden_units, l2_reg_cross: as in
            :class:`~ctrkit.DCN`.
        low_rank: rank of each expert.
        num_experts: experts per cross layer.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), DenseFeat("age")]
        >>> m = DCNMix(cols, cols, cross_num=2, low_rank=2, num_experts=3, dnn_hidden_units=(8,))
        >>> tuple(m.crossnet.U.shape)         # (layers, experts, input width, rank)
        (2, 3, 5, 2)
    """

    def __init__(self, linear_feature_columns, dnn_feature_columns, cross_num: int = 2,
                 dnn_hidden_units: Sequence[int] = (128, 128), l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, l2_reg_cross: float = 0.0, l2_reg_dnn: float = 0.0,
                 init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0, low_rank: int = 32,
                 num_experts: int = 4, dnn_activation: str = "relu", dnn_use_bn: bool = False, task: str = "binary",
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
        self._build_cross_deep(lambda d: CrossNetMix(d, low_rank, num_experts, cross_num), cross_num,
                               dnn_hidden_units, dnn_activation, dnn_dropout, dnn_use_bn, l2_reg_cross)
