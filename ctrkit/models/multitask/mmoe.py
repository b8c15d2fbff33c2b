"""MMoE: Multi-gate Mixture-of-Experts.

Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.
https://doi.org/10.1145/3219819.3220007
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ...layers.core import Towers
from ...layers.fm import FM
from ...layers.linear import LinearLogit
from ...layers.moe import MixtureOfExperts
from ...layers.projection import as_tensor
from ...registry import register_model
from ..base import BaseModel

__all__ = ["MMoE", "MMOE"]


@register_model
class MMoE(BaseModel):
    """Experts shared by all tasks, one softmax gate per task (a linear gate by default, as in the paper).

    Args:
        dnn_feature_columns: feature columns (an encoder's carry the encoder).
        num_experts: number of experts.
        expert_dnn_hidden_units: layer widths of each expert.
        gate_dnn_hidden_units: hidden layers of each gate before its softmax; ``()`` is the paper's linear gate.
        tower_dnn_hidden_units: hidden layers of each task tower.
        l2_reg_embedding, l2_reg_dnn, init_std, seed, device, sparse: see :class:`~ctrkit.models.BaseModel`.
        dnn_dropout, dnn_activation, dnn_use_bn: for experts and towers.
        task_types: ``"binary"`` / ``"regression"`` / ``"multiclass"`` per task; task_names: one name per task.
        num_classes: classes of each multiclass task (an int, a list in task order or ``{task: C}``).
        gpus: accepted for DeepCTR-Torch compatibility and ignored; use ``torchrun`` (DDP) for several GPUs.
        input_bn: enhanced MMoE: BatchNorm over the concatenated input (embeddings + dense) before the experts.
        input_dropout: enhanced MMoE: dropout rate on that input (after the BatchNorm when both are on).
        residual_experts: enhanced MMoE: each expert adds a linear projection of its input to its output.
        attention_gates: enhanced MMoE: each task's gate is a learned query attending over the expert outputs
            (``softmax_i(q_t · W_k e_i / sqrt(d))``) instead of a softmax over a linear map of the input;
            needs ``gate_dnn_hidden_units=()``.
        attention_dim: ``d`` of the attention gates (default: the expert output width).
        use_fm: add DeepFM's wide part to every task's logit: a linear term over the features (weights per task)
            and the factorization machine's pairwise interactions of the embeddings (``sum_{i<j} <e_i, e_j>`` per
            dimension group, scaled per task). The experts see sums of products only through their MLPs; this
            gives the dot products of user and item embeddings directly (binary and regression tasks).
        cross_layers: put GDCN's gated cross network (:class:`~ctrkit.layers.cross.GatedCrossNet`, this many
            layers) on the input before the experts, so they see explicit feature crosses (on census it raised
            validation AUC on both task groups, by up to 0.001, at about twice the training time); 0: off. It
            comes before the BatchNorm and dropout of ``input_bn`` / ``input_dropout``. Shared-Bottom, PLE,
            ESMM and DNN offer the same two arguments.
        cross_rank: the rank of each cross layer's kernels (DCN-V2's low-rank factoring, ``3 d r`` weights a
            layer instead of ``2 d²``); None: GDCN's full rank.

    The enhanced options are all off by default (the paper's MMoE); deeper towers are
    ``tower_dnn_hidden_units`` with several layers. Experts (and residual projections, and linear gates) stay
    one GEMM.

    Shape:
        ``forward(batch)`` → ``{task: logits (B,)}``; ``forward(batch, return_gates=True)`` also returns the
        gate weights ``(B, G, E)``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), DenseFeat("age")]
        >>> m = MMoE(cols, num_experts=3, expert_dnn_hidden_units=(8,), task_names=["ctr", "cvr"])
        >>> m.count_params() > 0
        True
    """

    multitask = True
    supports_multiclass = True
    _num_gates_per_task = True

    def __init__(self, dnn_feature_columns, num_experts: int = 4, expert_dnn_hidden_units: Sequence[int] = (256, 128),
                 gate_dnn_hidden_units: Sequence[int] = (), tower_dnn_hidden_units: Sequence[int] = (64,),
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task_types: Sequence[str] = ("binary", "binary"), task_names: Sequence[str] = ("ctr", "ctcvr"),
                 device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", gpus=None, num_classes=None, input_bn: bool = False,
                 input_dropout: float = 0.0, residual_experts: bool = False, attention_gates: bool = False,
                 attention_dim: int | None = None, use_fm: bool = False, cross_layers: int = 0,
                 cross_rank: int | None = None) -> None:
        super().__init__(dnn_feature_columns, task_names, task_types, l2_reg_embedding=l2_reg_embedding,
                         l2_reg_dnn=l2_reg_dnn, init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend,
                         config=locals(), num_classes=num_classes)
        name = type(self).__name__
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
            raise ValueError(f"{name}: num_experts must be an int >= 1, got {num_experts!r}.")
        if not expert_dnn_hidden_units:
            raise ValueError(f"{name}: expert_dnn_hidden_units must not be empty, got {expert_dnn_hidden_units!r}.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: the feature columns give an input of width 0.")
        if not isinstance(input_dropout, (int, float)) or not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"{name}: input_dropout must be a float in [0, 1), got {input_dropout!r}.")
        num_gates = len(self.task_names) if self._num_gates_per_task else 1
        processor: list[nn.Module] = [nn.BatchNorm1d(self.input_dim)] if input_bn else []
        if input_dropout > 0:
            processor.append(nn.Dropout(input_dropout))
        self._add_input_cross(cross_layers, cross_rank)
        self.feature_processor = nn.Sequential(*processor) if processor else nn.Identity()
        self._process_always = bool(input_bn)   # BatchNorm: in eval mode too
        self._plain_input = not processor
        self.moe = MixtureOfExperts(self.input_dim, num_experts, num_gates, tuple(expert_dnn_hidden_units),
                                    tuple(gate_dnn_hidden_units), dnn_activation, dnn_dropout, dnn_use_bn,
                                    residual=bool(residual_experts), attention_gates=bool(attention_gates),
                                    attention_dim=attention_dim)
        self.towers = Towers(self.task_names, self.moe.output_dim, tuple(tower_dnn_hidden_units), dnn_activation,
                             dnn_dropout, dnn_use_bn, widths=self.task_widths)
        self.use_fm = bool(use_fm)
        if self.use_fm:
            if any(w != 1 for w in self.task_widths):
                raise ValueError(f"{name}: use_fm adds one wide logit per task; it does not apply to multiclass "
                                 "tasks. Use it with binary / regression tasks only.")
            self.linear = LinearLogit(self.feature_columns, init_std=init_std, units=len(self.task_names))
            self.fm = FM()
            self.fm_scale = nn.Parameter(torch.ones(len(self.task_names)))
        self._finish_init()
        if self.use_fm:   # the linear part's id weights are not DNN weights (l2_reg_dnn leaves them alone)
            self._dnn_weights = [p for n, p in self.named_parameters()
                                 if not n.startswith(("embedding.", "linear.")) and p.dim() >= 2]

    def forward(self, batch, return_gates: bool = False):
        x = self.inputs(batch)
        if self._process_always or (self.training and not self._plain_input):  # (dropout alone: off in eval)
            x = self.feature_processor(as_tensor(x))
        mix, gates = self.moe(x)                                   # (G, B, H), (B, G, E)
        out = self.towers(mix if mix.shape[0] > 1 else mix[0])
        if self.use_fm:
            wide = self.linear(batch)                                  # (B, T); (B,) for one task
            wide = wide.unsqueeze(1) if wide.dim() == 1 else wide
            pairs = [self.fm(g) for g in self.embedding(batch) if g.shape[1] > 1]
            inter = torch.stack(pairs).sum(dim=0) if pairs else None    # (B,)
            for i, t in enumerate(self.task_names):
                extra = wide[:, i] if inter is None else wide[:, i] + self.fm_scale[i] * inter
                out[t] = out[t] + extra.reshape(out[t].shape)
        return (out, gates) if return_gates else out

    def gate_weights(self, x, batch_size: int = 4096) -> dict[str, np.ndarray]:
        """Gate weights of every task for every row: ``{task: (n, num_experts)}`` (OMoE: the one gate)."""
        g = self._map_batches(x, lambda b: self.forward(b, return_gates=True)[1], "gate_weights",
                              batch_size).numpy()  # (n, G, E)
        return {t: g[:, i if g.shape[1] > 1 else 0] for i, t in enumerate(self.task_names)}


MMOE = MMoE  # DeepCTR-Torch's spelling
