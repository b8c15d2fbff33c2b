"""The training loop of the sequential models, with the tabular Trainer's callbacks and seeding rules.

Why a separate loop: the tabular :class:`~ctrkit.training.Trainer` trains on rows with a ``(T,)`` label vector
and computes per-task pointwise metrics (AUC, logloss) over the epoch's predictions. A next-item model trains
on windows of a user's sequence with one target per position (``(B, L)`` targets, padding ignored) and is
validated by ranking all items per user while excluding the user's history. Bending the tabular loop to that
would need model-specific branches in it (which it must never have); this ~100-line loop instead reuses
everything that does fit: :class:`~ctrkit.callbacks.CallbackList` with the same hooks and log keys
(``loss``, ``val_loss``, ``val_ndcg@10`` ...), :class:`~ctrkit.callbacks.History`, the progress bar,
EarlyStopping / ModelCheckpoint / CSVLogger / LR callbacks, the model's optimizer and gradient clipping, and the
per-epoch shuffling that depends only on ``(seed, epoch)``. Not supported here: distributed training, on-disk
stores and :class:`~ctrkit.callbacks.BackupAndRestore`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...callbacks import Callback, CallbackList, History, ProgressBar
from ...training.trainer import end_epoch

__all__ = ["SequentialTrainer"]


class SequentialTrainer:
    """Runs ``fit`` for a compiled :class:`~ctrkit.models.sequential.SequentialModel`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int = 128, epochs: int = 1,
            verbose: int = 1, validation: Any = None, shuffle: bool = True,
            callbacks: Sequence[Callback] | None = None, seed: int | None = None) -> History:
        """Train on ``inputs`` / ``targets`` windows ``(n, L)`` (target 0: no target at that position)."""
        from ...callbacks import BackupAndRestore
        from ...training.trainer import _mix
        model = self.model
        name = type(model).__name__
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{name}.fit: batch_size must be an int >= 1, got {batch_size!r}.")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"{name}.fit: epochs must be an int >= 0, got {epochs!r}.")
        callbacks = list(callbacks or [])
        if any(isinstance(cb, BackupAndRestore) for cb in callbacks):
            raise ValueError(f"{name}.fit: BackupAndRestore is not supported for sequential models yet; use "
                             "ModelCheckpoint to keep the best model.")
        seed = int(torch.randint(0, 2 ** 62, ()).item()) if seed is None else int(seed)
        device = model.device
        inputs, targets = inputs.to(device), targets.to(device)
        n = len(inputs)
        steps = math.ceil(n / batch_size)
        history = History()
        cbs: list[Callback] = [history] + ([ProgressBar(verbose=verbose)] if verbose else []) + callbacks
        cbs.sort(key=lambda cb: bool(getattr(cb, "run_last", False)))
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "verbose": verbose, "samples": n,
                  "world_size": 1, "rank": 0}
        cblist = CallbackList(cbs, model, params)
        model.stop_training, model.stop_reason = False, None
        opt, clip = model.optimizer, model.compiled_grad_clip_norm
        params_to_clip = [p for p in model.parameters() if p.requires_grad]
        cblist.on_train_begin({})
        for epoch in range(epochs):
            if model.stop_training:
                break
            t0 = time.perf_counter()
            epoch_logs: dict[str, Any] = {}
            cblist.on_epoch_begin(epoch, epoch_logs)
            order = (torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch, 0))).to(device)
                     if shuffle and n > 1 else torch.arange(n, device=device))
            model.train()
            total = torch.zeros((), device=device)
            count = 0
            for step in range(steps):
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_begin(step, {})
                idx = order[step * batch_size:(step + 1) * batch_size]
                xb, yb = inputs[idx], targets[idx]
                select = yb != 0
                if model.num_negatives:       # sampled softmax: the target is column 0 of each row
                    negatives = torch.randint(1, model.num_items + 1, (model.num_negatives,), device=device)
                    out = model.sampled_positions(xb, select, yb[select], negatives)
                    loss, _ = model.compute_loss(out, torch.zeros(len(out["next_item"]), dtype=torch.long,
                                                                  device=device))
                else:
                    out = model.score_positions(xb, select)
                    loss, _ = model.compute_loss(out, yb[select])
                reg = model.regularization_loss()
                if reg is not None:
                    loss = loss + reg
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params_to_clip, clip)
                opt.step()
                k = int(select.sum())
                total += loss.detach() * k
                count += k
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_end(step, {"loss": loss.detach(), "size": k})
                if model.stop_training:
                    break
            logs: dict[str, Any] = {"loss": float(total) / max(count, 1)}
            if validation is not None and not model.stop_training:
                logs.update({f"val_{k}": v for k, v in model.evaluate(validation).items()})
            end_epoch(model, cblist, opt, epoch, epoch_logs, logs, t0)
        cblist.on_train_end({})
        history.params = params
        return history
