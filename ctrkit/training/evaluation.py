"""Log keys and the per-task metrics of a whole evaluation set (moved out of the trainer, which calls them).

:func:`compute_metrics` is the one place log keys are made: ``loss`` and ``<metric>`` (``auc``) for a
single-task model, ``<task>_loss`` and ``<task>_<metric>`` (``ctr_auc``) for each task of a multi-task one.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..metrics import get_metric
from ..metrics.grouped import gauc_details

__all__ = ["log_key", "compute_metrics", "check_group_by"]


def check_group_by(group_by: Any, metrics: Sequence[str]) -> str | None:
    """The group column of ``compile(group_by=...)``, checked against the compiled metrics."""
    if group_by is not None and (not isinstance(group_by, str) or not group_by):
        raise TypeError(f"compile: group_by must be a column name (str), e.g. group_by='user_id', got {group_by!r}.")
    grouped = [m for m in metrics if get_metric(m).grouped]
    if grouped and group_by is None:
        raise ValueError(f"compile: metric(s) {grouped} are computed per group; name the group column with "
                         "compile(..., group_by='user_id'). evaluate / validation then read that column from x "
                         "(a DataFrame column or dict key, a feature or not).")
    return group_by


def log_key(task_names: Sequence[str], task: str, name: str, prefix: str = "") -> str:
    """The log key of metric ``name`` for ``task``: Keras' ``auc`` / ``val_auc`` for a single-task model,
    ``ctr_auc`` / ``val_ctr_auc`` for a task of a multi-task one.

    Example:
        >>> log_key(["label"], "label", "auc", "val_"), log_key(["ctr", "cvr"], "cvr", "auc", "val_")
        ('val_auc', 'val_cvr_auc')
    """
    return f"{prefix}{task}_{name}" if len(task_names) > 1 else f"{prefix}{name}"


def compute_metrics(model: Any, loss: Any, metrics: Sequence[str], logits: torch.Tensor, y: torch.Tensor,
                    w: torch.Tensor | None, prefix: str = "", groups: Any = None) -> dict[str, float]:
    """Loss and compiled metrics per task over whole arrays (not batch averages).

    The keys are Keras': ``loss`` and ``<metric>`` (``auc``) for a single-task model,
    ``<task>_loss`` and ``<task>_<metric>`` (``ctr_auc``) for each task of a multi-task one; ``prefix``
    (``"val_"``) goes in front.

    ``groups`` (a group id per row, e.g. the user ids named by ``compile(group_by=...)``) feeds the grouped
    metrics (``gauc``); ``gauc`` also logs ``<task>_gauc_skipped``, the share of impressions in groups with one
    class. Without ``groups`` (the training logs, whose rows are shuffled and sharded) grouped metrics are left
    out. Metrics read the probabilities ``model.logits_to_predictions`` gives (what ``predict`` returns, after
    any negative-sampling correction and calibration); the loss is computed on the raw logits."""
    logs: dict[str, float] = {}
    with torch.no_grad():
        total, per_task = model.compute_loss(model.split_outputs(logits), y, w, loss=loss)
    logs[prefix + "loss"] = float(total)
    probs = {t: p.numpy() for t, p in model.split_outputs(model.logits_to_predictions(logits)).items()}
    ynp = y.numpy()
    wnp = None if w is None else w.numpy()
    gnp = None if groups is None else np.asarray(groups).reshape(-1)
    if gnp is not None and len(gnp) != len(ynp):
        raise ValueError(f"evaluate: {len(gnp)} group ids for {len(ynp)} rows; the group column must have one "
                         "value per row of x.")
    for i, (t, typ) in enumerate(zip(model.task_names, model.task_types)):
        if len(model.task_names) > 1:
            logs[log_key(model.task_names, t, "loss", prefix)] = float(per_task[i])
        mask = ~np.isnan(ynp[:, i])
        for name in metrics:
            spec = get_metric(name)
            if typ not in spec.task_types:
                continue
            fn = spec.multiclass if typ == "multiclass" else spec.fn
            assert fn is not None  # a spec lists "multiclass" in task_types only with a multiclass fn
            wt = None if wnp is None else wnp[mask]
            if spec.grouped:
                if gnp is None:
                    continue
                res = gauc_details(ynp[mask, i], probs[t][mask], gnp[mask], wt)
                logs[log_key(model.task_names, t, name, prefix)] = res.value
                logs[log_key(model.task_names, t, name + "_skipped", prefix)] = res.skipped_share
                continue
            logs[log_key(model.task_names, t, name, prefix)] = fn(ynp[mask, i], probs[t][mask], wt)
    return logs
