"""Task specs shared by every layer above the features: task types, classes per task, label priors, devices."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..exceptions import DataValidationError

__all__ = ["TASK_TYPES", "check_tasks", "resolve_device", "resolve_num_classes", "check_class_ids", "label_prior"]

TASK_TYPES = ("binary", "regression", "multiclass")


def resolve_device(device: Any) -> torch.device:
    """``"auto"`` picks CUDA when available (``cuda:LOCAL_RANK`` under torchrun); otherwise the given device."""
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local)) if local and local.isdigit() else torch.device("cuda")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here. Use device='cpu' or "
                         "device='auto'.")
    return dev


def resolve_num_classes(name: str, num_classes: Any, task_names: list[str], task_types: list[str]
                         ) -> dict[str, int]:
    """``{task: C}`` for the multiclass tasks, from an int, a list in task order or a dict."""
    mc = [t for t, typ in zip(task_names, task_types) if typ == "multiclass"]
    if not mc:
        if num_classes is not None:
            raise ValueError(f"{name}: num_classes={num_classes!r} was given but no task is 'multiclass' "
                             f"(task_types={task_types}).")
        return {}
    if num_classes is None:
        raise ValueError(f"{name}: task(s) {mc} are 'multiclass'; pass num_classes, e.g. num_classes={{{mc[0]!r}: 5}}"
                         " (or one int for every multiclass task).")
    out: dict[str, Any]
    if isinstance(num_classes, Mapping):
        unknown = [k for k in num_classes if k not in mc]
        if unknown:
            raise ValueError(f"{name}: num_classes names {unknown}, which are not multiclass tasks; the multiclass "
                             f"tasks are {mc}.")
        out = {t: num_classes.get(t) for t in mc}
    elif isinstance(num_classes, (list, tuple)):
        if len(num_classes) != len(task_names):
            raise ValueError(f"{name}: num_classes as a list needs one entry per task ({len(task_names)}), got "
                             f"{len(num_classes)}; or pass {{task: C}}.")
        out = {t: c for t, c, typ in zip(task_names, num_classes, task_types) if typ == "multiclass"}
    else:
        out = {t: num_classes for t in mc}
    for t, c in out.items():
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 2:
            raise ValueError(f"{name}: num_classes for multiclass task {t!r} must be an int >= 2, got {c!r}.")
    return {t: int(c) for t, c in out.items()}


def check_class_ids(y: torch.Tensor, num_classes: int, where: str) -> None:
    """Multiclass labels must be integer class ids in ``[0, num_classes)`` (NaN: missing)."""
    v = y[~torch.isnan(y)]
    bad = v[(v < 0) | (v >= num_classes) | (v != torch.round(v))]
    if bad.numel():
        raise DataValidationError(f"{where}: multiclass labels must be integer class ids in [0, {num_classes}), got "
                                  f"{sorted(set(bad[:6].tolist()))}. Encode the classes as 0..{num_classes - 1} "
                                  "(e.g. with pandas .cat.codes) or raise num_classes.")


def label_prior(y: torch.Tensor, task_type: str, num_classes: int = 1,
                sample_weight: torch.Tensor | None = None) -> torch.Tensor | None:
    """The output bias that predicts a task's label prior: log-odds of the mean for ``"binary"`` (the rate
    clipped to [1e-4, 1 - 1e-4]), the mean for ``"regression"``, centred log class frequencies (each at least
    1e-4) for ``"multiclass"``. NaN labels are skipped; None when no label (or no weight) is left."""
    y = torch.as_tensor(y).reshape(-1).double()
    keep = ~torch.isnan(y)
    w = None if sample_weight is None else torch.as_tensor(sample_weight).reshape(-1).double()[keep]
    y = y[keep]
    if y.numel() == 0 or (w is not None and not float(w.sum()) > 0):
        return None

    def mean(v: torch.Tensor) -> torch.Tensor:
        return v.mean(0) if w is None else (v * w.reshape(-1, *[1] * (v.dim() - 1))).sum(0) / w.sum()

    if task_type == "binary":
        return torch.logit(mean(y).clamp(1e-4, 1 - 1e-4)).reshape(1).float()
    if task_type == "regression":
        return mean(y).reshape(1).float()
    freq = mean(torch.nn.functional.one_hot(y.long(), int(num_classes)).double())
    logf = freq.clamp_min(1e-4).log()
    return (logf - logf.mean()).float()


def check_tasks(name: str, task_names: Any, task_types: Any, num_classes: Any = None, multitask: bool = False,
                supports_multiclass: bool = False) -> tuple[list[str], list[str], dict[str, int]]:
    """A model's tasks checked: ``(task_names, task_types, {multiclass task: C})``; errors name ``name``."""
    if isinstance(task_names, str) or isinstance(task_types, str):
        raise TypeError(f"{name}: task_names and task_types must be sequences, e.g. task_names=['ctr'], "
                        f"got {task_names!r} / {task_types!r}.")
    task_names, task_types = list(task_names), list(task_types)
    if len(task_names) != len(task_types):
        raise ValueError(f"{name}: len(task_types)={len(task_types)} does not match "
                         f"len(task_names)={len(task_names)}.")
    if not task_names:
        raise ValueError(f"{name}: at least one task is needed.")
    if len(set(task_names)) != len(task_names):
        raise ValueError(f"{name}: task_names must be unique, got {task_names}.")
    if multitask and len(task_names) < 2:
        warnings.warn(f"{name} is a multi-task model used with one task.", stacklevel=4)
    for t in task_types:
        if t not in TASK_TYPES:
            raise ValueError(f"{name}: task_types entries must be one of {list(TASK_TYPES)}, got {t!r}.")
    if "multiclass" in task_types and not supports_multiclass:
        raise ValueError(f"{name}: 'multiclass' tasks are not supported by this model (its output is one logit "
                         "per task). Use DNN, SharedBottom, MMoE, OMoE or PLE for multiclass tasks.")
    return task_names, task_types, resolve_num_classes(name, num_classes, task_names, task_types)
