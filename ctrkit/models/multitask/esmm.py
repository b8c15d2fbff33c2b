"""ESMM: Entire Space Multi-task Model (pCTCVR = pCTR x pCVR, both supervised over all impressions).

Ma et al., "Entire Space Multi-Task Model: An Effective Approach for Estimating Post-Click Conversion Rate",
SIGIR 2018. https://arxiv.org/abs/1804.07931
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...layers.core import Towers
from ...registry import register_model
from ..base import BaseModel, label_prior

__all__ = ["ESMM", "ctcvr_logit"]


def ctcvr_logit(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor) -> torch.Tensor:
    """``logit(sigmoid(a) * sigmoid(b))`` computed in log space, finite and exact for all finite ``a, b``.

    With ``p = σ(a)σ(b)``: ``log p = logσ(a) + logσ(b)`` and ``log(1 - p) = log((1 - σ(a)) + σ(a)(1 - σ(b)))
    = logaddexp(logσ(-a), logσ(a) + logσ(-b))``; the logit is their difference. No term overflows, so
    BCE-with-logits on it is a numerically safe BCE on the product probability.

    Example:
        >>> a, b = torch.tensor([0.0, 30.0, -40.0, 1e3]), torch.tensor([0.0, 30.0, 5.0, 1e3])
        >>> l = ctcvr_logit(a, b)
        >>> bool(torch.isfinite(l).all()), torch.allclose(torch.sigmoid(l), torch.sigmoid(a) * torch.sigmoid(b))
        (True, True)
    """
    la, lb = F.logsigmoid(ctr_logit), F.logsigmoid(cvr_logit)
    log_not = torch.logaddexp(F.logsigmoid(-ctr_logit), la + F.logsigmoid(-cvr_logit))
    return la + lb - log_not


@register_model
class ESMM(BaseModel):
    """A CTR tower and a CVR tower over shared embeddings; the model outputs pCTR and pCTCVR = pCTR · pCVR.

    Both outputs are supervised on every impression: CTR on the click label, CTCVR on the click-and-conversion
    label (1 only when the impression was clicked *and* converted). pCVR is never supervised directly, which
    removes the sample-selection bias of training a CVR model on clicked impressions only.

    Outputs are logits, as for every model: ``{ctr: a, ctcvr: logit(σ(a)·σ(b))}`` where ``a``, ``b`` are the
    towers' logits (:func:`ctcvr_logit`). So ``predict`` returns ``[pCTR, pCTCVR]``, ``evaluate`` and the
    training metrics score the same probabilities, and the loss (:meth:`compute_loss`) is binary cross-entropy
    on the two probabilities. :meth:`predict_cvr` gives pCVR.

    Args:
        dnn_feature_columns: feature columns (shared by both towers).
        tower_dnn_hidden_units: hidden layers of each tower (the CTR and CVR towers are computed together).
        l2_reg_embedding, l2_reg_dnn, init_std, seed, device, sparse: see :class:`~ctrkit.models.BaseModel`.
        dnn_dropout, dnn_activation, dnn_use_bn: for the towers.
        task_types: must be ``("binary", "binary")``.
        task_names: names of the CTR and CTCVR outputs (and label columns), in that order.
        gpus: ignored (DeepCTR-Torch compatibility).
        cross_layers, cross_rank: GDCN's gated cross network on the input of both towers (this many layers, this
            rank; None: full rank), as in :class:`~ctrkit.MMoE`; 0 layers: none.

    Shape:
        ``forward(batch)`` → ``{ctr: (B,), ctcvr: (B,)}`` logits; ``forward(batch, return_cvr=True)`` also
        returns the CVR logits ``(B,)``.

    Example:
        >>> from ctrkit import SparseFeat, DenseFeat
        >>> cols = [SparseFeat("user", 10, 4), DenseFeat("price")]
        >>> m = ESMM(cols, tower_dnn_hidden_units=(8,))
        >>> x = {"user": [1, 2, 3], "price": [0.1, 0.5, 0.9]}
        >>> p = m.predict(x)                   # columns: pCTR, pCTCVR
        >>> bool(np.allclose(p[:, 1], p[:, 0] * m.predict_cvr(x), rtol=1e-5))
        True
    """

    conformance_tags = {"binary_only": True, "nested_tasks": True}   # CTR, then CTCVR within it

    multitask = True

    def __init__(self, dnn_feature_columns, tower_dnn_hidden_units: Sequence[int] = (256, 128),
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01, seed: int = 1024,
                 dnn_dropout: float = 0.0, dnn_activation: str = "relu", dnn_use_bn: bool = False,
                 task_types: Sequence[str] = ("binary", "binary"), task_names: Sequence[str] = ("ctr", "ctcvr"),
                 device: str = "cpu", sparse: bool = False, embedding_backend: str = "native", gpus=None,
                 cross_layers: int = 0, cross_rank: int | None = None) -> None:
        super().__init__(dnn_feature_columns, task_names, task_types, l2_reg_embedding=l2_reg_embedding,
                         l2_reg_dnn=l2_reg_dnn, init_std=init_std, seed=seed, device=device, sparse=sparse,
                         embedding_backend=embedding_backend,
                         config=locals())
        name = type(self).__name__
        if len(self.task_names) != 2:
            raise ValueError(f"{name}: needs exactly two tasks (CTR, CTCVR), got task_names={self.task_names}.")
        if any(t != "binary" for t in self.task_types):
            raise ValueError(f"{name}: both tasks must be 'binary' (click, click-and-conversion), got task_types="
                             f"{self.task_types}.")
        if self.input_dim == 0:
            raise ValueError(f"{name}: the feature columns give an input of width 0.")
        self._add_input_cross(cross_layers, cross_rank)
        self.towers = Towers(["ctr", "cvr"], self.input_dim, tuple(tower_dnn_hidden_units), dnn_activation,
                             dnn_dropout, dnn_use_bn)
        self._finish_init()

    def forward(self, batch, return_cvr: bool = False):
        t = self.towers(self._input(batch))
        ctr, cvr = t["ctr"], t["cvr"]
        out = {self.task_names[0]: ctr, self.task_names[1]: ctcvr_logit(ctr, cvr)}
        return (out, cvr) if return_cvr else out

    def check_targets(self, y: torch.Tensor, where: str) -> None:
        """Warn about labels ESMM cannot fit: a conversion (CTCVR = 1) on an impression without a click (CTR = 0),
        since pCTCVR = pCTR · pCVR is never above pCTR. A warning, not an error: DeepCTR-Torch trains on such
        labels, and a few logging glitches should not stop a run; the message gives the count and the fix."""
        ctr, ctcvr = self.task_names
        bad = int(((y[:, 1] == 1) & (y[:, 0] == 0)).sum())
        if bad:
            warnings.warn(
                f"{where}: {bad} rows have {ctcvr!r} = 1 but {ctr!r} = 0 (a conversion without a click); ESMM's "
                f"{ctcvr!r} label is click-and-conversion, so it should be 0 wherever {ctr!r} is 0, and ESMM "
                f"cannot fit these rows (pCTCVR <= pCTR). Set y[{ctcvr!r}] = y[{ctr!r}] * conversion, or drop "
                "those rows.", UserWarning, stacklevel=5)

    def output_biases(self) -> dict[str, torch.Tensor]:
        """The output biases of the two towers, ``{"ctr": ..., "cvr": ...}`` (CTCVR is their product)."""
        return self.towers.output_biases()

    @torch.no_grad()
    def init_output_bias(self, y, sample_weight=None) -> dict[str, list[float]]:
        """The CTR tower starts at the click rate's log-odds and the CVR tower at that of
        ``P(conversion | click) = P(click and conversion) / P(click)``, so pCTCVR starts at its own rate."""
        p = []
        for i in range(2):
            b = label_prior(y[:, i], "binary", 1, sample_weight)
            if b is None:
                return {}
            p.append(float(torch.sigmoid(b)))
        rates = {"ctr": p[0], "cvr": min(max(p[1] / p[0], 1e-4), 1 - 1e-4)}
        slots = self.output_biases()
        done = {}
        for t, r in rates.items():
            slots[t].fill_(math.log(r / (1 - r)))
            done[t] = [float(slots[t][0])]
        return done

    def compile(self, optimizer="adam", loss=None, metrics=None, loss_weights=None, lr=None,
                grad_clip_norm=None, task_balancer=None, init_output_bias=True, group_by=None, sharding=None,
                embedding_optimizer=None, embedding_lr=None) -> None:
        """As :meth:`BaseModel.compile`; ``loss`` must be None / ``"auto"`` / binary cross-entropy: the ESMM
        objective ``L = w_ctr · BCE(y_click, pCTR) + w_ctcvr · BCE(y_click_and_conversion, pCTR · pCVR)``, both over
        every impression, is that loss on the two outputs of :meth:`forward` (the product's BCE is
        BCE-with-logits on :func:`ctcvr_logit`, exact and stable)."""
        names = loss.values() if isinstance(loss, Mapping) else loss if isinstance(loss, (list, tuple)) else [loss]
        bce = (None, "auto", "binary_crossentropy", "binary_cross_entropy", "bce", "logloss", "log_loss")
        if any(not (n is None or isinstance(n, str)) or (n.lower() if isinstance(n, str) else n) not in bce
               for n in names):
            raise ValueError(f"{type(self).__name__}.compile: the ESMM loss is binary cross-entropy on pCTR and "
                             f"pCTCVR; got loss={loss!r}. Leave loss=None.")
        super().compile(optimizer, loss, metrics, loss_weights, lr, grad_clip_norm, task_balancer,
                        init_output_bias, group_by, sharding, embedding_optimizer, embedding_lr)

    def predict_cvr(self, x, batch_size: int = 4096) -> np.ndarray:
        """pCVR = P(conversion | click) for every row: ``(n,)``."""
        return self._map_batches(x, lambda b: torch.sigmoid(self.forward(b, return_cvr=True)[1]), "predict_cvr",
                                 batch_size).numpy()
