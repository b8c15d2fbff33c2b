"""Calibration metrics of binary probabilities on whole arrays: normalized entropy, calibration ratio, ECE.

All take ``(y_true, y_pred, sample_weight=None)`` with ``y_pred`` a probability; labels are 0 / 1 (a soft label
in [0, 1] counts as that share of a positive). Predictions are clipped to ``[1e-7, 1 - 1e-7]`` in the
log-based ones, as :func:`~ctrkit.metrics.log_loss` does.
"""
from __future__ import annotations

import numpy as np

from ._arrays import _prep
from .classification import log_loss

__all__ = ["normalized_entropy", "calibration_ratio", "expected_calibration_error"]


def normalized_entropy(y_true, y_pred, sample_weight=None) -> float:
    """Normalized entropy (He et al., 2014): the log loss divided by the entropy of the base rate
    ``b = mean(y)``, i.e. the log loss relative to always predicting ``b``. Lower is better; 1 is no better
    than the base rate. NaN when ``b`` is 0 or 1 (no entropy to normalise by) or there are no rows.

    Example:
        >>> round(normalized_entropy([0, 1, 0, 0], [0.25, 0.25, 0.25, 0.25]), 12)
        1.0
    """
    y, _, w = _prep(y_true, y_pred, sample_weight)
    if not y.size:
        return float("nan")
    b = float(np.average(y, weights=w))
    if not 0.0 < b < 1.0:
        return float("nan")
    entropy = -(b * np.log(b) + (1.0 - b) * np.log1p(-b))
    return log_loss(y_true, y_pred, sample_weight) / float(entropy)


def calibration_ratio(y_true, y_pred, sample_weight=None) -> float:
    """Sum of predictions over sum of labels (both weighted): 1 when the model predicts as many clicks as there
    are, > 1 when it over-predicts. NaN without a positive label.

    Example:
        >>> calibration_ratio([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5])
        1.0
    """
    y, p, w = _prep(y_true, y_pred, sample_weight)
    w = np.ones_like(y) if w is None else w
    positives = float(np.sum(w * y))
    return float(np.sum(w * p)) / positives if positives > 0 else float("nan")


def expected_calibration_error(y_true, y_pred, sample_weight=None, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins of the predicted probability on [0, 1]:
    ``sum_b (n_b / n) * |mean(p in b) - mean(y in b)|`` (weighted counts with ``sample_weight``). A prediction of
    exactly 1 goes into the last bin. Lower is better; 0 is perfectly calibrated per bin.

    Example:
        >>> round(expected_calibration_error([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6], n_bins=2), 12)
        0.25
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"expected_calibration_error: n_bins must be an int >= 1, got {n_bins!r}.")
    y, p, w = _prep(y_true, y_pred, sample_weight)
    if not y.size:
        return float("nan")
    w = np.ones_like(y) if w is None else w
    b = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)
    gap = np.bincount(b, weights=w * (p - y), minlength=n_bins)
    return float(np.abs(gap).sum() / w.sum())
