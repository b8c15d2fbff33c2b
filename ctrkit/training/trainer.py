"""The training loop. ``model.fit/evaluate/predict`` are a thin facade over :class:`Trainer`.

The loop never asks which model it runs: it calls ``model(batch)`` for a dict of logits per task,
``model.compute_loss(...)`` for the loss (ESMM-like models override it) and ``model.regularization_loss()``;
the compiled task balancer (:mod:`ctrkit.training.balancing`) turns the per-task losses into gradients.
Batches are slices of columnar tensors shuffled once per epoch; batch losses stay on the device and are
read once per epoch; metrics are computed on the whole epoch's predictions, per task.

Besides in-memory :class:`TensorData`, ``fit`` / ``evaluate`` / ``predict`` take a
:class:`~ctrkit.data.DataSource` (an on-disk store) that yields whole batches read ahead by a background
thread. Under ``torchrun`` the model is wrapped in ``DistributedDataParallel``, every rank trains on its own
shard, and losses / metrics are reduced over all ranks (see :mod:`ctrkit.distributed`). A run can be resumed
from a :class:`~ctrkit.callbacks.BackupAndRestore` checkpoint: shuffling depends only on ``(seed, epoch)``,
so the resumed run replays the same batches.
"""
from __future__ import annotations


import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..callbacks import Callback, CallbackList, History, ProgressBar
from ..data.inputs import TensorData
from ..data.store import DataSource
from ..metrics import get_metric

__all__ = ["Trainer"]


def _check_batch_size(batch_size: Any, where: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}.")
    return int(batch_size)


_MASK62 = (1 << 62) - 1


def _mix(*parts: int) -> int:
    """A 62-bit seed from several ints (stable across processes)."""
    import numpy as _np
    return int(_np.random.SeedSequence([int(p) & _MASK62 for p in parts]).generate_state(2, _np.uint64)[0]) & _MASK62


def _epoch_perm(n: int, seed: int, epoch: int, rank: int) -> torch.Tensor:
    """The epoch's shuffling of in-memory rows: a function of (seed, epoch, rank) only (resumable)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch, rank)))


def _memory_batches(xd: TensorData, yd: torch.Tensor, wd: torch.Tensor | None, n: int, batch_size: int,
                    steps: int, first: int) -> Iterator[tuple]:
    """``(start, stop, x, y, w)`` slices (views); the last of the ``steps`` batches takes the rows left over."""
    for step in range(first, steps):
        s = step * batch_size
        e = n if step == steps - 1 else s + batch_size
        yield s, e, xd.slice(s, e), yd[s:e], None if wd is None else wd[s:e]


def _source_batches(batches: Iterator[tuple], start: int, ye: torch.Tensor | None, we: torch.Tensor | None,
                    device: torch.device) -> Iterator[tuple]:
    """``(start, stop, x, y, w)`` from a data source's batches; keeps the labels when ``ye`` is given."""
    s = start
    for xb, yb, wb in batches:
        e = s + len(yb)
        if ye is not None:
            ye[s:e] = yb
            if we is not None and wb is not None:
                we[s:e] = wb
        if device.type != "cpu":
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            wb = None if wb is None else wb.to(device, non_blocking=True)
        yield s, e, xb, yb, wb
        s = e


class _Dist:
    """Rank / world size of this fit, joining torchrun's process group when the environment describes one."""

    def __init__(self, model: Any) -> None:
        from .. import distributed as D
        if not D.is_distributed() and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            D.init_from_env(device=model.device)
        self.world = D.get_world_size()
        self.rank = D.get_rank()
        self.is_main = self.rank == 0
        if self.world > 1 and getattr(getattr(model, "embedding", None), "sparse", False):
            raise ValueError(f"{type(model).__name__}.fit: sparse embedding gradients (sparse=True) are not supported "
                             "with DistributedDataParallel yet. Build the model with sparse=False for multi-process "
                             "training (see docs/large_data_and_distributed.md).")

    def wrap(self, model: Any) -> Any:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel
        dev = model.device
        ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


class Trainer:
    """Runs fit / evaluate / predict for a compiled model.

    Args:
        model: a :class:`~ctrkit.models.BaseModel` after ``compile``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    # ---------------------------------------------------------------- prediction
    @torch.inference_mode()
    def predict_logits(self, data: TensorData | DataSource, batch_size: int = 4096) -> torch.Tensor:
        """Raw model outputs ``(N, output_width)`` in task order (logits for binary tasks; ``(N, T)`` unless a
        task is multiclass, which takes C columns), on the CPU."""
        model = self.model
        batch_size = _check_batch_size(batch_size, "predict")
        if isinstance(data, DataSource):
            return self._predict_source(data, 0, len(data), batch_size)[0]
        was_training = model.training
        model.eval()
        device = model.device
        n = len(data)
        if device.type != "cpu":  # in-memory data goes to the device once; outputs come back once (no sync per batch)
            data = data.to(device, non_blocking=True)
        out = torch.empty(n, model.output_width, device=device)
        try:
            with model.folded_inference(n):
                for s in range(0, n, batch_size):
                    out[s:s + batch_size] = model.stack_outputs(model(data.slice(s, min(s + batch_size, n)))).float()
        finally:
            model.train(was_training)
        return out.cpu()

    @torch.inference_mode()
    def _predict_source(self, source: DataSource, lo: int, hi: int, batch_size: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits, labels and weights of rows ``[lo, hi)`` of a data source, read in order with read-ahead."""
        model = self.model
        was_training = model.training
        model.eval()
        device = model.device
        T = len(model.task_names)
        out, ys = torch.empty(hi - lo, model.output_width), torch.empty(hi - lo, T)
        ws = torch.empty(hi - lo) if source.has_sample_weight else None
        s = 0
        try:
            with model.folded_inference(hi - lo):
                for xb, yb, wb in source.iter_range(lo, hi, batch_size):
                    e = s + len(yb)
                    ys[s:e] = yb
                    if ws is not None:
                        ws[s:e] = wb
                    if device.type != "cpu":
                        xb = xb.to(device, non_blocking=True)
                    logits = model(xb)
                    out[s:e] = model.stack_outputs(logits).float().cpu()
                    s = e
        finally:
            model.train(was_training)
        return out, ys, ws

    def _gathered_predictions(self, data: Any, batch_size: int, dist: _Dist | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits, labels, weights of a whole evaluation set. Distributed: each rank predicts a contiguous shard
        and the shards are all-gathered in rank order, so every rank gets the full set's predictions."""
        from ..distributed import all_gather_rows, shard_range
        world, rank = (dist.world, dist.rank) if dist is not None else (1, 0)
        if isinstance(data, DataSource):
            lo, hi = shard_range(len(data), rank, world)
            logits, y, w = self._predict_source(data, lo, hi, batch_size)
            if world > 1:
                logits, y = all_gather_rows(logits), all_gather_rows(y)
                w = None if w is None else all_gather_rows(w)
            return logits, y, w
        x, y, w = data
        if world == 1:
            return self.predict_logits(x, batch_size), y, w
        lo, hi = shard_range(len(x), rank, world)
        return all_gather_rows(self.predict_logits(x.slice(lo, hi), batch_size)), y, w

    def compute_metrics(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None,
                        prefix: str = "") -> dict[str, float]:
        """Loss and compiled metrics per task over whole arrays (not batch averages)."""
        model = self.model
        logs: dict[str, float] = {}
        with torch.no_grad():
            total, per_task = model.compute_loss(model.split_outputs(logits), y, w)
        logs[prefix + "loss"] = float(total)
        probs = {t: p.numpy() for t, p in model.split_outputs(model.logits_to_predictions(logits)).items()}
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
                fn = spec.multiclass if typ == "multiclass" else spec.fn
                logs[f"{prefix}{t}_{name}"] = fn(ynp[mask, i], probs[t][mask], None if wnp is None else wnp[mask])
        return logs

    def evaluate(self, data: TensorData | DataSource, y: torch.Tensor | None = None, w: torch.Tensor | None = None,
                 batch_size: int = 4096, prefix: str = "") -> dict[str, float]:
        if isinstance(data, DataSource):
            return self.compute_metrics(*self._gathered_predictions(data, _check_batch_size(batch_size, "evaluate")),
                                        prefix=prefix)
        return self.compute_metrics(self.predict_logits(data, batch_size), y, w, prefix)

    # ---------------------------------------------------------------- training
    def fit(self, data: TensorData | DataSource, y: torch.Tensor | None = None, *,
            sample_weight: torch.Tensor | None = None, batch_size: int = 256, epochs: int = 1, verbose: int = 1,
            initial_epoch: int = 0,
            validation: tuple[TensorData, torch.Tensor, torch.Tensor | None] | DataSource | None = None,
            shuffle: bool = True, callbacks: Sequence[Callback] | None = None,
            eval_batch_size: int = 4096, seed: int | None = None, resume: Any = None) -> History:
        """Train. ``data`` is a :class:`TensorData` with labels ``y`` or a :class:`DataSource` (labels inside).

        ``seed`` fixes the shuffling (per epoch, from ``(seed, epoch)``) and the distributed shards; ``resume``
        is a checkpoint path or dict (see :class:`~ctrkit.callbacks.BackupAndRestore`).
        """
        model = self.model
        batch_size = _check_batch_size(batch_size, "fit")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}.")
        device = model.device
        dist = _Dist(model)
        callbacks = list(callbacks or [])
        ckpt = self._resume_checkpoint(resume, callbacks, dist, batch_size)
        if ckpt is not None:
            seed = int(ckpt["shuffle_seed"])
        elif seed is None:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        seed = int(seed)
        if dist.rank > 0:  # different dropout draws per rank; rank 0 draws as a single process would
            torch.manual_seed(_mix(seed, dist.rank))
        source = data if isinstance(data, DataSource) else None
        if source is None:
            total = len(data)
            if dist.world > 1:
                if total < dist.world:
                    raise ValueError(f"fit: {total} training rows cannot be split over {dist.world} processes.")
                from ..distributed import shard_indices
                idx = shard_indices(total, dist.rank, dist.world, seed)
                data, y = data.take(idx), y.index_select(0, idx)
                sample_weight = None if sample_weight is None else sample_weight.index_select(0, idx)
            n = len(data)
            if device.type != "cpu":  # the whole (in-memory) data set goes to the device once
                data, y = data.to(device), y.to(device)
                sample_weight = None if sample_weight is None else sample_weight.to(device)
        else:
            total = len(source)
            lo, hi = source.shard_range(dist.rank, dist.world)
            n = hi - lo
        steps = math.ceil((total // dist.world) / batch_size)  # the same on every rank
        if steps == 0 and total > 0:
            raise ValueError(f"fit: {total} training rows cannot be split over {dist.world} processes.")
        history = History()
        cbs: list[Callback] = [history]
        if verbose and dist.is_main:
            cbs.append(ProgressBar(verbose=verbose))
        cbs.extend(cb for cb in callbacks if dist.is_main or not getattr(cb, "main_process_only", False))
        cbs.sort(key=lambda cb: bool(getattr(cb, "run_last", False)))  # stable: checkpointing callbacks last
        for cb in cbs:
            if hasattr(cb, "set_trainer"):
                cb.set_trainer(self)
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "verbose": verbose, "samples": n,
                  "world_size": dist.world, "rank": dist.rank}
        cblist = CallbackList(cbs, model, params)
        model.stop_training = False
        model.stop_reason = None
        opt = model.optimizer
        clip = model.compiled_grad_clip_norm
        params_to_clip = [p for p in model.parameters() if p.requires_grad]
        T = len(model.task_names)
        balancer = getattr(model, "task_balancer", None)
        if balancer is None:
            from .balancing import FixedWeights
            balancer = FixedWeights()
        balancer.check_world(dist.world)
        forward = dist.wrap(model)
        keep_logits = bool(model.compiled_metrics)  # training metrics need the epoch's predictions
        self._fit_state = {"seed": seed, "dist": dist, "batch_size": batch_size, "steps": steps,
                           "callbacks": callbacks, "history": history, "epoch": initial_epoch, "sums": None}
        cblist.on_train_begin({})
        first_step, ckpt_sums = 0, None
        if ckpt is not None:
            initial_epoch, first_step, ckpt_sums = self._restore_after_begin(ckpt, dist)
        epoch = initial_epoch
        for epoch in range(initial_epoch, epochs):
            if dist.world > 1:  # a callback on one rank may have asked to stop: stop every rank together
                from ..distributed import all_reduce_max
                model.stop_training = all_reduce_max(float(model.stop_training)) > 0
            if model.stop_training:
                break
            t0 = time.perf_counter()
            epoch_logs: dict[str, Any] = {}
            cblist.on_epoch_begin(epoch, epoch_logs)
            first = first_step if epoch == initial_epoch else 0
            if source is None:
                if shuffle and n > 1:
                    perm = _epoch_perm(n, seed, epoch, dist.rank).to(device)
                    xd, yd = data.take(perm), y.index_select(0, perm)
                    wd = None if sample_weight is None else sample_weight.index_select(0, perm)
                else:
                    xd, yd, wd = data, y, sample_weight
                batches = _memory_batches(xd, yd, wd, n, batch_size, steps, first)
            else:
                yd = torch.empty(n, T) if keep_logits else None
                wd = torch.empty(n) if keep_logits and source.has_sample_weight else None
                batches = _source_batches(source.batches(batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                                         rank=dist.rank, world_size=dist.world, start_step=first),
                                          first * batch_size, yd, wd, device)
            model.train()
            sums = torch.zeros(T + 1, device=device)
            if first:
                sums += ckpt_sums.to(device)
            self._fit_state.update(epoch=epoch, sums=sums)
            train_logits = torch.empty(n, model.output_width, device=device) if keep_logits else None
            for step, (s, e, xb, yb, wb) in enumerate(batches, first):
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_begin(step, {})
                out = forward(xb)
                total_loss, per_task = model.compute_loss(out, yb, wb)
                opt.zero_grad(set_to_none=True)
                loss = balancer.backward(per_task, total_loss, model.regularization_loss())
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(params_to_clip, clip)
                opt.step()
                balancer.after_step()
                with torch.no_grad():
                    sums[0] += loss.detach() * (e - s)
                    sums[1:] += per_task.detach() * (e - s)
                    if keep_logits:
                        train_logits[s:e] = model.stack_outputs(out).detach()
                if cblist.wants_batch_hooks:
                    cblist.on_train_batch_end(step, {"loss": loss.detach(), "size": e - s})
                if model.stop_training and dist.world == 1:  # distributed: every rank stops after the epoch
                    break
            if dist.world > 1:
                from ..distributed import all_reduce_max, all_reduce_sum
                sums = all_reduce_sum(sums)
                model.stop_training = all_reduce_max(float(model.stop_training)) > 0
            sums = (sums / max(total, 1)).cpu().tolist()
            logs: dict[str, Any] = {"loss": sums[0]}
            if T > 1:
                for i, t in enumerate(model.task_names):
                    logs[f"{t}_loss"] = sums[1 + i]
            logs.update(balancer.epoch_logs())
            if keep_logits and not model.stop_training:
                logs.update(self._train_metrics(train_logits, yd, wd, first * batch_size, dist))
            if validation is not None and not model.stop_training:
                logs.update(self.compute_metrics(*self._gathered_predictions(validation, eval_batch_size, dist),
                                                 prefix="val_"))
            end_epoch(model, cblist, opt, epoch, epoch_logs, logs, t0)
        cblist.on_train_end({})
        history.params = params
        self._fit_state = None
        return history

    # ---------------------------------------------------------------- distributed metrics, checkpoints
    def _train_metrics(self, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, first_row: int,
                       dist: _Dist) -> dict[str, float]:
        """Compiled metrics over the epoch's training predictions (all ranks' rows in a distributed run).

        After a mid-epoch resume only the rows trained since the resume are counted."""
        logits, y = logits[first_row:].cpu(), y[first_row:].cpu()
        w = None if w is None else w[first_row:].cpu()
        if dist.world > 1:
            from ..distributed import all_gather_rows
            logits, y = all_gather_rows(logits), all_gather_rows(y)
            w = None if w is None else all_gather_rows(w)
        metrics = self.compute_metrics(logits, y, w)
        return {k: v for k, v in metrics.items() if not k.endswith("loss")}

    def checkpoint_state(self, epoch: int, steps_done: int) -> dict[str, Any]:
        """Everything needed to resume after ``steps_done`` steps of ``epoch`` (a collective when distributed).

        Called by :class:`~ctrkit.callbacks.BackupAndRestore` from a batch or epoch hook of ``fit``.
        """
        from ..io.checkpoint import capture_host_rng
        st = self._fit_state
        if st is None:
            raise RuntimeError("Trainer.checkpoint_state: only available while fit is running.")
        model, dist = self.model, st["dist"]
        sums = st["sums"]
        if steps_done >= st["steps"]:
            epoch, steps_done, sums = epoch + 1, 0, None
        rng = torch.random.get_rng_state().to(torch.int64).unsqueeze(0)
        cuda_rng = None
        if model.device.type == "cuda":
            cuda_rng = torch.cuda.get_rng_state(model.device).to(torch.int64).unsqueeze(0)
        sums = None if sums is None else sums.detach().cpu().unsqueeze(0)
        if dist.world > 1:  # each rank's RNG and partial loss sums, in rank order
            from ..distributed import all_gather_rows
            rng = all_gather_rows(rng)
            cuda_rng = None if cuda_rng is None else all_gather_rows(cuda_rng)
            sums = None if sums is None else all_gather_rows(sums)
        cb_states = {}
        if dist.is_main:  # rank 0 runs every callback and writes the file
            for i, cb in enumerate(st["callbacks"]):
                if callable(getattr(cb, "state_dict", None)):
                    cb_states[f"{i}:{type(cb).__name__}"] = cb.state_dict()
        hist = st["history"]
        return {
            "model_class": type(model).__name__,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": model.optimizer.state_dict(),
            "task_balancer": model.task_balancer.state_dict() if getattr(model, "task_balancer", None) else {},
            "callbacks": cb_states,
            "history": {"epoch": [int(e) for e in getattr(hist, "epoch", [])],
                        "history": {k: [_plain(v) for v in vals] for k, vals in getattr(hist, "history", {}).items()}},
            "epoch": int(epoch), "step": int(steps_done), "loss_sums": sums,
            "stop_training": bool(model.stop_training),
            "shuffle_seed": int(st["seed"]), "batch_size": int(st["batch_size"]), "steps_per_epoch": int(st["steps"]),
            "world_size": int(dist.world),
            "rng": {"torch": rng, "cuda": cuda_rng, **capture_host_rng()},
        }

    def _resume_checkpoint(self, resume: Any, callbacks: list, dist: _Dist, batch_size: int) -> dict | None:
        """Load the checkpoint to resume from (explicit, or a BackupAndRestore file that exists) and put the
        weights and optimizer state in place (before callbacks build LR schedulers on the optimizer)."""
        from ..exceptions import ModelFormatError
        from ..io.checkpoint import load_checkpoint
        path = resume
        if path is None:
            from ..callbacks import BackupAndRestore
            for cb in callbacks:
                if isinstance(cb, BackupAndRestore) and os.path.isfile(cb.filepath):
                    path = cb.filepath
                    break
        if dist.world > 1:  # every rank must resume, or none
            from ..distributed import all_reduce_max
            have = 1.0 if path is not None else 0.0
            if all_reduce_max(have) != -all_reduce_max(-have):
                raise RuntimeError("fit: the checkpoint to resume from exists on some ranks only. Put it on storage "
                                   "every rank can read (a shared file system).")
        if path is None:
            return None
        ckpt = dict(path) if isinstance(path, Mapping) else load_checkpoint(path)
        model = self.model
        where = f"fit(resume_from={path if not isinstance(path, Mapping) else 'dict'!r})"
        if ckpt.get("model_class") != type(model).__name__:
            raise ModelFormatError(f"{where}: the checkpoint is of a {ckpt.get('model_class')} but the model is a "
                                   f"{type(model).__name__}. Build the same model to resume.")
        if int(ckpt["world_size"]) != dist.world or int(ckpt["batch_size"]) != batch_size:
            raise ValueError(f"{where}: the checkpoint was written with batch_size={ckpt['batch_size']} on "
                             f"{ckpt['world_size']} process(es); this run has batch_size={batch_size} on {dist.world}. "
                             "Resume with the same batch_size and number of processes.")
        try:
            model.load_state_dict(ckpt["model"], strict=True)
        except RuntimeError as e:
            raise ModelFormatError(f"{where}: the checkpoint's weights do not fit this model ({str(e)[:300]}). "
                                   "Build the model with the same arguments to resume.") from None
        model.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("task_balancer") and getattr(model, "task_balancer", None) is not None:
            model.task_balancer.load_state_dict(ckpt["task_balancer"])
        return ckpt

    def _restore_after_begin(self, ckpt: dict, dist: _Dist) -> tuple[int, int, torch.Tensor | None]:
        """Restore history, callback states and RNG states; return (epoch, step, partial loss sums)."""
        from ..io.checkpoint import restore_host_rng
        st = self._fit_state
        hist = st["history"]
        hist.epoch = list(ckpt["history"]["epoch"])
        hist.history = {k: list(v) for k, v in ckpt["history"]["history"].items()}
        states = ckpt.get("callbacks") or {}
        for i, cb in enumerate(st["callbacks"]):
            key = f"{i}:{type(cb).__name__}"
            if key in states and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(states[key])
        rng = ckpt["rng"]
        torch.random.set_rng_state(rng["torch"][dist.rank].to(torch.uint8))
        if rng.get("cuda") is not None and self.model.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"][dist.rank].to(torch.uint8), self.model.device)
        restore_host_rng(rng)
        self.model.stop_training = bool(ckpt.get("stop_training", False))  # e.g. EarlyStopping had fired
        sums = ckpt.get("loss_sums")
        return int(ckpt["epoch"]), int(ckpt["step"]), None if sums is None else sums[dist.rank]


def end_epoch(model: Any, cblist: Any, opt: Any, epoch: int, epoch_logs: dict, logs: dict, t0: float) -> None:
    """The end of an epoch in every trainer: the learning rate used and the wall time go into the logs, a NaN or
    infinite loss ends training after this epoch (with a warning saying what to do), and the callbacks see the
    logs."""
    logs["lr"] = float(opt.param_groups[0]["lr"])  # the rate used during this epoch
    logs["epoch_seconds"] = time.perf_counter() - t0
    loss = logs["loss"]
    if not math.isfinite(loss) and not model.stop_training:
        model.stop_training = True
        model.stop_reason = (f"fit: the training loss became {loss} in epoch {epoch + 1}; training stopped. Lower "
                             "the learning rate, set compile(grad_clip_norm=...), or check the inputs. Use the "
                             "TerminateOnNaN callback to stop at the first bad step.")
        warnings.warn(model.stop_reason, RuntimeWarning, stacklevel=4)   # the user's fit call
    epoch_logs.update(logs)
    cblist.on_epoch_end(epoch, epoch_logs)


def _plain(v: Any) -> Any:
    """History values as plain Python numbers (checkpoints are read with ``weights_only=True``)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)
