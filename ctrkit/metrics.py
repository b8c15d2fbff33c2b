"""Metrics computed over a whole epoch (never averaged over batches), per task.

Each metric is a function ``(y_true, y_pred, sample_weight=None) -> float`` on 1-D numpy arrays, where
``y_pred`` is a probability for binary tasks and a value for regression. For ``"multiclass"`` tasks a metric's
``multiclass`` function takes class ids ``(n,)`` and class probabilities ``(n, C)``. :func:`get_metric` looks
one up by name and tells which direction is better (EarlyStopping's ``mode="auto"`` reads it).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .exceptions import suggest

__all__ = ["roc_auc", "log_loss", "mean_squared_error", "mean_absolute_error", "accuracy", "get_metric",
           "multiclass_accuracy", "multiclass_log_loss", "multiclass_roc_auc", "MetricSpec", "METRICS"]

_EPS = 1e-7


def _prep(y_true, y_pred, sample_weight):
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    return y, p, w


def roc_auc(y_true, y_pred, sample_weight=None) -> float:
    """Area under the ROC curve with ties handled as scikit-learn does; NaN if only one class is present."""
    y, p, w = _prep(y_true, y_pred, sample_weight)
    if w is None:
        w = np.ones_like(y)
    order = np.argsort(-p, kind="mergesort")
    p, y, w = p[order], y[order], w[order]
    last_of_tie = np.r_[np.nonzero(np.diff(p))[0], y.size - 1]
    tps = np.cumsum(y * w)[last_of_tie]
    fps = np.cumsum((1.0 - y) * w)[last_of_tie]
    if y.size == 0 or tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def log_loss(y_true, y_pred, sample_weight=None) -> float:
    """Binary cross-entropy of probabilities (clipped to [1e-7, 1-1e-7])."""
    y, p, w = _prep(y_true, y_pred, sample_weight)
    p = np.clip(p, _EPS, 1 - _EPS)
    ll = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(ll, weights=w)) if y.size else float("nan")


def mean_squared_error(y_true, y_pred, sample_weight=None) -> float:
    y, p, w = _prep(y_true, y_pred, sample_weight)
    return float(np.average((y - p) ** 2, weights=w)) if y.size else float("nan")


def mean_absolute_error(y_true, y_pred, sample_weight=None) -> float:
    y, p, w = _prep(y_true, y_pred, sample_weight)
    return float(np.average(np.abs(y - p), weights=w)) if y.size else float("nan")


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Share of binary predictions on the right side of 0.5."""
    y, p, w = _prep(y_true, y_pred, sample_weight)
    return float(np.average((p >= 0.5) == (y >= 0.5), weights=w)) if y.size else float("nan")


def _prep_multiclass(y_true, y_prob, sample_weight):
    y = np.asarray(y_true, dtype=np.float64).reshape(-1).astype(np.int64)
    p = np.asarray(y_prob, dtype=np.float64)
    p = p.reshape(len(y), -1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    return y, p, w


def multiclass_accuracy(y_true, y_prob, sample_weight=None) -> float:
    """Share of rows whose most probable class is the true class id.

    Example:
        >>> multiclass_accuracy([0, 2, 1], [[.8, .1, .1], [.2, .3, .5], [.6, .3, .1]])
        0.6666666666666666
    """
    y, p, w = _prep_multiclass(y_true, y_prob, sample_weight)
    return float(np.average(p.argmax(axis=1) == y, weights=w)) if y.size else float("nan")


def multiclass_log_loss(y_true, y_prob, sample_weight=None) -> float:
    """Multi-class cross-entropy ``-log p[true class]`` (probabilities clipped to [1e-7, 1])."""
    y, p, w = _prep_multiclass(y_true, y_prob, sample_weight)
    if not y.size:
        return float("nan")
    ll = -np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0))
    return float(np.average(ll, weights=w))


def multiclass_roc_auc(y_true, y_prob, sample_weight=None) -> float:
    """Macro one-vs-rest AUC: the mean over classes present (with both classes in the rows) of each class's AUC.

    Example:
        >>> multiclass_roc_auc([0, 1, 2, 2], [[.7, .2, .1], [.2, .7, .1], [.1, .2, .7], [.3, .3, .4]])
        1.0
    """
    y, p, w = _prep_multiclass(y_true, y_prob, sample_weight)
    aucs = [roc_auc(y == c, p[:, c], w) for c in range(p.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., float]
    direction: str          # "max" or "min"
    task_types: tuple       # task types it applies to
    multiclass: Callable[..., float] | None = None   # (class ids (n,), probabilities (n, C)) -> float


METRICS: dict[str, MetricSpec] = {}
for _names, _fn, _dir, _types, _mc in [
    (("auc", "roc_auc"), roc_auc, "max", ("binary", "multiclass"), multiclass_roc_auc),
    (("logloss", "log_loss", "binary_crossentropy", "bce"), log_loss, "min", ("binary", "multiclass"),
     multiclass_log_loss),
    (("mse", "mean_squared_error"), mean_squared_error, "min", ("regression", "binary"), None),
    (("mae", "mean_absolute_error"), mean_absolute_error, "min", ("regression",), None),
    (("accuracy", "acc"), accuracy, "max", ("binary", "multiclass"), multiclass_accuracy),
]:
    for _n in _names:
        METRICS[_n] = MetricSpec(_n, _fn, _dir, _types, _mc)


def get_metric(name: str) -> MetricSpec:
    """Look a metric up by name; an unknown name lists the valid ones."""
    key = str(name).lower()
    if key not in METRICS:
        raise ValueError(f"Unknown metric {name!r}.{suggest(key, METRICS)} Valid metrics: {sorted(METRICS)}.")
    return METRICS[key]


def metric_direction(log_key: str) -> str | None:
    """'max' / 'min' for a log key such as ``'val_ctr_auc'`` or ``'loss'``; None if unknown."""
    key = log_key.lower()
    if key.endswith("loss"):
        return "min"
    if re.search(r"(^|_)(hr|ndcg)@\d+$", key):   # full-ranking metrics of the sequential models
        return "max"
    for name in sorted(METRICS, key=len, reverse=True):
        if key == name or key.endswith("_" + name):
            return METRICS[name].direction
    return None
