"""The training loop. ``model.fit/evaluate/predict`` are a thin facade over :class:`Trainer`.

The loop never asks which model it runs: it calls ``model(batch)`` for a dict of logits per task,
``model.compute_loss(...)`` for the loss (ESMM-like models override it) and ``model.regularization_loss()``.
Batches are slices of columnar tensors shuffled once per epoch; batch losses stay on the device and are
read once per epoch; metrics are computed on the whole epoch's predictions, per task.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..callbacks import Callback, CallbackList, History, ProgressBar
from ..data.inputs import TensorData
from ..metrics import get_metric

__all__ = ["Trainer"]


def _check_batch_size(batch_size: Any, where: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}.")
    return int(batch_size)


class Trainer:
    """Runs fit / evaluate / predict for a compiled model.

    Args:
        model: a :class:`~ctrkit.models.BaseModel` after ``compile``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    # ---------------------------------------------------------------- prediction
    @torch.inference_mode()
    def predict_logits(self, data: TensorData, batch_size: int = 4096) -> torch.Tensor:
        """Raw model outputs ``(N, T)`` in task order (logits for binary tasks), on the CPU."""
        model = self.model
        batch_size = _check_batch_size(batch_size, "predict")
        was_training = model.training
        model.eval()
        device = model.device
        n = len(data)
        out = torch.empty(n, len(model.task_names))
        try:
            for s in range(0, n, batch_size):
                xb = data.slice(s, min(s + batch_size, n))
                if device.type != "cpu":
                    xb = xb.to(device, non_blocking=True)
                logits = model(xb)
                out[s:s + batch_size] = torch.stack([logits[t] for t in model.task_names], dim=1).float().cpu()
        finally:
            model.train(was_training)
        return out

    def compute_metrics(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
                        prefix: str = "") -> dict[str, float]:
        """Loss and compiled metrics per task over whole arrays (not batch averages)."""
        model = self.model
        logs: dict[str, float] = {}
        with torch.no_grad():
            total, per_task = model.compute_loss(
                {t: logits[:, i] for i, t in enumerate(model.task_names)}, y, w)
        logs[prefix + "loss"] = float(total)
        probs = model.logits_to_predictions(logits).numpy()
        ynp = y.numpy()
        wnp = None if w is None else w.numpy()
        for i, (t, typ) in enumerate(zip(model.task_names, model.task_types)):
            if len(model.task_names) > 1:
                logs[f"{prefix}{t}_loss"] = float(per_task[i])
            mask = ~np.isnan(ynp[:, i])
            for name in model.compiled_metrics:
                spec = get_metric(name)
                if typ not in spec.task_types:
                    continue
                logs[f"{prefix}{t}_{name}"] = spec.fn(ynp[mask, i], probs[mask, i],
                                                      None if wnp is None else wnp[mask])
        return logs

    def evaluate(self, data: TensorData, y: torch.Tensor, w: torch.Tensor | None = None,
                 batch_size: int = 4096, prefix: str = "") -> dict[str, float]:
        return self.compute_metrics(self.predict_logits(data, batch_size), y, w, prefix)

    # ---------------------------------------------------------------- training
    def fit(self, data: TensorData, y: torch.Tensor, *, sample_weight: torch.Tensor | None = None,
            batch_size: int = 256, epochs: int = 1, verbose: int = 1, initial_epoch: int = 0,
            validation: tuple[TensorData, torch.Tensor, torch.Tensor | None] | None = None,
            shuffle: bool = True, callbacks: Sequence[Callback] | None = None,
            eval_batch_size: int = 4096) -> History:
        model = self.model
        batch_size = _check_batch_size(batch_size, "fit")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}.")
        device = model.device
        n = len(data)
        if device.type != "cpu":  # the whole (in-memory) data set goes to the device once
            data, y = data.to(device), y.to(device)
            sample_weight = None if sample_weight is None else sample_weight.to(device)
        steps = math.ceil(n / batch_size)
        history = History()
        cbs: list[Callback] = [history]
        if verbose:
            cbs.append(ProgressBar(verbose=verbose))
        cbs.extend(callbacks or [])
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "verbose": verbose, "samples": n}
        cblist = CallbackList(cbs, model, params)
        model.stop_training = False
        model.stop_reason = None
        opt = model.optimizer
        clip = model.compiled_grad_clip_norm
        params_to_clip = [p for p in model.parameters() if p.requires_grad]
        T = len(model.task_names)
        cblist.on_train_begin({})
        epoch = initial_epoch
        for epoch in range(initial_epoch, epochs):
            if model.stop_training:
                break
            t0 = time.perf_counter()
            epoch_logs: dict[str, Any] = {}
            cblist.on_epoch_begin(epoch, epoch_logs)
            if shuffle and n > 1:
                perm = torch.randperm(n, device=device)
                xd, yd = data.take(perm), y.index_select(0, perm)
                wd = None if sample_weight is None else sample_weight.index_select(0, perm)
            else:
                xd, yd, wd = data, y, sample_weight
            model.train()
            sums = torch.zeros(T + 1, device=device)
            train_logits = torch.empty(n, T, device=device)
            for step in range(steps):
                s, e = step * batch_size, min((step + 1) * batch_size, n)
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_begin(step, {})
                xb = xd.slice(s, e)
                yb = yd[s:e]
                wb = None if wd is None else wd[s:e]
                out = model(xb)
                loss, per_task = model.compute_loss(out, yb, wb)
                reg = model.regularization_loss()
                if reg is not None:
                    loss = loss + reg
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params_to_clip, clip)
                opt.step()
                with torch.no_grad():
                    sums[0] += loss.detach() * (e - s)
                    sums[1:] += per_task.detach() * (e - s)
                    train_logits[s:e] = torch.stack([out[t] for t in model.task_names], dim=1).detach()
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_end(step, {"loss": loss.detach(), "size": e - s})
                if model.stop_training:
                    break
            sums = (sums / max(n, 1)).cpu().tolist()
            logs: dict[str, Any] = {"loss": sums[0]}
            if T > 1:
                for i, t in enumerate(model.task_names):
                    logs[f"{t}_loss"] = sums[1 + i]
            if model.compiled_metrics and not model.stop_training:
                train_metrics = self.compute_metrics(train_logits.cpu(), yd.cpu(), None if wd is None else wd.cpu())
                logs.update({k: v for k, v in train_metrics.items() if not k.endswith("loss")})
            if validation is not None and not model.stop_training:
                vx, vy, vw = validation
                logs.update(self.evaluate(vx, vy, vw, eval_batch_size, prefix="val_"))
            logs["lr"] = float(opt.param_groups[0]["lr"])  # the rate used during this epoch
            logs["epoch_seconds"] = time.perf_counter() - t0
            if not math.isfinite(logs["loss"]) and not model.stop_training:
                model.stop_training = True
                model.stop_reason = (f"fit: the training loss became {logs['loss']} in epoch {epoch + 1}; training "
                                     "stopped. Lower the learning rate, set compile(grad_clip_norm=...), or check "
                                     "the inputs. Use the TerminateOnNaN callback to stop at the first bad step.")
                warnings.warn(model.stop_reason, RuntimeWarning, stacklevel=3)
            epoch_logs.update(logs)
            cblist.on_epoch_end(epoch, epoch_logs)
        cblist.on_train_end({})
        history.params = params
        return history
