"""Metrics computed over a whole epoch (never averaged over batches), per task.

Each metric is a function ``(y_true, y_pred, sample_weight=None) -> float`` on 1-D numpy arrays, where
``y_pred`` is a probability for binary tasks and a value for regression. For ``"multiclass"`` tasks a metric's
``multiclass`` function takes class ids ``(n,)`` and class probabilities ``(n, C)``. :func:`get_metric` looks
one up by name and tells which direction is better (EarlyStopping's ``mode="auto"`` reads it).

The sequential (next-item) models rank each user's target against all items: :func:`ranking_metrics` (HR@k,
NDCG@k) and :func:`history_mask` live in ``ctrkit.metrics.ranking``, which imports torch; they are loaded on
first use so that ``import ctrkit.metrics`` needs only numpy.

Ad-ranking metrics: :func:`gauc` (AUC per group, e.g. per user, weighted by the group's impressions; needs
``compile(group_by=...)``), :func:`normalized_entropy` (``"ne"``), :func:`calibration_ratio` and
:func:`expected_calibration_error` (``"ece"``).

Modules: ``classification``, ``calibration``, ``grouped``, ``regression``, ``ranking`` and ``specs`` (the
registry behind :func:`get_metric`).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .calibration import calibration_ratio, expected_calibration_error, normalized_entropy
from .classification import accuracy, log_loss, multiclass_accuracy, multiclass_log_loss, multiclass_roc_auc, roc_auc
from .grouped import GroupAUC, gauc, gauc_details
from .regression import mean_absolute_error, mean_squared_error
from .specs import METRICS, MetricSpec, get_metric, metric_direction

__all__ = ["roc_auc", "log_loss", "mean_squared_error", "mean_absolute_error", "accuracy", "get_metric",
           "multiclass_accuracy", "multiclass_log_loss", "multiclass_roc_auc", "MetricSpec", "METRICS",
           "metric_direction", "ranking_metrics", "history_mask", "TIES", "gauc", "gauc_details", "GroupAUC",
           "normalized_entropy", "calibration_ratio", "expected_calibration_error"]

_RANKING = ("ranking_metrics", "history_mask", "TIES")


def __getattr__(name: str) -> Any:
    if name in _RANKING:
        value = getattr(importlib.import_module("ctrkit.metrics.ranking"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ctrkit.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .ranking import TIES, history_mask, ranking_metrics  # noqa: F401
