"""Regression metrics on whole arrays: mean squared and mean absolute error."""
from __future__ import annotations

import numpy as np

from ._arrays import _prep

__all__ = ["mean_squared_error", "mean_absolute_error"]


def mean_squared_error(y_true, y_pred, sample_weight=None) -> float:
    y, p, w = _prep(y_true, y_pred, sample_weight)
    return float(np.average((y - p) ** 2, weights=w)) if y.size else float("nan")


def mean_absolute_error(y_true, y_pred, sample_weight=None) -> float:
    y, p, w = _prep(y_true, y_pred, sample_weight)
    return float(np.average(np.abs(y - p), weights=w)) if y.size else float("nan")
