"""MaskNet: instance-guided masks multiply the normalised embeddings and the hidden layers bit by bit, in
MaskBlocks stacked one after the other (serial) or side by side (parallel).

Wang, She and Zhang, "MaskNet: Introducing Feature-Wise Multiplication to CTR Ranking Models by Instance-Guided
Mask", DLP-KDD 2021. https://arxiv.org/abs/2102.07619
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...data.inputs import TensorData
from ...layers.core import MLP
from ...layers.gating import FieldLayerNorm, MaskBlock, ParallelMaskBlocks
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["MaskNet"]


@register_model
class MaskNet(LinearDeepModel):
    """``logit = linear + w·h`` where ``h`` comes from MaskBlocks over the field embeddings.

    Each MaskBlock computes ``act(LN(W (mask(V_emb) ⊙ V_in)))``, where the instance-guided mask
    ``mask(V_emb)`` (two linear layers, ReLU between) reads the whole embedding row ``V_emb`` and ``V_in`` is
    the layer-normalised embeddings (each field with its own gain and bias: LN-EMB) for a block on the
    embeddings, or the previous block's output.

    * ``model_type="serial"`` (SerMaskNet): one block per width of ``dnn_hidden_units``, each on the last.
    * ``model_type="parallel"`` (ParaMaskNet): ``parallel_num_blocks`` blocks of ``parallel_block_dim`` on the
      embeddings, concatenated and read by an MLP of ``dnn_hidden_units``.

    Defaults follow FuxiCTR's ``MaskNet_default`` template (model_zoo/MaskNet/config/model_config.yaml):
    serial, blocks of (400, 400, 400), reduction ratio 1, parallel 1 block of 64, layer norms on, ReLU, no
    dropout (that template trains with Adam at lr 1e-3, embedding dim 40, batch 4096). Dense features enter
    ``V_emb`` and ``V_in`` as raw values (no LN-EMB). A linear part over ``linear_feature_columns`` is added
    (pass ``[]`` for the paper's model).

    Args:
        linear_feature_columns: features of the linear part (``[]``: a bias only, the paper's model).
        dnn_feature_columns: the fields (any embedding dims) and dense features the blocks read.
        model_type: ``"serial"`` or ``"parallel"``.
        dnn_hidden_units: serial: the blocks' output widths (non-empty); parallel: the MLP after the blocks.
        parallel_num_blocks, parallel_block_dim: the parallel model's blocks and their width.
        reduction_ratio: width of a mask's aggregation layer over the width it masks.
        emb_layernorm: LN-EMB on the embeddings a block on the embeddings multiplies.
        net_layernorm: layer normalisation in each block.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`
            (``dnn_dropout`` / ``dnn_activation`` apply to the blocks and the MLP, ``dnn_use_bn`` to the MLP).

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("age")]
        >>> [b.output_dim for b in MaskNet([], cols, dnn_hidden_units=(16, 8)).blocks]
        [16, 8]
        >>> MaskNet([], cols, model_type="parallel", parallel_num_blocks=3, parallel_block_dim=4,
        ...         dnn_hidden_units=(8,)).blocks.output_dim
        12
    """

    dnn_linear: nn.Linear   # always built here (the base class's optional deep part is not used)

    def __init__(self, linear_feature_columns, dnn_feature_columns, model_type: str = "serial",
                 dnn_hidden_units: Sequence[int] = (400, 400, 400), parallel_num_blocks: int = 1,
                 parallel_block_dim: int = 64, reduction_ratio: float = 1.0, emb_layernorm: bool = True,
                 net_layernorm: bool = True, l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0,
                 l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024, dnn_dropout: float = 0.0,
                 dnn_activation: str = "relu", dnn_use_bn: bool = False, task: str = "binary",
                 task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=l2_reg_dnn,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        name = type(self).__name__
        if model_type not in ("serial", "parallel"):
            raise ValueError(f"{name}: model_type must be 'serial' (SerMaskNet) or 'parallel' (ParaMaskNet), got "
                             f"{model_type!r}.")
        if model_type == "serial" and not dnn_hidden_units:
            raise ValueError(f"{name}: the serial model needs dnn_hidden_units (one MaskBlock per width), got "
                             f"{dnn_hidden_units!r}.")
        d = self.input_dim
        if d == 0:
            raise ValueError(f"{name}: dnn_feature_columns is empty; the MaskBlocks need an input.")
        self.model_type = model_type
        self.emb_norms = nn.ModuleList([FieldLayerNorm(n, g) for n, g in zip(self.embedding.num_fields_per_group,
                                                                                self.embedding.group_dims)]) \
            if emb_layernorm else None
        block: dict[str, Any] = dict(reduction_ratio=reduction_ratio, activation=dnn_activation, dropout=dnn_dropout,
                     layer_norm=net_layernorm)
        self.blocks: nn.Module
        self.dnn: MLP | None = None
        if model_type == "serial":
            widths = [d, *dnn_hidden_units]
            self.blocks = nn.ModuleList([MaskBlock(d, a, b, **block) for a, b in zip(widths, widths[1:])])
            out = widths[-1]
        else:
            self.blocks = ParallelMaskBlocks(parallel_num_blocks, d, d, parallel_block_dim, **block)
            self.dnn = MLP(self.blocks.output_dim, tuple(dnn_hidden_units), dnn_activation, dnn_dropout,
                           dnn_use_bn) if dnn_hidden_units else None
            out = self.dnn.output_dim if self.dnn is not None else self.blocks.output_dim
        self.dnn_linear = nn.Linear(out, 1, bias=False)
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        x = self.deep_view(batch)
        groups = self.embedding(x)
        dense = [x.dense] if x.dense is not None and self.dense_dim else []
        v_emb = torch.cat([g.flatten(1) for g in groups] + dense, dim=1)
        if self.emb_norms is not None:
            v_in = torch.cat([n(g).flatten(1) for n, g in zip(self.emb_norms, groups)] + dense, dim=1)
        else:
            v_in = v_emb
        if isinstance(self.blocks, nn.ModuleList):
            h = v_in
            for b in self.blocks:
                h = b(v_emb, h)
        else:
            h = self.blocks(v_emb, v_in)
            if self.dnn is not None:
                h = self.dnn(h)
        return self._output(self.linear(batch) + self.dnn_linear(h)[:, 0])
