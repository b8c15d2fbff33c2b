"""The metric registry: metric names, the functions behind them and which direction is better."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from ..exceptions import suggest
from .calibration import calibration_ratio, expected_calibration_error, normalized_entropy
from .classification import accuracy, log_loss, multiclass_accuracy, multiclass_log_loss, multiclass_roc_auc, roc_auc
from .grouped import gauc
from .regression import mean_absolute_error, mean_squared_error

__all__ = ["MetricSpec", "METRICS", "get_metric", "metric_direction"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., float]
    direction: str          # "max" or "min"; "" when neither (calibration_ratio: closest to 1 is best)
    task_types: tuple       # task types it applies to
    multiclass: Callable[..., float] | None = None   # (class ids (n,), probabilities (n, C)) -> float
    grouped: bool = False   # fn(y_true, y_pred, groups, sample_weight): needs compile(group_by=...)


METRICS: dict[str, MetricSpec] = {}
for _names, _fn, _dir, _types, _mc, _grouped in [
    (("auc", "roc_auc"), roc_auc, "max", ("binary", "multiclass"), multiclass_roc_auc, False),
    (("logloss", "log_loss", "binary_crossentropy", "bce"), log_loss, "min", ("binary", "multiclass"),
     multiclass_log_loss, False),
    (("mse", "mean_squared_error"), mean_squared_error, "min", ("regression", "binary"), None, False),
    (("mae", "mean_absolute_error"), mean_absolute_error, "min", ("regression",), None, False),
    (("accuracy", "acc"), accuracy, "max", ("binary", "multiclass"), multiclass_accuracy, False),
    (("gauc", "group_auc"), gauc, "max", ("binary",), None, True),
    (("ne", "normalized_entropy"), normalized_entropy, "min", ("binary",), None, False),
    (("calibration_ratio", "calibration"), calibration_ratio, "", ("binary",), None, False),
    (("ece", "expected_calibration_error"), expected_calibration_error, "min", ("binary",), None, False),
]:
    for _n in _names:
        METRICS[_n] = MetricSpec(_n, cast(Callable[..., float], _fn), _dir, _types, _mc, _grouped)


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
            return METRICS[name].direction or None   # calibration_ratio: neither up nor down
    return None
