"""The Trainer: the one training loop, and everything a compiled model's training owns.

A :class:`Trainer` is made by ``model.compile(...)`` and kept: it owns the optimizer, the per-task loss and its
weights, the task balancer, the metrics, gradient clipping, label masking, callbacks, the History and resume.
It never asks which model it runs; it relies on the model contract only:

- ``model(batch) -> {task: logits}`` (through ``DistributedDataParallel`` under ``torchrun``);
- ``model.train_step(forward, x, y, sample_weight, loss) -> (total, per_task, outputs or None)``: the default
  calls ``forward`` and the ``compute_loss`` hook; a sequential model scores its positions there;
- ``model.regularization_loss()``, ``model.stack_outputs / split_outputs / logits_to_predictions``,
  ``task_names / task_types / output_width / device``.

Data comes as a source: :class:`~ctrkit.data.memory.ArraySource` for arrays in memory, a
:class:`~ctrkit.data.DataSource` for an on-disk store; both yield whole ``(x, y, w)`` batches. Shuffling depends
only on ``(seed, epoch)``, so a run resumed from a :class:`~ctrkit.callbacks.BackupAndRestore` checkpoint replays
the same batches. Batch losses stay on the device and are read once per epoch; metrics are computed on the whole
epoch's predictions, per task.
"""
from __future__ import annotations

import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..callbacks import Callback, CallbackList, History, ProgressBar
from ..data.arrays import ArraySource
from ..data.source import epoch_steps, mix_seed
from ..metrics import get_metric
from .balancing import get_balancer
from .evaluation import check_group_by, compute_metrics, log_key
from .finite import _names, check_finite_outputs, match_forward_calls, nonfinite_parameters, xb_device
from .losses import TaskLoss, resolve_task_losses
from .optim import build_optimizer
from .resume import Distribution, checkpoint_state, restore_after_begin, resume_checkpoint
from .sharding import is_torchrec, shard_tables

__all__ = ["Trainer", "check_batch_size", "check_finite_outputs", "inference_lock", "nonfinite_parameters",
           "predict_logits", "predict_small"]

Source = Any  # ArraySource | DataSource


def check_batch_size(batch_size: Any, where: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}.")
    return int(batch_size)


def _loss_weights(loss_weights: Any, task_names: list[str]) -> list[float]:
    T = len(task_names)
    if loss_weights is None:
        lw = [1.0] * T
    elif isinstance(loss_weights, Mapping):
        unknown = [k for k in loss_weights if k not in task_names]
        if unknown:
            raise ValueError(f"compile: loss_weights names unknown task(s) {unknown}; the model's tasks are "
                             f"{task_names}.")
        lw = [float(loss_weights.get(t, 1.0)) for t in task_names]
    else:
        lw = [float(v) for v in loss_weights]
        if len(lw) != T:
            raise ValueError(f"compile: got {len(lw)} loss_weights for {T} tasks {task_names}.")
    if any(not np.isfinite(v) or v < 0 for v in lw):
        raise ValueError(f"compile: loss_weights must be finite and >= 0, got {lw}.")
    return lw


_INFERENCE_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def inference_lock(model: Any) -> threading.RLock:
    """The lock inference on ``model`` holds while it switches the module to eval mode and back: predictions from
    several threads on one model object run one at a time (otherwise one thread could switch dropout back on in
    the middle of another's forward pass). Kept outside the module so copies and pickles are unaffected."""
    with _LOCKS_GUARD:
        lock = _INFERENCE_LOCKS.get(model)
        if lock is None:
            lock = _INFERENCE_LOCKS[model] = threading.RLock()
        return lock


def predict_logits(model: Any, source: Source, batch_size: int = 4096, lo: int = 0, hi: int | None = None,
                   with_labels: bool = False) -> Any:
    """Raw outputs ``(N, output_width)`` of rows ``[lo, hi)`` in task order, on the CPU (with their labels and
    weights as ``(logits, y, w)`` when ``with_labels``), in eval mode; the module's mode is restored after.
    Calls from several threads on one model run one at a time (:func:`inference_lock`)."""
    with inference_lock(model):
        return _predict_logits(model, source, batch_size, lo, hi, with_labels)


@torch.inference_mode()
def _predict_logits(model: Any, source: Source, batch_size: int = 4096, lo: int = 0, hi: int | None = None,
                   with_labels: bool = False) -> Any:
    """The body of :func:`predict_logits`, under its lock."""
    batch_size = check_batch_size(batch_size, "predict")
    hi = len(source) if hi is None else hi
    device = model.device
    if device.type != "cpu" and isinstance(source, ArraySource):  # in memory: to the device once
        source = source.slice(lo, hi).to(device, non_blocking=True)
        lo, hi = 0, hi - lo
    out = torch.empty(hi - lo, model.output_width, device=device if isinstance(source, ArraySource) else "cpu")
    ys: list[torch.Tensor] = []
    ws: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        s = 0
        xb = None
        for xb, yb, wb in source.iter_range(lo, hi, batch_size):
            e = s + len(xb)
            if xb_device(xb) != device:
                xb = xb.to(device, non_blocking=True)
            out[s:e] = model.stack_outputs(model(xb)).float().to(out.device)
            if with_labels:
                ys.append(yb.cpu())
                if wb is not None:
                    ws.append(wb.cpu())
            s = e
        if getattr(model, "collective_forward", False):
            match_forward_calls(model, source, -(-(hi - lo) // batch_size), xb)
    finally:
        model.train(was_training)
    if not with_labels:
        return out.cpu()
    return out.cpu(), torch.cat(ys) if ys else None, torch.cat(ws) if ws else None


def _set_training(model: Any, mode: bool) -> None:
    """``model.train(mode)`` without its per-module ``__setattr__`` walk, unless a module overrides ``train``."""
    mods = list(model.modules())
    if any(type(m).train is not torch.nn.Module.train for m in mods):
        model.train(mode)
        return
    for m in mods:
        m.__dict__["training"] = mode


def predict_small(model: Any, data: Any) -> np.ndarray:
    """Predictions ``(n, output_width)`` of a small batch already in the model's input layout, in one forward
    pass (the serving path of ``predict_records``); one thread at a time per model (:func:`inference_lock`)."""
    with inference_lock(model):
        return _predict_small(model, data)


def _predict_small(model: Any, data: Any) -> np.ndarray:
    was_training = model.training
    if was_training:
        _set_training(model, False)
    try:
        with torch.inference_mode():
            if model.device.type != "cpu":
                data = data.to(model.device)
            z = model.stack_outputs(model(data))
            return model.logits_to_predictions(z.float().cpu()).numpy()
    finally:
        if was_training:
            _set_training(model, True)


class Trainer:
    """Trains, evaluates and predicts one model; made by ``model.compile`` (arguments as there).

    Args:
        model: a model following the contract in the module docstring.
        optimizer, loss, metrics, loss_weights, lr, grad_clip_norm, task_balancer, init_output_bias: see
            :meth:`ctrkit.models.BaseModel.compile`.
    """

    def __init__(self, model: Any, optimizer: Any = "adam", loss: Any = None, metrics: Sequence[str] | None = None,
                 loss_weights: Any = None, lr: float | None = None, grad_clip_norm: float | None = None,
                 task_balancer: Any = None, init_output_bias: bool = True, group_by: str | None = None,
                 sharding: Any = None, embedding_optimizer: str | None = None,
                 embedding_lr: float | None = None) -> None:
        if not isinstance(init_output_bias, bool):
            raise TypeError(f"compile: init_output_bias must be True or False, got {init_output_bias!r}.")
        self.model = model
        names = list(model.task_names)
        fns = resolve_task_losses(loss, names, model.task_types)
        mets = [] if metrics is None else ([metrics] if isinstance(metrics, str) else list(metrics))
        for m in mets:
            get_metric(m)
        self.metrics = [str(m).lower() for m in mets]
        self.group_by = check_group_by(group_by, self.metrics)
        self.grouped_metrics = [m for m in self.metrics if get_metric(m).grouped]
        lw = _loss_weights(loss_weights, names)
        if grad_clip_norm is not None and not grad_clip_norm > 0:
            raise ValueError(f"compile: grad_clip_norm must be > 0 or None, got {grad_clip_norm!r}.")
        self.grad_clip_norm = grad_clip_norm
        balancer = get_balancer(task_balancer)
        if balancer.learns_weights and loss_weights is not None:
            raise ValueError(f"compile: task_balancer={balancer.name!r} learns the task weights; loss_weights="
                             f"{loss_weights!r} cannot be combined with it. Pass one or the other.")
        self.loss = TaskLoss(fns, names, torch.tensor(lw, device=model.device))
        #: TorchRec's DistributedModelParallel around the model (``embedding_backend="torchrec"``), else None
        self.sharded = None
        if is_torchrec(model):
            self.sharded = shard_tables(model, sharding=sharding, optimizer=optimizer, lr=lr,
                                        embedding_optimizer=embedding_optimizer, embedding_lr=embedding_lr)
        elif (sharding, embedding_optimizer, embedding_lr) != (None, None, None):
            raise ValueError(f"compile: sharding / embedding_optimizer / embedding_lr apply to models built with "
                             f"embedding_backend='torchrec'; {type(model).__name__} holds its tables itself.")
        self.optimizer = build_optimizer(optimizer, model, lr)
        balancer.bind(model, self)
        self.balancer = balancer
        self.init_output_bias = init_output_bias
        self.spec = {
            "optimizer": optimizer if isinstance(optimizer, str) else None, "lr": lr,
            "loss": loss if (loss is None or isinstance(loss, str) or (isinstance(loss, (list, dict, tuple)) and all(
                isinstance(v, str) for v in (loss.values() if isinstance(loss, dict) else loss)))) else None,
            "metrics": self.metrics, "loss_weights": None if balancer.learns_weights else dict(zip(names, lw)),
            "grad_clip_norm": grad_clip_norm, "task_balancer": balancer.config(),
            "init_output_bias": init_output_bias, "group_by": self.group_by}
        if self.sharded is not None:
            self.spec.update(sharding=sharding, embedding_optimizer=embedding_optimizer, embedding_lr=embedding_lr)
        self.history: History | None = None
        self.stop_training = False
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._fit_thread: int | None = None
        self._fit_state: dict[str, Any] | None = None
        self._good_state: dict[str, torch.Tensor] | None = None
        self._good_epoch = 0

    def __getstate__(self) -> dict[str, Any]:
        """Pickling / ``copy.deepcopy``: everything but the lock that keeps two threads from training at once and
        the state of a fit in progress (a copy taken during fit is a model no thread is training)."""
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state.update(_good_state=None, _fit_thread=None, _fit_state=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- divergence
    def _snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the model's state on the CPU: what a diverged fit goes back to. Its cost is one CPU copy of
        the parameters and buffers (``model.parameter_bytes``-sized) held during fit, refreshed at the end of
        every epoch with a finite loss (one device-to-host copy of the weights per epoch)."""
        with torch.no_grad():   # sharded tables are not copied (a second copy of them would not fit)
            return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
                    if not hasattr(v, "local_shards")}

    def _recover(self, epoch: int, loss: float, bad: list[str], by_callback: bool = False) -> str:
        """Put back the last finite weights after a NaN / infinite loss or weights; say what was done."""
        snap = self._good_state
        what = f"the training loss became {loss}" if not math.isfinite(loss) else \
            f"the weights became NaN or infinite ({_names(bad)})"
        if snap is None:  # pragma: no cover - a snapshot is taken before the first step
            return f"fit: {what} in epoch {epoch + 1}; no finite weights to restore."
        self.model.load_state_dict(snap, strict=self.sharded is None)
        self.optimizer.state.clear()  # its moments hold the NaN too: the next fit starts them afresh
        when = (f"the end of epoch {self._good_epoch}" if self._good_epoch > 0 else "the start of this fit")
        return (f"fit: {what} in epoch {epoch + 1}; training stopped and the weights were restored to those of "
                f"{when} (the last with a finite loss; the optimizer state was reset). Lower the learning rate, "
                "set compile(grad_clip_norm=...), or check the inputs." + (
                    "" if by_callback else " Use the TerminateOnNaN callback to stop at the first bad step."))

    # ---------------------------------------------------------------- inference
    def check_not_training_elsewhere(self, where: str) -> None:
        """Inference never switches a module that ``fit`` is training in another thread to eval mode: refuse."""
        t = self._fit_thread
        if t is not None and t != threading.get_ident():
            raise RuntimeError(f"{type(self.model).__name__}.{where}: this model is being trained by fit() in another "
                               "thread; predicting now would switch its dropout and BatchNorm layers to eval mode in "
                               "the middle of training. Predict after fit returns, from a callback (same thread), or "
                               "from a copy: copy.deepcopy(model) / load_model of a ModelCheckpoint.")

    def predict_logits(self, source: Source, batch_size: int = 4096, lo: int = 0, hi: int | None = None,
                       with_labels: bool = False) -> Any:
        """:func:`predict_logits` of this trainer's model."""
        return predict_logits(self.model, source, batch_size, lo, hi, with_labels)

    def _gathered(self, source: Source, batch_size: int, dist: Distribution | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits, labels, weights of a whole evaluation set. Distributed: each rank predicts a contiguous shard
        and the shards are all-gathered in rank order, so every rank gets the full set's predictions."""
        from ..distributed import all_gather_rows, shard_range
        world, rank = (dist.world, dist.rank) if dist is not None else (1, 0)
        lo, hi = shard_range(len(source), rank, world)
        logits, y, w = predict_logits(self.model, source, batch_size, lo, hi, with_labels=True)
        if world > 1:
            logits, y = all_gather_rows(logits), all_gather_rows(y)
            w = None if w is None else all_gather_rows(w)
        return logits, y, w

    def compute_metrics(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
                        prefix: str = "", groups: Any = None) -> dict[str, float]:
        """Loss and compiled metrics per task over whole arrays (:func:`.evaluation.compute_metrics`)."""
        return compute_metrics(self.model, self.loss, self.metrics, logits, y, w, prefix, groups)

    def evaluate(self, source: Source, batch_size: int = 4096, prefix: str = "", groups: Any = None
                 ) -> dict[str, float]:
        """Metrics of ``source``; ``groups``: a group id per row of the source (``compile(group_by=...)``)."""
        batch_size = check_batch_size(batch_size, "evaluate")
        self.loss.masked = bool(source.has_nan_labels)
        return self.compute_metrics(*self._gathered(source, batch_size), prefix=prefix, groups=groups)

    # ---------------------------------------------------------------- training
    def fit(self, source: Source, *, batch_size: int = 256, epochs: int = 1, verbose: int = 1,
            initial_epoch: int = 0, validation: Source | Callable[[], dict] | None = None, shuffle: bool = True,
            callbacks: Sequence[Callback] | None = None, eval_batch_size: int = 4096, seed: int | None = None,
            resume: Any = None, validation_groups: Any = None) -> History:
        """Train on ``source``; ``validation`` is a source or a callable returning metric logs (prefixed ``val_``),
        ``validation_groups`` a group id per validation row for the grouped metrics (``gauc``).

        ``seed`` seeds shuffling and dropout for this call (the global RNG state is restored afterwards); ``resume``
        is a checkpoint path or dict (see :class:`~ctrkit.callbacks.BackupAndRestore`).
        """
        name = type(self.model).__name__
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(f"{name}.fit: this model is already being trained in another thread. Train one model "
                               "object from one thread at a time.")
        model = self.model
        was_training = model.training
        try:
            self._fit_thread = threading.get_ident()
            self.loss.masked = bool(source.has_nan_labels) or bool(
                validation is not None and not callable(validation) and validation.has_nan_labels)
            if model._fresh_weights and self.init_output_bias and resume is None and len(source):
                labels = source.labels() if hasattr(source, "labels") else None
                if labels is not None:
                    model.init_output_bias(labels, getattr(source, "w", None))
            model._fresh_weights = False
            if self.loss.masked:
                warnings.warn("fit: some labels are NaN; they are treated as missing and left out of that task's "
                              "loss and metrics.", stacklevel=3)
            devices = [model.device.index or 0] if model.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                if seed is not None:
                    torch.manual_seed(int(seed))
                self.history = self._fit(source, batch_size, epochs, verbose, initial_epoch, validation, shuffle,
                                         callbacks, eval_batch_size, seed, resume, validation_groups)
            return self.history
        except BaseException as e:  # a callback raised, or KeyboardInterrupt: say where, then re-raise
            state = self._fit_state
            if state is not None:
                self.stop_training = True
                self.stop_reason = (f"fit: interrupted by {type(e).__name__} in epoch {state['epoch'] + 1}; the "
                                    "weights are those after the last completed step. Continue with fit(..., "
                                    "resume_from=...) from a BackupAndRestore checkpoint, or fit again.")
            raise
        finally:
            self._fit_state = None
            self._good_state = None
            model.train(was_training)  # the mode the model had before fit, however fit ended
            self._fit_thread = None
            self._lock.release()

    def _fit(self, source: Source, batch_size: int, epochs: int, verbose: int, initial_epoch: int,
             validation: Any, shuffle: bool, callbacks: Sequence[Callback] | None, eval_batch_size: int,
             seed: int | None, resume: Any, validation_groups: Any = None) -> History:
        model = self.model
        batch_size = check_batch_size(batch_size, "fit")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}.")
        device = model.device
        dist = Distribution(model)
        callbacks = list(callbacks or [])
        ckpt = resume_checkpoint(self, resume, callbacks, dist, batch_size)
        if ckpt is not None:
            seed = int(ckpt["shuffle_seed"])
        elif seed is None:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        seed = int(seed)
        if dist.rank > 0:  # different dropout draws per rank; rank 0 draws as a single process would
            torch.manual_seed(mix_seed(seed, dist.rank))
        total = len(source)
        in_memory = isinstance(source, ArraySource)
        if in_memory:
            if dist.world > 1:
                if total < dist.world:
                    raise ValueError(f"fit: {total} training rows cannot be split over {dist.world} processes.")
                from ..distributed import shard_indices
                source = source.take(shard_indices(total, dist.rank, dist.world, seed))
            if device.type != "cpu":  # the whole (in-memory) data set goes to the device once
                source = source.to(device)
            n = len(source)
        else:
            lo, hi = source.shard_range(dist.rank, dist.world)
            n = hi - lo
        steps = epoch_steps(total // dist.world, batch_size)  # the same on every rank; no last batch of one row
        if steps == 0 and total > 0:
            raise ValueError(f"fit: {total} training rows cannot be split over {dist.world} processes.")
        history = History()
        cbs: list[Callback] = [history]
        if verbose and dist.is_main:
            cbs.append(ProgressBar(verbose=verbose))
        collective = bool(getattr(model, "collective_forward", False))   # sharded tables: saving is a collective
        cbs.extend(cb for cb in callbacks if dist.is_main or not getattr(cb, "main_process_only", False)
                   or (collective and getattr(cb, "collective_when_sharded", False)))
        cbs.sort(key=lambda cb: bool(getattr(cb, "run_last", False)))  # stable: checkpointing callbacks last
        for cb in cbs:
            if hasattr(cb, "set_trainer"):
                cb.set_trainer(self)
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "verbose": verbose, "samples": n,
                  "world_size": dist.world, "rank": dist.rank}
        cblist = CallbackList(cbs, model, params)
        self.stop_training, self.stop_reason = False, None
        opt, clip, balancer = self.optimizer, self.grad_clip_norm, self.balancer
        params_to_clip = [p for p in model.parameters() if p.requires_grad]
        T = len(model.task_names)
        balancer.check_world(dist.world)
        forward = dist.wrap(model)
        keep_logits = bool(self.metrics)  # training metrics need the epoch's predictions
        self._fit_state = {"seed": seed, "dist": dist, "batch_size": batch_size, "steps": steps,
                           "callbacks": callbacks, "history": history, "epoch": initial_epoch, "sums": None}
        cblist.on_train_begin({})
        first_step = 0
        ckpt_sums: torch.Tensor | None = None
        if ckpt is not None:
            initial_epoch, first_step, ckpt_sums = restore_after_begin(self, ckpt, dist)
        self._good_state, self._good_epoch = self._snapshot(), initial_epoch
        for epoch in range(initial_epoch, epochs):
            if dist.world > 1:  # a callback on one rank may have asked to stop: stop every rank together
                from ..distributed import all_reduce_max
                self.stop_training = all_reduce_max(float(self.stop_training)) > 0
            if self.stop_training:
                break
            t0 = time.perf_counter()
            epoch_logs: dict[str, Any] = {}
            cblist.on_epoch_begin(epoch, epoch_logs)
            first = first_step if epoch == initial_epoch else 0
            if in_memory:
                batches = source.batches(batch_size, shuffle=shuffle, seed=seed, epoch=epoch, rank=dist.rank,
                                         start_step=first, steps=steps)
            else:
                batches = source.batches(batch_size, shuffle=shuffle, seed=seed, epoch=epoch, rank=dist.rank,
                                         world_size=dist.world, start_step=first)
            model.train()
            sums = torch.zeros(T + 1, device=device)
            if first:
                assert ckpt_sums is not None  # a run starts mid-epoch only when resumed from a checkpoint
                sums += ckpt_sums.to(device)
            self._fit_state.update(epoch=epoch, sums=sums)
            train_logits = torch.empty(n, model.output_width, device=device) if keep_logits else None
            ys: list[torch.Tensor] = []
            ws: list[torch.Tensor] = []
            s = first * batch_size
            for step, (xb, yb, wb) in enumerate(batches, first):
                e = s + len(yb)
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_begin(step, {})
                if xb_device(xb) != device:
                    xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                    wb = None if wb is None else wb.to(device, non_blocking=True)
                total_loss, per_task, out = model.train_step(forward, xb, yb, wb, self.loss)
                opt.zero_grad(set_to_none=True)
                loss = balancer.backward(per_task, total_loss, model.regularization_loss())
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params_to_clip, clip)
                opt.step()
                balancer.after_step()
                with torch.no_grad():
                    sums[0] += loss.detach() * (e - s)
                    sums[1:] += per_task.detach() * (e - s)
                    if train_logits is not None and out is not None:  # i.e. keep_logits
                        train_logits[s:e] = model.stack_outputs(out).detach()
                        ys.append(yb)
                        if wb is not None:
                            ws.append(wb)
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_end(step, {"loss": loss.detach(), "size": e - s})
                s = e
                if self.stop_training and dist.world == 1:  # distributed: every rank stops after the epoch
                    break
            if dist.world > 1:
                from ..distributed import all_reduce_max, all_reduce_sum
                sums = all_reduce_sum(sums)
                self.stop_training = all_reduce_max(float(self.stop_training)) > 0
            means = (sums / max(total, 1)).cpu().tolist()
            logs: dict[str, Any] = {"loss": means[0]}
            if T > 1:
                for i, t in enumerate(model.task_names):
                    logs[f"{t}_loss"] = means[1 + i]
            logs.update(balancer.epoch_logs())
            if train_logits is not None and ys and not self.stop_training:
                logs.update(self._train_metrics(train_logits[first * batch_size:s], torch.cat(ys),
                                                torch.cat(ws) if ws else None, dist))
            if validation is not None and not self.stop_training:
                cblist.on_test_begin({})   # Keras' hooks around validation (WeightAveraging swaps its average in)
                if callable(validation):
                    logs.update({f"val_{k}": v for k, v in validation().items()})
                else:
                    logs.update(self.compute_metrics(*self._gathered(validation, eval_batch_size, dist),
                                                     prefix="val_", groups=validation_groups))
                cblist.on_test_end({k: v for k, v in logs.items() if k.startswith("val_")})
            self._end_epoch(cblist, epoch, epoch_logs, logs, t0)
        cblist.on_train_end({})
        history.params = params
        self._fit_state = None
        return history

    def _end_epoch(self, cblist: Any, epoch: int, epoch_logs: dict, logs: dict, t0: float) -> None:
        """The learning rate used and the wall time go into the logs; a NaN or infinite loss (or weights) ends
        training after this epoch and restores the weights of the last good epoch, with a warning saying so and
        what to do; otherwise the weights are remembered as the last good ones. Then the callbacks see the logs."""
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])  # the rate used during this epoch
        logs["epoch_seconds"] = time.perf_counter() - t0
        loss = logs["loss"]
        bad = [] if not math.isfinite(loss) else nonfinite_parameters(self.model)
        if not math.isfinite(loss) or bad:
            by_callback = bool(self.stop_training and self.stop_reason)
            message = self._recover(epoch, loss, bad, by_callback)
            if by_callback:  # a callback (TerminateOnNaN) stopped and said why
                self.stop_reason = f"{self.stop_reason} {message[5].upper()}{message[6:]}"  # drop "fit: "
            else:
                self.stop_reason = message
            self.stop_training = True
            warnings.warn(message, RuntimeWarning, stacklevel=5)   # the user's fit call
        else:
            self._good_state, self._good_epoch = self._snapshot(), epoch + 1
        epoch_logs.update(logs)
        cblist.on_epoch_end(epoch, epoch_logs)

    def _train_metrics(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
                       dist: Distribution) -> dict[str, float]:
        """Compiled metrics over the epoch's training predictions (all ranks' rows in a distributed run).

        After a mid-epoch resume only the rows trained since the resume are counted."""
        logits, y = logits.cpu(), y.cpu()
        w = None if w is None else w.cpu()
        if dist.world > 1:
            from ..distributed import all_gather_rows
            logits, y = all_gather_rows(logits), all_gather_rows(y)
            w = None if w is None else all_gather_rows(w)
        metrics = self.compute_metrics(logits, y, w)
        # the training losses are the epoch's batch means, already in the logs; every compiled metric is kept
        # (also those whose name ends in "loss", such as "logloss")
        names = self.model.task_names
        means = {"loss", *(log_key(names, t, "loss") for t in names)}
        return {k: v for k, v in metrics.items() if k not in means}

    def checkpoint_state(self, epoch: int, steps_done: int) -> dict[str, Any]:
        """Everything needed to resume after ``steps_done`` steps of ``epoch`` (see :mod:`.resume`)."""
        return checkpoint_state(self, epoch, steps_done)
