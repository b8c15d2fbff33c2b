"""AFM: a factorization machine whose pairwise interactions are weighted by an attention network.

Xiao et al., "Attentional Factorization Machines: Learning the Weight of Feature Interactions via Attention
Networks", IJCAI 2017. https://arxiv.org/abs/1708.04617
"""
from __future__ import annotations

import torch

from ...data.inputs import TensorData
from ...layers.attention import AFMLayer
from ...layers.fm import FM as FMLayer
from ...registry import register_model
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["AFM"]


@register_model
class AFM(LinearDeepModel):
    """``logit = linear + p·sum_{i<j} a_ij (e_i ⊙ e_j)`` (``use_attention=False``: ``linear + FM``).

    Args:
        linear_feature_columns: features of the linear part.
        dnn_feature_columns: features of the pairwise part (sparse / var-length, one embedding_dim; dense
            features are ignored there, as in DeepCTR: give them to the linear part).
        use_attention: attention-weighted pairs (False: the plain FM term).
        attention_factor: hidden width of the attention network.
        l2_reg_att: L2 on the weight matrices of the attention layer (``W``, ``h`` and the projection ``p``).
        afm_dropout: dropout on the pooled interaction vector.
        l2_reg_linear, l2_reg_embedding, init_std, seed, task, task_name, task_names, task_types, device,
            sparse, gpus: as in :class:`~ctrkit.WDL`.

    Raises:
        ValueError: without a sparse feature in ``dnn_feature_columns``, or with unequal embedding dims.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``.

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat(c, 10, 4) for c in "abc"]
        >>> AFM(cols, cols, attention_factor=8).afm.attention.out_features
        8
    """

    conformance_tags = {"needs_sparse": True}   # the attention is over pairs of field embeddings

    def __init__(self, linear_feature_columns, dnn_feature_columns, use_attention: bool = True,
                 attention_factor: int = 8, l2_reg_linear: float = 0.0, l2_reg_embedding: float = 0.0,
                 l2_reg_att: float = 0.0, afm_dropout: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 task: str = "binary", task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native",
                 gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        super().__init__(linear_feature_columns, dnn_feature_columns,
                         *single_task(type(self).__name__, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=l2_reg_embedding, l2_reg_dnn=0.0,
                         init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend, config=locals())
        self._require_sparse("the pairwise part interacts their embeddings")
        dim = self._require_equal_dims("the pairwise interactions")
        self.use_attention = bool(use_attention)
        self.afm = AFMLayer(len(self._field_features()), dim, attention_factor, afm_dropout) \
            if self.use_attention else None
        self.fm = None if self.use_attention else FMLayer()
        if self.afm is not None:
            self._l2_modules = {"afm": float(l2_reg_att)}
        self._finish_init()

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        emb = self.embedding(self.deep_view(batch))[0]
        pair = self.afm(emb) if self.afm is not None else self.fm(emb)  # type: ignore[misc]  # one is set
        return self._output(self.linear(batch) + pair)
