"""GDCN: DCN-V2's cross network with an information gate on every cross layer, stacked on or beside an MLP.

Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR Prediction", CIKM 2023.
https://arxiv.org/abs/2311.04635
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.cross import GatedCrossNet
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["GDCN"]


@register_model
class GDCN(LinearDeepModel):
    """``logit = linear + w·MLP(GCN(x0))`` (GDCN-S, ``structure="stacked"``) or ``linear + w·[GCN(x0),
    MLP(x0)]`` (GDCN-P, ``"parallel"``), with ``x0`` all embeddings and dense values of
    ``dnn_feature_columns`` and ``GCN`` the gated cross network
    ``c_{l+1} = c_0 ⊙ (W_l c_l + b_l) ⊙ sigmoid(W^g_l c_l) + c_l`` (:class:`~ctrkit.layers.GatedCrossNet`).

    Defaults follow FuxiCTR's ``GDCN_default`` template (model_zoo/GDCN/config/model_config.yaml): three
    gated cross layers stacked under an MLP of (1024, 512, 256), ReLU, no dropout or BatchNorm (that template
    trains with Adam at lr 1e-3, embedding dim 32). The paper's field-level dimension optimisation (smaller
    embeddings for less important fields) is not done here; give features different ``embedding_dim`` by hand
    (the cross network reads the concatenated ``x0``, so dims may differ). The cross biases start at zero
    (DCN's convention). A linear part over ``linear_feature_columns`` is added (``[]`` for the paper's model).

    Args:
        linear_feature_columns: features of the linear part (``[]``: a bias only, the paper's model).
        dnn_feature_columns: features of the cross network and the MLP.
        cross_num: number of gated cross layers (>= 1).
        structure: ``"stacked"`` (GDCN-S: the MLP reads the cross network's output) or ``"parallel"``
            (GDCN-P: both read ``x0``; their outputs are concatenated).
        dnn_hidden_units: MLP layer widths (empty: the cross network alone).
        l2_reg_cross: L2 on the cross and gate matrices (instead of ``l2_reg_dnn``).
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 8), DenseFeat("age")]
        >>> m = GDCN([], cols, cross_num=2, dnn_hidden_units=(8,))
        >>> tuple(m.crossnet.kernels.shape)   # per layer: the 13 x 13 cross and gate matrices, stacked
        (2, 26, 13)
    """

    dnn_linear: nn.Linear

    def __init__(self, linear_feature_columns, dnn_feature_columns, cross_num: int = 3, structure: str = "stacked",
                 dnn_hidden_units: Sequence[int] = (1024, 512, 256), l2_reg_linear: float = 0.0,
                 l2_reg_embedding: float = 0.0, l2_reg_cross: float = 0.0, l2_reg_dnn: float = 0.0,
                 init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0, dnn_activation: str = "relu",
                 dnn_use_bn: bool = False, task: str = "binary", task_name: str = "label", device: str = "cpu",
                 sparse: bool = False, embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        name = type(self).__name__
        if structure not in ("stacked", "parallel"):
            raise ValueError(f"{name}: structure must be 'stacked' (GDCN-S) or 'parallel' (GDCN-P), got "
                             f"{structure!r}.")
        if isinstance(cross_num, bool) or not isinstance(cross_num, int) or cross_num < 1:
            raise ValueError(f"{name}: cross_num must be an int >= 1 (the gated cross network), got {cross_num!r}.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: dnn_feature_columns is empty; the cross network needs an input.")
        self.structure = structure
        self.crossnet = GatedCrossNet(self.input_dim, cross_num)
        self.dnn = MLP(self.input_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn) \
            if dnn_hidden_units else None
        dnn_out = self.dnn.output_dim if self.dnn is not None else 0
        width = (dnn_out or self.input_dim) if structure == "stacked" else self.input_dim + dnn_out
        self.dnn_linear = nn.Linear(width, 1, bias=False)
        self._l2_modules = {"crossnet": float(l2_reg_cross)}
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        x0 = self._input(batch)
        cross = self.crossnet(x0)
        if self.dnn is None:
            h = cross
        elif self.structure == "stacked":
            h = self.dnn(cross)
        else:
            h = torch.cat([cross, self.dnn(x0)], dim=1)
        return self._output(self.linear(batch) + self.dnn_linear(h)[:, 0])
