"""Input normalisation shared by the metrics: 1-D float64 arrays of labels, predictions and weights."""
from __future__ import annotations

import numpy as np

_EPS = 1e-7


def _prep(y_true, y_pred, sample_weight):
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    return y, p, w
