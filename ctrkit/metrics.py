"""Metrics computed over a whole epoch (never averaged over batches), per task.

Each metric is a function ``(y_true, y_pred, sample_weight=None) -> float`` on 1-D numpy arrays, where
``y_pred`` is a probability for binary tasks and a value for regression. :func:`get_metric` looks one up by
name and tells which direction is better (EarlyStopping's ``mode="auto"`` reads it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .exceptions import suggest

__all__ = ["roc_auc", "log_loss", "mean_squared_error", "mean_absolute_error", "accuracy", "get_metric",
           "MetricSpec", "METRICS"]

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


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., float]
    direction: str          # "max" or "min"
    task_types: tuple       # task types it applies to


METRICS: dict[str, MetricSpec] = {}
for _names, _fn, _dir, _types in [
    (("auc", "roc_auc"), roc_auc, "max", ("binary",)),
    (("logloss", "log_loss", "binary_crossentropy", "bce"), log_loss, "min", ("binary",)),
    (("mse", "mean_squared_error"), mean_squared_error, "min", ("regression", "binary")),
    (("mae", "mean_absolute_error"), mean_absolute_error, "min", ("regression",)),
    (("accuracy", "acc"), accuracy, "max", ("binary",)),
]:
    for _n in _names:
        METRICS[_n] = MetricSpec(_n, _fn, _dir, _types)


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
    for name in sorted(METRICS, key=len, reverse=True):
        if key == name or key.endswith("_" + name):
            return METRICS[name].direction
    return None
