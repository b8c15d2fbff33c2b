"""FinalMLP: two MLP streams over differently gated copies of the input, fused by a multi-head bilinear layer.

Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction", AAAI 2023.
https://arxiv.org/abs/2304.00902
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.inputs import TensorData
from ...features import split_feature_columns
from ...layers.core import MLP
from ...layers.gating import BilinearFusion, FeatureGate
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["FinalMLP"]


def flat_input_columns(model: LinearDeepModel, names: Sequence[str], arg: str) -> list[int]:
    """The columns of ``model``'s flat deep input ``(B, input_dim)`` that hold the features ``names``
    (embedding groups by dimension, sparse then var-length fields in each, then the dense values)."""
    cols: dict[str, list[int]] = {}
    start = 0
    emb = model.embedding
    for d in emb.group_dims:
        for f in [f for f in emb.sparse_features if f.embedding_dim == d] + \
                 [f for f in emb.varlen_features if f.embedding_dim == d]:
            cols[f.name] = list(range(start, start + d))
            start += d
    for f in split_feature_columns(model.dnn_feature_columns).dense:
        cols[f.name] = list(range(start, start + f.dimension))
        start += f.dimension
    unknown = [n for n in names if n not in cols]
    if unknown:
        raise ValueError(f"{type(model).__name__}: {arg} names {unknown}, which are not features of "
                         f"dnn_feature_columns {list(cols)}. Name context features among them.")
    return [c for n in names for c in cols[n]]


@register_model
class FinalMLP(LinearDeepModel):
    """``logit = linear + BilinearFusion(MLP1(x ⊙ g1), MLP2(x ⊙ g2))`` over the deep input ``x`` (all
    embeddings and dense values of ``dnn_feature_columns``).

    Feature selection (``use_fs``) gives each stream its own view of the input: ``g_k = 2·sigmoid(MLP(c_k))``
    is computed from the stream's context features ``c_k`` (``fs1_context`` / ``fs2_context``: e.g. the user
    and the item fields), or, when none are named, from a learned vector (a learned per-bit gate). The fusion
    adds each stream's linear score and a bilinear term per head between the streams' outputs.

    Defaults follow FuxiCTR's ``FinalMLP_default`` template (model_zoo/FinalMLP/config/model_config.yaml):
    streams of (1024, 512) and (1024, 512, 256), gate MLPs of (1024, 512), two heads, ReLU, no dropout or
    BatchNorm; that template also trains with Adam at lr 1e-3 and embedding dim 16.

    Differences from the paper / FuxiCTR: the gates' context embeddings are the model's own (shared) field
    embeddings, not separate tables; dense features enter as raw values (gated like the embeddings), not as
    embeddings; a linear part over ``linear_feature_columns`` is added (pass ``[]`` for the paper's model).

    Args:
        linear_feature_columns: features of the linear part (``[]``: a bias only, the paper's model).
        dnn_feature_columns: features of the two streams (any embedding dims, dense features too).
        mlp1_hidden_units, mlp2_hidden_units: the two streams' widths (non-empty; the last widths must be
            divisible by ``num_heads``).
        use_fs: feature selection (gates); False feeds both streams the same input.
        fs_hidden_units: hidden layers of each gate MLP.
        fs1_context, fs2_context: names of ``dnn_feature_columns`` whose embeddings (or values) are the gate's
            context; empty: a learned context vector.
        num_heads: heads of the bilinear fusion.
        l2_reg_linear, l2_reg_embedding, l2_reg_dnn, init_std, seed, dnn_dropout, dnn_activation, dnn_use_bn,
            task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.WDL`
            (``dnn_*`` apply to both streams).

    Raises:
        ValueError: an empty stream, a context feature not in ``dnn_feature_columns``, or heads not dividing
            the streams' output widths.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("age")]
        >>> m = FinalMLP([], cols, mlp1_hidden_units=(8,), mlp2_hidden_units=(6,), fs_hidden_units=(8,),
        ...              fs1_context=["user"], fs2_context=["item"], num_heads=2)
        >>> m.fs1_index.tolist()                 # the gate of stream 1 reads the user embedding
        [0, 1, 2, 3]
    """

    fs1_index: torch.Tensor   # buffers, registered in __init__
    fs2_index: torch.Tensor

    def __init__(self, linear_feature_columns, dnn_feature_columns,
                 mlp1_hidden_units: Sequence[int] = (1024, 512), mlp2_hidden_units: Sequence[int] = (1024, 512, 256),
                 use_fs: bool = True, fs_hidden_units: Sequence[int] = (1024, 512),
                 fs1_context: Sequence[str] = (), fs2_context: Sequence[str] = (), num_heads: int = 2,
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
        name = type(self).__name__
        if not mlp1_hidden_units or not mlp2_hidden_units:
            raise ValueError(f"{name}: mlp1_hidden_units and mlp2_hidden_units must not be empty (the two "
                             f"streams), got {mlp1_hidden_units!r} and {mlp2_hidden_units!r}.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: dnn_feature_columns is empty; the two streams need an input.")
        for arg, ctx in (("fs1_context", fs1_context), ("fs2_context", fs2_context)):
            if isinstance(ctx, str):
                raise TypeError(f"{name}: {arg} must be a list of feature names, e.g. [{ctx!r}], got {ctx!r}.")
        self.mlp1 = MLP(self.input_dim, tuple(mlp1_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.mlp2 = MLP(self.input_dim, tuple(mlp2_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn)
        self.use_fs = bool(use_fs)
        self.gate1 = self.gate2 = None
        learned_dim = max(self.embedding.group_dims, default=1)
        for k, ctx in ((1, list(fs1_context)), (2, list(fs2_context))):
            index = flat_input_columns(self, ctx, f"fs{k}_context") if self.use_fs else []
            self.register_buffer(f"fs{k}_index", torch.tensor(index, dtype=torch.long), persistent=False)
            if self.use_fs:
                setattr(self, f"gate{k}", FeatureGate(self.input_dim, len(index) or learned_dim,
                                                      tuple(fs_hidden_units), learned_context=not index))
        self.fusion = BilinearFusion(self.mlp1.output_dim, self.mlp2.output_dim, num_heads)
        self._finish_init()

    def _stream_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.use_fs:
            return x, x
        out: list[torch.Tensor] = []
        for gate, index in ((self.gate1, self.fs1_index), (self.gate2, self.fs2_index)):
            assert isinstance(gate, nn.Module)
            out.append(gate(x, x.index_select(1, index) if index.numel() else None))
        return out[0], out[1]

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        x1, x2 = self._stream_inputs(self._input(batch))
        return self._output(self.linear(batch) + self.fusion(self.mlp1(x1), self.mlp2(x2)))
