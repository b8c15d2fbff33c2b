"""MLR: mixed logistic regression (LS-PLM), a softmax-gated mixture of logistic regressions over regions.

Gai et al., "Learning Piece-wise Linear Models from Large Scale Data for Ad Click Prediction", 2017.
https://arxiv.org/abs/1704.05194
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...data.inputs import TensorData
from ...features import check_feature_columns
from ...layers.linear import LinearLogit
from ...registry import register_model
from ...training.tasks import label_prior
from .._tasks import single_task
from .lr import LinearDeepModel

__all__ = ["MLR"]


def _union(*lists) -> list:
    seen: dict = {}
    for cols in lists:
        for f in cols or []:
            seen.setdefault(f.name, f)
    return list(seen.values())


@register_model
class MLR(LinearDeepModel):
    """``p(x) = Σ_k softmax(u(x))_k · σ(w_k(x))`` (times ``σ(bias(x))`` with ``bias_feature_columns``): a
    region model ``u`` (``region_num`` linear scores) softly assigns each row to regions, and each region has
    its own logistic regression ``w_k`` (the base model). The mixture is piece-wise linear in the features.

    ``forward`` returns the logit of ``p`` (``log p - log(1 - p)``, computed with log-sum-exp, so ``predict``'s
    sigmoid gives ``p`` back); for ``task="regression"`` it returns ``Σ_k softmax(u)_k · w_k``. All ``region_num``
    linear models of a kind are one width-``region_num`` table lookup. The base learners use the base model
    (DeepCTR-Torch 0.3.0's ``get_learner_score`` reuses the region model instead).

    Args:
        region_feature_columns: the features of the region (gating) model.
        base_feature_columns: the features of the base learners (default: the region ones).
        bias_feature_columns: the features of an optional bias model that scales ``p`` by ``σ(bias(x))``.
        region_num: the number of regions (> 1).
        l2_reg_linear: L2 on the linear weights of all parts (looked-up id weights per batch, dense weights).
        init_std, seed, task, task_name, task_names, task_types, device, sparse, gpus: as in :class:`~ctrkit.LR`.

    Raises:
        ValueError: ``region_num <= 1``.

    Shape:
        ``forward(batch)`` → ``{task_name: logits (B,)}``; ``forward(batch, return_regions=True)`` also returns
        the region weights ``(B, region_num)``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> m = MLR([SparseFeat("user", 10, 4), DenseFeat("age")], region_num=3)
        >>> m.count_params()                  # region and base: 3 x (10 id weights + 1 dense + bias)
        72
    """

    def __init__(self, region_feature_columns, base_feature_columns=None, bias_feature_columns=None,
                 region_num: int = 4, l2_reg_linear: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 task: str = "binary", task_name: str = "label", device: str = "cpu", sparse: bool = False,
                 embedding_backend: str = "native",
                 gpus=None, *,
                 task_names: list[str] | None = None, task_types: list[str] | None = None) -> None:
        config = dict(locals())   # the constructor's arguments, before any local of its own
        name = type(self).__name__
        if isinstance(region_num, bool) or not isinstance(region_num, int) or region_num <= 1:
            raise ValueError(f"{name}: region_num must be an int > 1, got {region_num!r}.")
        region = check_feature_columns(list(region_feature_columns or []), where=f"{name}: region_feature_columns")
        base = list(base_feature_columns or []) or region
        bias = list(bias_feature_columns or [])
        super().__init__(_union(region, base, bias), [],
                         *single_task(name, task, task_name, task_names, task_types),
                         l2_reg_linear=l2_reg_linear, l2_reg_embedding=0.0, l2_reg_dnn=0.0, init_std=init_std,
                         seed=seed, device=device, sparse=sparse, embedding_backend=embedding_backend, config=config)
        if self.encoder is None:   # the columns' encoder (a plain list of the union does not carry it)
            self.encoder = next((getattr(c, "encoder") for c in (region_feature_columns, base_feature_columns,
                                                                 bias_feature_columns)
                                 if getattr(c, "encoder", None) is not None), None)
        self.region_num = region_num
        cols = self.feature_columns
        # the plain width-1 linear part of the base class is replaced by the three parts
        self.linear = LinearLogit(region, cols, init_std=init_std, units=region_num, use_bias=True)
        self.base = LinearLogit(base, cols, init_std=init_std, units=region_num, use_bias=True)
        self.bias_model = LinearLogit(bias, cols, init_std=init_std, use_bias=False) if bias else None
        self._finish_init()

    def _finish_init(self) -> None:
        super()._finish_init()
        self._dnn_weights = []
        for part in (self.base, self.bias_model):
            if part is not None and part.embedding is not None:
                part.embedding.keep_last = self.l2_reg_linear > 0

    def regularization_loss(self):
        reg = super().regularization_loss()
        if self.l2_reg_linear > 0:
            for part in (self.base, self.bias_model):
                pen = part.l2_penalty() if part is not None else None
                if pen is not None:
                    reg = self.l2_reg_linear * pen if reg is None else reg + self.l2_reg_linear * pen
        return reg

    def output_biases(self) -> dict:
        return {}   # one bias per base learner; init_output_bias sets them all

    @torch.no_grad()
    def init_output_bias(self, y: torch.Tensor, sample_weight: torch.Tensor | None = None) -> dict:
        """Every base learner's bias starts at the label prior (log-odds, or the mean for regression), so
        the mixture starts at the base rate whatever the region weights; without a bias model only."""
        if self.bias_model is not None:
            return {}
        v = label_prior(y[:, 0], self.task_types[0], 1, sample_weight)
        if v is None:
            return {}
        assert self.base.bias is not None
        self.base.bias.fill_(float(v.reshape(-1)[0]))
        return {self.task_names[0]: [float(v.reshape(-1)[0])]}

    def forward(self, batch: TensorData, return_regions: bool = False):
        log_pi = F.log_softmax(self.linear(batch), dim=1)                 # (B, K) region log-weights
        w = self.base(batch)                                               # (B, K) base learners' logits
        if self.task_types[0] == "regression":
            logit = (log_pi.exp() * w).sum(dim=1)
        else:
            log_p = torch.logsumexp(log_pi + F.logsigmoid(w), dim=1)      # log p
            log_q = torch.logsumexp(log_pi + F.logsigmoid(-w), dim=1)     # log (1 - p)
            if self.bias_model is not None:
                c = self.bias_model(batch)
                log_p = log_p + F.logsigmoid(c)                            # p' = p σ(c)
                log_q = torch.logaddexp(F.logsigmoid(-c), F.logsigmoid(c) + log_q)   # 1 - p' = σ(-c) + σ(c)(1-p)
            logit = log_p - log_q
        out = self._output(logit)
        return (out, log_pi.exp()) if return_regions else out
