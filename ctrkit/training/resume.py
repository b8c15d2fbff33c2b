"""Resuming a fit: the checkpoint's content (``checkpoint_state``), reading it back before training starts
(``resume_checkpoint``) and restoring the loop's state after the callbacks have begun (``restore_after_begin``);
and the process layout of a fit (:class:`Distribution`). The file format lives in :mod:`ctrkit.io.checkpoint`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from ..exceptions import ModelFormatError
from ..io.checkpoint import capture_host_rng, load_checkpoint, restore_host_rng
from .sharding import load_tables, tables_state

__all__ = ["Distribution", "checkpoint_state", "resume_checkpoint", "restore_after_begin"]


class Distribution:
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
        sharded = getattr(getattr(model, "trainer", None), "sharded", None)
        if sharded is not None:   # TorchRec's DistributedModelParallel: sharded tables, data-parallel rest
            return sharded
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel
        dev = model.device
        ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def checkpoint_state(trainer: Any, epoch: int, steps_done: int) -> dict[str, Any]:
    """Everything needed to resume after ``steps_done`` steps of ``epoch`` (a collective when distributed).

    Called by :class:`~ctrkit.callbacks.BackupAndRestore` (through ``Trainer.checkpoint_state``) from a batch or
    epoch hook of ``fit``.
    """

    st = trainer._fit_state
    if st is None:
        raise RuntimeError("Trainer.checkpoint_state: only available while fit is running.")
    model, dist = trainer.model, st["dist"]
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
    extra = {}
    if trainer.sharded is not None:   # TorchRec's tables: written by every process with torch.distributed.checkpoint,
        extra["sharded"] = tables_state(model)   # beside the file (BackupAndRestore)
    return {
        **extra,
        "model_class": type(model).__name__,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items() if not hasattr(v, "local_shards")},
        "optimizer": trainer.optimizer.state_dict(),
        "task_balancer": trainer.balancer.state_dict(),
        "callbacks": cb_states,
        "history": {"epoch": [int(e) for e in getattr(hist, "epoch", [])],
                    "history": {k: [_plain(v) for v in vals] for k, vals in getattr(hist, "history", {}).items()}},
        "epoch": int(epoch), "step": int(steps_done), "loss_sums": sums,
        "stop_training": bool(trainer.stop_training),
        "shuffle_seed": int(st["seed"]), "batch_size": int(st["batch_size"]), "steps_per_epoch": int(st["steps"]),
        "world_size": int(dist.world),
        "rng": {"torch": rng, "cuda": cuda_rng, **capture_host_rng()},
    }


def resume_checkpoint(trainer: Any, resume: Any, callbacks: list, dist: Distribution, batch_size: int) -> dict | None:
    """Load the checkpoint to resume from (explicit, or a BackupAndRestore file that exists) and put the
    weights and optimizer state in place (before callbacks build LR schedulers on the optimizer)."""
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
    model = trainer.model
    where = f"fit(resume_from={path if not isinstance(path, Mapping) else 'dict'!r})"
    if ckpt.get("model_class") != type(model).__name__:
        raise ModelFormatError(f"{where}: the checkpoint is of a {ckpt.get('model_class')} but the model is a "
                               f"{type(model).__name__}. Build the same model to resume.")
    if int(ckpt["world_size"]) != dist.world or int(ckpt["batch_size"]) != batch_size:
        raise ValueError(f"{where}: the checkpoint was written with batch_size={ckpt['batch_size']} on "
                         f"{ckpt['world_size']} process(es); this run has batch_size={batch_size} on {dist.world}. "
                         "Resume with the same batch_size and number of processes.")
    sharded = getattr(trainer, "sharded", None)
    try:
        model.load_state_dict(ckpt["model"], strict=sharded is None)
        if sharded is not None:
            _load_tables(trainer, ckpt, where)
    except RuntimeError as e:
        raise ModelFormatError(f"{where}: the checkpoint's weights do not fit this model ({str(e)[:300]}). "
                               "Build the model with the same arguments to resume.") from None
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("task_balancer"):
        trainer.balancer.load_state_dict(ckpt["task_balancer"])
    return ckpt


def _load_tables(trainer: Any, ckpt: dict, where: str) -> None:
    """A sharded model's tables and their optimizer state, from the directory the checkpoint names."""
    path = ckpt.get("tables_dir")
    if not path or not os.path.isdir(path):
        raise ModelFormatError(f"{where}: the model's tables are sharded but the checkpoint names no tables "
                               f"directory that exists ({path!r}); it was not written by BackupAndRestore for this "
                               "sharded model.")
    load_tables(trainer.model, path)


def restore_after_begin(trainer: Any, ckpt: dict, dist: Distribution) -> tuple[int, int, torch.Tensor | None]:
    """Restore history, callback states and RNG states; return (epoch, step, partial loss sums)."""
    st = trainer._fit_state
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
    if rng.get("cuda") is not None and trainer.model.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"][dist.rank].to(torch.uint8), trainer.model.device)
    restore_host_rng(rng)
    trainer.stop_training = bool(ckpt.get("stop_training", False))  # e.g. EarlyStopping had fired
    sums = ckpt.get("loss_sums")
    return int(ckpt["epoch"]), int(ckpt["step"]), None if sums is None else sums[dist.rank]


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
