"""Per-task losses on logits, element-wise (reduction is done by the model's ``compute_loss``)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..exceptions import suggest

__all__ = ["LOSSES", "get_loss", "resolve_task_losses"]

ElementwiseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, y, reduction="none")


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (pred - y) ** 2


def _mae(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (pred - y).abs()


def _huber(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(pred, y, reduction="none")


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of ``(B, C)`` logits against class ids ``(B,)`` (stored as floats)."""
    return F.cross_entropy(logits, y.long(), reduction="none")


LOSSES: dict[str, tuple[ElementwiseLoss, str]] = {}
for _names, _fn, _type in [
    (("binary_crossentropy", "binary_cross_entropy", "bce", "logloss", "log_loss"), _bce, "binary"),
    (("mse", "mean_squared_error"), _mse, "regression"),
    (("mae", "mean_absolute_error"), _mae, "regression"),
    (("huber",), _huber, "regression"),
    (("categorical_crossentropy", "sparse_categorical_crossentropy", "cross_entropy", "crossentropy", "ce"),
     _cross_entropy, "multiclass"),
]:
    for _n in _names:
        LOSSES[_n] = (_fn, _type)

_DEFAULT_BY_TYPE = {"binary": "binary_crossentropy", "regression": "mse", "multiclass": "categorical_crossentropy"}


def get_loss(name: str | Callable) -> ElementwiseLoss:
    """An element-wise loss ``(pred_or_logit, y) -> (B,)`` by name, or a callable passed through."""
    if callable(name):
        return name
    key = str(name).lower()
    if key not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}.{suggest(key, LOSSES)} Valid losses: {sorted(LOSSES)}.")
    return LOSSES[key][0]


def resolve_task_losses(loss: Any, task_names: Sequence[str], task_types: Sequence[str]) -> list[ElementwiseLoss]:
    """One element-wise loss per task from ``None``/``"auto"`` (by task type), a name, a list or a dict."""
    T = len(task_names)
    if loss is None or loss == "auto":
        specs: list[Any] = [_DEFAULT_BY_TYPE[t] for t in task_types]
    elif isinstance(loss, Mapping):
        unknown = [k for k in loss if k not in task_names]
        if unknown:
            raise ValueError(f"compile: loss names unknown task(s) {unknown}{suggest(unknown[0], task_names)}; "
                             f"the model's tasks are {list(task_names)}.")
        specs = [loss.get(n, _DEFAULT_BY_TYPE[t]) for n, t in zip(task_names, task_types)]
    elif isinstance(loss, (list, tuple)):
        if len(loss) != T:
            raise ValueError(f"compile: got {len(loss)} losses for {T} tasks {list(task_names)}; pass one per task.")
        specs = list(loss)
    else:
        specs = [loss] * T
    out = []
    for n, t, s in zip(task_names, task_types, specs):
        if isinstance(s, str):
            key = s.lower()
            fn = get_loss(key)
            kind = LOSSES[key][1]
            if (kind == "multiclass") != (t == "multiclass") or (kind == "binary" and t == "regression"):
                raise ValueError(f"compile: loss {s!r} is for {kind} tasks but task {n!r} is {t!r}. Use "
                                 "loss='auto' (per task type) or a dict {task: loss}.")
            out.append(fn)
        else:
            out.append(get_loss(s))
    return out


class TaskLoss:
    """The compiled per-task loss: ``(outputs, y, sample_weight) -> (weighted total, per-task (T,))``.

    Owned by the :class:`~ctrkit.training.Trainer`; a model with a special objective receives it in its
    ``compute_loss`` hook and may use it, its ``weights`` or its ``masked`` flag.

    Args:
        fns: one elementwise loss per task (:func:`resolve_task_losses`).
        task_names: the tasks, in the order of ``y``'s columns.
        weights: ``(T,)`` loss weights.
    """

    def __init__(self, fns: Sequence[ElementwiseLoss], task_names: Sequence[str], weights: torch.Tensor) -> None:
        self.fns, self.task_names, self.weights = list(fns), list(task_names), weights
        #: True while the labels being fitted or evaluated hold NaN (missing): they are masked out of their task
        self.masked = False
        self._one_call = all(f is self.fns[0] for f in self.fns)

    def __call__(self, outputs: Mapping[str, torch.Tensor], y: torch.Tensor,
                 sample_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.weights.to(y.device)
        if not self.masked and self._one_call and all(outputs[t].dim() == 1 for t in self.task_names):
            lt = self.fns[0](torch.stack([outputs[t] for t in self.task_names], dim=1), y)  # (B, T), one call
            per_task = lt.mean(0) if sample_weight is None else (lt * sample_weight.unsqueeze(1)).mean(0)
            return (per_task * weights).sum(), per_task
        per = []
        for i, t in enumerate(self.task_names):
            yt = y[:, i]
            if self.masked:
                mask = ~torch.isnan(yt)
                lt = self.fns[i](outputs[t], torch.nan_to_num(yt))
                w = mask.to(lt.dtype) if sample_weight is None else sample_weight * mask
                per.append((lt * w).sum() / mask.sum().clamp_min(1))
            else:
                lt = self.fns[i](outputs[t], yt)
                per.append(lt.mean() if sample_weight is None else (lt * sample_weight).mean())
        per_task = torch.stack(per)
        return (per_task * weights).sum(), per_task
