"""Callbacks with Keras' hook names and semantics.

``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``, ``on_train_batch_end(step, logs)``,
``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``. Log keys are Keras': ``"loss"``, ``"auc"`` and, for
validation, ``"val_auc"`` for a single-task model; a multi-task model adds the task name, ``"ctr_loss"``,
``"ctr_auc"``, ``"val_ctr_auc"``. A monitored key that is not in the logs gives a warning (Keras does the
same) naming the keys that are. A callback stops training with
``self.model.stop_training = True``. Batch hooks are only dispatched when some callback overrides them,
and the batch loss in their logs is a device tensor (call ``float()`` only when you need it).

Distributed runs (``torchrun``): callbacks whose ``main_process_only`` is True (the progress bar,
``ModelCheckpoint``, ``CSVLogger``) run on rank 0 only; all others run on every rank and see the same logs
(metrics are computed over all ranks' predictions). Stateful callbacks expose ``state_dict()`` /
``load_state_dict()`` so that :class:`BackupAndRestore` checkpoints can resume them.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .metrics import metric_direction

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "LRScheduler", "ReduceLROnPlateau", "TerminateOnNaN", "WeightAveraging", "CSVLogger", "ProgressBar",
           "BackupAndRestore"]


class Callback:
    """Base class. ``self.model`` is the model being trained, ``self.params`` the fit arguments.

    Set the class attribute ``main_process_only = True`` on callbacks that write files or print, so that a
    distributed run executes them on rank 0 only.
    """

    main_process_only = False

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, step, logs=None): ...
    def on_train_batch_end(self, step, logs=None): ...
    def on_test_begin(self, logs=None): ...   # around each validation pass of fit (Keras' hooks)
    def on_test_end(self, logs=None): ...


def _monitored(cb: Any, logs: dict | None) -> float | None:
    """The monitored value, or None with a warning (once per fit) when it is not in the logs (Keras' rule)."""
    logs = logs or {}
    if cb.monitor in logs:
        return float(logs[cb.monitor])
    if not getattr(cb, "_warned_missing", False):
        cb._warned_missing = True
        hint = (" Validation keys need validation_split or validation_data." if cb.monitor.startswith("val_")
                else "")
        warnings.warn(f"{type(cb).__name__}: monitor {cb.monitor!r} is not in the logs {sorted(logs)}; it does "
                      f"nothing this run.{hint} A multi-task model's keys name the task (val_<task>_<metric>).",
                      RuntimeWarning, stacklevel=4)
    return None


def _overrides(cb: Callback, name: str) -> bool:
    method = getattr(cb, name)
    return getattr(method, "__func__", method) is not getattr(Callback, name)


class CallbackList:
    """Dispatches hooks to callbacks; batch hooks only to those that override them."""

    def __init__(self, callbacks: Iterable[Callback], model: Any, params: dict[str, Any]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected ctrkit.callbacks.Callback instances, got {type(cb).__name__}.")
            cb.set_model(model)
            cb.set_params(params)
        self._batch_end = [cb for cb in self.callbacks if _overrides(cb, "on_train_batch_end")]
        self._batch_begin = [cb for cb in self.callbacks if _overrides(cb, "on_train_batch_begin")]
        self.wants_batch_hooks = bool(self._batch_end or self._batch_begin)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            targets = (self._batch_end if hook == "on_train_batch_end" else
                       self._batch_begin if hook == "on_train_batch_begin" else self.callbacks)
            for cb in targets:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """Records the logs of every epoch: ``history.history["val_auc"]`` is a list, one value per epoch."""

    def on_train_begin(self, logs=None):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame(self.history, index=pd.Index(self.epoch, name="epoch"))


class EarlyStopping(Callback):
    """Stop when a monitored value stops improving.

    Args:
        monitor: log key, e.g. ``"val_loss"``, ``"val_auc"`` or, for a multi-task model, ``"val_cvr_auc"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping (Keras: training stops at the end of the
            ``patience``-th epoch in a row without improvement; ``patience=0`` stops at the first).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (from the metric: AUC/accuracy up, losses/errors down).
        restore_best_weights: load the best epoch's weights when training ends.
        start_from_epoch: epochs to wait before monitoring.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}.")
        if mode == "auto":
            mode = metric_direction(monitor) or ""
            if not mode:
                raise ValueError(f"EarlyStopping: cannot infer whether {monitor!r} should go up or down. "
                                 "Pass mode='min' or mode='max'.")
        self.monitor, self.mode = monitor, mode
        self.min_delta, self.patience, self.verbose = abs(min_delta), int(patience), verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _better(self, a: float, b: float) -> bool:
        return a < b - self.min_delta if self.mode == "min" else a > b + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self.baseline if self.baseline is not None else (math.inf if self.mode == "min" else -math.inf)
        self.best_epoch = None
        self.best_weights = None
        self._warned_missing = False

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(self, logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if not math.isnan(value) and self._better(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.model.state_dict())
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):  # Keras: wait >= patience (and never on the first epoch)
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def state_dict(self) -> dict:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": float(self.best),
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best, self.best_epoch, self.best_weights = state["best"], state["best_epoch"], state["best_weights"]

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        if self.verbose and self.stopped_epoch:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping (best {self.monitor}={self.best:.5f} "
                  f"at epoch {(self.best_epoch or 0) + 1})")


class ModelCheckpoint(Callback):
    """Save the model after epochs, optionally only when it improves (Keras' and DeepCTR-Torch's arguments).

    Args:
        filepath: where to save; may contain ``{epoch}`` and log keys, e.g. ``"ckpt/ep{epoch:02d}"``.
        monitor, mode: as in :class:`EarlyStopping`.
        save_best_only: only save when ``monitor`` improved.
        save_weights_only: write ``torch.save(model.state_dict())`` to the file ``filepath`` (load it with
            ``model.load_state_dict(torch.load(filepath))``); otherwise write a ctrkit model directory
            (``model.save``, read back with ``ctrkit.load_model``). Both are written atomically.
        period: save every ``period`` epochs (DeepCTR-Torch's and old Keras' argument).
        save_freq: ``"epoch"`` (default) or an int ``N``: save every ``N`` training steps (Keras).

    For a checkpoint that resumes training (optimizer, epoch and step, RNG states), use
    :class:`BackupAndRestore`.
    """

    main_process_only = True
    #: with sharded tables (``embedding_backend="torchrec"``, several processes) it runs on every process: saving
    #: gathers the tables (a collective) and rank 0 writes
    collective_when_sharded = True

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", period: int = 1,
                 save_freq: Any = "epoch") -> None:
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be 'auto', 'min' or 'max', got {mode!r}.")
        self.mode = metric_direction(monitor) if mode == "auto" else mode
        if self.save_best_only and self.mode not in ("min", "max"):
            raise ValueError(f"ModelCheckpoint: cannot infer the direction of {monitor!r}; pass mode='min'/'max'.")
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"ModelCheckpoint: period must be an int >= 1 (epochs), got {period!r}.")
        if not (save_freq == "epoch" or (isinstance(save_freq, int) and not isinstance(save_freq, bool)
                                         and save_freq >= 1)):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or an int >= 1 (steps), got {save_freq!r}.")
        self.period, self.save_freq = period, save_freq
        if save_freq != "epoch":
            self.on_train_batch_end = self._save_on_step  # type: ignore[method-assign]

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self._steps, self._epoch = 0, 0
        self._warned_missing = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def state_dict(self) -> dict:
        return {"best": float(self.best)}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]

    def _save_on_step(self, step, logs=None):
        self._steps += 1
        if self._steps % self.save_freq == 0:
            self._save(self._epoch, {k: float(v) for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch" and (epoch + 1) % self.period == 0:
            self._save(epoch, logs or {})

    def _save(self, epoch: int, logs: dict) -> None:
        if self.save_best_only:
            v = _monitored(self, logs)
            if v is None or math.isnan(v) or not (v < self.best if self.mode == "min" else v > self.best):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {v:.5f}")
            self.best = v
        from .distributed import is_main_process
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            import torch

            from .io.atomic import atomic_file
            model = self.model
            if getattr(model, "embedding_backend", "native") == "torchrec":
                model = model.gather()            # the tables from every process (a collective); None off rank 0
            if model is None or not is_main_process():
                return
            state = model.state_dict()
            atomic_file(path, lambda fh: torch.save(state, fh))
        else:
            self.model.save(path)                 # rank 0 writes; a sharded model gathers its tables first
        if self.verbose and is_main_process():
            print(f"Epoch {epoch + 1}: saved {'weights' if self.save_weights_only else 'model'} to {path}")


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch from ``schedule(epoch, lr) -> new_lr`` (Keras' callback)."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(self.schedule(epoch, float(opt.param_groups[0]["lr"])))
        for g in opt.param_groups:
            g["lr"] = lr



class LRScheduler(Callback):
    """Drive a ``torch.optim.lr_scheduler`` built from the model's optimizer.

    Args:
        factory: ``lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 5)``.
        interval: ``"epoch"`` or ``"step"``.
        monitor: for ``ReduceLROnPlateau``-style schedulers, the log key passed to ``step``.
    """

    def __init__(self, factory: Callable[[Any], Any], interval: str = "epoch", monitor: str | None = None) -> None:
        super().__init__()
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRScheduler: interval must be 'epoch' or 'step', got {interval!r}.")
        self.factory, self.interval, self.monitor = factory, interval, monitor
        if interval == "step":
            self.on_train_batch_end = self._step_batch  # type: ignore[method-assign]

    def on_train_begin(self, logs=None):
        self.scheduler = self.factory(self.model.optimizer)

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])

    def _step_batch(self, step, logs=None):
        self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        if self.interval == "epoch":
            if self.monitor is not None:
                self.scheduler.step((logs or {})[self.monitor])
            else:
                self.scheduler.step()


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_lr: float = 0.0) -> None:
        import torch
        direction = metric_direction(monitor) if mode == "auto" else mode
        super().__init__(lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=direction,  # type: ignore[arg-type]  # a str; torch checks it is 'min' or 'max'
            factor=factor, patience=patience, min_lr=min_lr), monitor=monitor)


class TerminateOnNaN(Callback):
    """Stop as soon as a batch loss is NaN or infinite, naming the epoch and step (syncs every step)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, step, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.model.stop_training = True
            self.model.stop_reason = (f"TerminateOnNaN: loss became {loss} at epoch {getattr(self, '_epoch', 0) + 1}, "
                                      f"step {step + 1}. Lower the learning rate, add gradient clipping "
                                      "(compile(..., grad_clip_norm=...)) or check the inputs for extreme values.")
            warnings.warn(self.model.stop_reason, RuntimeWarning, stacklevel=2)


class WeightAveraging(Callback):
    """An exponential moving average of the weights (Polyak averaging), validated and kept in their place.

    After the ``n``-th training step the average weighs the weights of step ``k`` by ``decay ** (n - k)``,
    normalised: ``avg = keep * avg + (1 - keep) * weights`` with ``keep = decay * (1 - decay ** (n - 1)) /
    (1 - decay ** n)`` (PyTorch's ``torch.optim.swa_utils.get_ema_multi_avg_fn`` with that factor), over every
    floating-point parameter and buffer. This is the exponential moving average with Adam's bias correction:
    after a few steps it is the plain mean of the weights seen so far, after many ``keep`` is ``decay``. (An
    average started from the first step's weights would keep ``decay ** n`` of those near-initial weights: on a
    small data set, a few steps per epoch, the validated model would be mostly its initialisation.) Each
    validation of ``fit`` sees the averaged weights, and they stay in the model until the next epoch starts, so
    :class:`EarlyStopping` (``restore_best_weights``), :class:`ModelCheckpoint` and :class:`BackupAndRestore` keep
    the weights that were validated; the next epoch trains on from the optimizer's own weights. When ``fit`` ends
    the model holds the averaged weights (or EarlyStopping's best averaged ones). Averaging smooths the noise of
    the last steps out of the weights: on small data (the census comparison) it adds validation AUC and makes
    early stopping less jumpy. Without validation data the average is swapped in at the end of each epoch: list
    this callback first so that the others see it.

    Args:
        decay: weight of the old average at each step, in (0, 1); the average spans about ``1 / (1 - decay)``
            steps (0.995: the last 200 or so).

    Example:
        >>> cb = WeightAveraging(decay=0.995)   # fit(x, y, validation_data=..., callbacks=[cb, EarlyStopping(...)])
    """

    def __init__(self, decay: float = 0.995) -> None:
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAveraging: decay must be a float in (0, 1), e.g. 0.995, got {decay!r}.")
        self.decay = float(decay)
        self._avg: list | None = None
        self._raw: list | None = None   # the optimizer's weights while the average is in the model
        self._w: list = []              # the model's floating-point tensors (views of its parameters and buffers)
        self._n = 0                     # steps averaged

    def on_train_begin(self, logs=None):
        sd = self.model.state_dict()   # once per fit: fit restores and resumes weights in place, so the views hold
        if any(hasattr(v, "local_shards") for v in sd.values()):
            raise ValueError("WeightAveraging does not average TorchRec-sharded tables; drop the callback for a "
                             "model compiled with sharding=..., or use embedding_backend='native'.")
        self._w = [v for v in sd.values() if v.is_floating_point()]

    def on_train_batch_end(self, step, logs=None):
        import torch
        import torch.optim.swa_utils as swa
        w, d = self._w, self.decay
        with torch.no_grad():
            self._n = n = self._n + 1 if self._avg is not None else 1
            if n == 1:
                self._avg = [v.detach().clone() for v in w]
            else:
                keep = d * -math.expm1((n - 1) * math.log(d)) / -math.expm1(n * math.log(d))   # d(1-d^(n-1))/(1-d^n)
                swa.get_ema_multi_avg_fn(keep)(self._avg, w, None)

    def _swap_in(self) -> None:
        import torch
        if self._raw is None and self._avg is not None and all(bool(torch.isfinite(a).all()) for a in self._avg):
            w = self._w   # (a non-finite average, after a diverged epoch, is left out of the model)
            self._raw = [v.detach().clone() for v in w]
            for v, a in zip(w, self._avg):
                v.data.copy_(a)

    def on_test_begin(self, logs=None):
        self._swap_in()

    def on_epoch_end(self, epoch, logs=None):
        self._swap_in()

    def on_epoch_begin(self, epoch, logs=None):
        if self._raw is not None:
            for v, r in zip(self._w, self._raw):
                v.data.copy_(r)
            self._raw = None

    def state_dict(self) -> dict:
        return {"decay": self.decay, "avg": self._avg, "raw": self._raw, "steps": self._n}

    def load_state_dict(self, state: dict) -> None:
        self._avg, self._raw = state["avg"], state["raw"]
        self._n = state.get("steps", 10 ** 9 if self._avg is not None else 0)   # (older states: a long run)


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file (use ``append=True`` when resuming a run)."""

    main_process_only = True

    def __init__(self, filename: str, append: bool = False) -> None:
        super().__init__()
        self.filename, self.append = str(filename), append

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        new = not os.path.exists(self.filename)
        if self._keys is None:
            self._keys = sorted(logs)
        with open(self.filename, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["epoch", *self._keys])
            w.writerow([epoch, *[logs.get(k, np.nan) for k in self._keys]])


class ProgressBar(Callback):
    """A tqdm bar over the steps of each epoch (``verbose=1``) or one line per epoch (``verbose=2``)."""

    main_process_only = True

    def __init__(self, verbose: int = 1, refresh_steps: int = 20) -> None:
        super().__init__()
        self.verbose, self.refresh_steps = verbose, refresh_steps
        self.bar = None
        if verbose != 1:
            self.on_train_batch_end = Callback.on_train_batch_end.__get__(self)  # type: ignore[method-assign]

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose == 1:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.params.get("steps"), desc=f"Epoch {epoch + 1}/{self.params.get('epochs')}",
                            unit="step", leave=True, dynamic_ncols=True)

    def on_train_batch_end(self, step, logs=None):
        if self.bar is None:
            return
        self.bar.update(1)
        if step % self.refresh_steps == 0 and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        text = " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
        if self.bar is not None:
            self.bar.close()   # a bar is cut to the terminal's width: every task's metrics go on their own line
            self.bar = None
            print(text, flush=True)
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {self.params.get('steps')} steps - {text}",
                  flush=True)


class BackupAndRestore(Callback):
    """Keep a resumable checkpoint of the run in one file, so a killed job continues where it stopped.

    The checkpoint (see :mod:`ctrkit.io.checkpoint`) holds the weights, the optimizer, the state of stateful
    callbacks (LR schedulers, early stopping), the history, the epoch and step, and the RNG states; it is
    replaced atomically at every save. When ``fit`` starts and the file exists, training resumes from it (as
    Keras' callback of the same name does); ``fit(..., resume_from=path)`` resumes explicitly. On CPU with the
    same seed an interrupted-then-resumed run ends with exactly the weights of an uninterrupted one.

    Args:
        filepath: the checkpoint file.
        save_freq: ``"epoch"`` (after every epoch) or an int ``N``: also after every ``N`` training steps
            (counted from the start of training), for long epochs.
        delete_checkpoint: delete the file when ``fit`` finishes normally, so the next ``fit`` starts fresh.

    Resume with the same ``batch_size``, number of processes and ``epochs``; the data must be the same. In a
    distributed run every rank takes part in a save (RNG states are gathered) and rank 0 writes the file, which
    must be on storage every rank can read to resume.

    Example:
        >>> cb = BackupAndRestore("/tmp/run1/backup.pt", save_freq=500)
    """

    main_process_only = False  # every rank gathers its RNG state into the checkpoint; rank 0 writes
    run_last = True            # save after the other callbacks have updated their state for the step/epoch

    def __init__(self, filepath: str, save_freq: Any = "epoch", delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not (save_freq == "epoch" or (isinstance(save_freq, int) and not isinstance(save_freq, bool)
                                         and save_freq >= 1)):
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' or an int >= 1, got {save_freq!r}.")
        self.filepath, self.save_freq, self.delete_checkpoint = os.fspath(filepath), save_freq, delete_checkpoint
        self.trainer: Any = None
        if save_freq == "epoch":
            self.on_train_batch_end = Callback.on_train_batch_end.__get__(self)  # type: ignore[method-assign]

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    def _save(self, epoch: int, steps_done: int) -> None:
        from .distributed import is_main_process
        from .io.checkpoint import save_checkpoint
        state = self.trainer.checkpoint_state(epoch, steps_done)  # a collective in distributed runs
        if "sharded" in state:   # TorchRec's tables: every process writes its shards to a new directory, then
            import torch.distributed.checkpoint as dcp  # the file naming it replaces the previous one atomically
            tables_dir = f"{self.filepath}.tables-e{epoch}-s{steps_done}"
            from .distributed import quiet_torchrec
            with quiet_torchrec():
                dcp.save(state.pop("sharded"), checkpoint_id=tables_dir)
            state["tables_dir"] = tables_dir
        if is_main_process():
            save_checkpoint(self.filepath, state)
            self._remove_tables(keep=state.get("tables_dir"))

    def _remove_tables(self, keep: str | None = None) -> None:
        """Delete the tables directories of earlier saves (a sharded model's), all but ``keep``."""
        import glob
        import shutil
        for d in glob.glob(glob.escape(self.filepath) + ".tables-*"):
            if d != keep and os.path.isdir(d):
                shutil.rmtree(d, ignore_errors=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, step, logs=None):
        steps = int(self.params.get("steps") or 0)
        done = step + 1
        if done < steps and (self._epoch * steps + done) % int(self.save_freq) == 0:
            self._save(self._epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch, int(self.params.get("steps") or 0))

    def on_train_end(self, logs=None):
        from .distributed import barrier, is_main_process
        if self.delete_checkpoint and not getattr(self.model, "stop_reason", None):
            barrier()  # every rank has finished reading it
            if is_main_process() and os.path.exists(self.filepath):
                os.remove(self.filepath)
                self._remove_tables()
