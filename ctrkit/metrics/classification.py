"""Classification metrics on whole arrays: ROC AUC, log loss and accuracy, binary and multi-class.

Binary metrics take ``(y_true, y_pred, sample_weight=None)`` with ``y_pred`` a probability (1-D arrays);
multi-class ones take class ids ``(n,)`` and class probabilities ``(n, C)``.
"""
from __future__ import annotations

import numpy as np

from ._arrays import _EPS, _prep

__all__ = ["roc_auc", "log_loss", "accuracy", "multiclass_accuracy", "multiclass_log_loss",
           "multiclass_roc_auc"]


def roc_auc(y_true, y_pred, sample_weight=None) -> float:
    """Area under the ROC curve with ties handled as scikit-learn does; NaN if only one class is present."""
    y, p, w = _prep(y_true, y_pred, sample_weight)
    if y.size == 0:  # no labelled row (e.g. every label of the task missing)
        return float("nan")
    if w is None:
        w = np.ones_like(y)
    order = np.argsort(-p, kind="mergesort")
    p, y, w = p[order], y[order], w[order]
    last_of_tie = np.r_[np.nonzero(np.diff(p))[0], y.size - 1]
    tps = np.cumsum(y * w)[last_of_tie]
    fps = np.cumsum((1.0 - y) * w)[last_of_tie]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    # np.trapz is the numpy < 2.0 name; the installed numpy 2 stubs no longer declare it
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))  # type: ignore[attr-defined]


def log_loss(y_true, y_pred, sample_weight=None) -> float:
    """Binary cross-entropy of probabilities (clipped to [1e-7, 1-1e-7])."""
    y, p, w = _prep(y_true, y_pred, sample_weight)
    p = np.clip(p, _EPS, 1 - _EPS)
    ll = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(ll, weights=w)) if y.size else float("nan")


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
    """Macro one-vs-rest AUC: the mean over classes present (with both classes in the rows) of each class's
    AUC.

    Example:
        >>> multiclass_roc_auc([0, 1, 2, 2], [[.7, .2, .1], [.2, .7, .1], [.1, .2, .7], [.3, .3, .4]])
        1.0
    """
    y, p, w = _prep_multiclass(y_true, y_prob, sample_weight)
    aucs = [roc_auc(y == c, p[:, c], w) for c in range(p.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")
