"""Data-parallel training across processes (``torchrun``), and the helpers the training loop uses for it.

Run any script that calls ``model.fit`` with ``torchrun``::

    torchrun --nproc_per_node=4 train.py                        # one machine, 4 processes
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
             --rdzv_backend=c10d --rdzv_endpoint=host0:29500 train.py   # on each node (node_rank 0, 1)

``fit`` sees torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` environment, joins the process group
(``gloo`` for CPU models, ``nccl`` for CUDA models; or call :func:`init_from_env` first) and then:

* wraps the model in ``DistributedDataParallel`` (gradients all-reduced every step);
* gives every rank its own shard of the training data: in-memory data by a seeded permutation
  (:func:`shard_indices`), an on-disk store by contiguous row ranges (:func:`shard_range`). Shards are
  disjoint and cover the data; every rank runs ``ceil(min shard size / batch_size)`` steps per epoch, the
  last batch of a rank holding the rows left over (so no row is dropped or repeated);
* computes losses and metrics over the whole training epoch and the whole validation set across ranks
  (predictions and labels are all-gathered, not per-rank averages), so every rank sees the same logs and
  callbacks such as ``EarlyStopping`` stop every rank after the same epoch;
* runs the progress bar and the callbacks that write files (``ModelCheckpoint``, ``CSVLogger``) on rank 0
  only; ``model.save`` writes on rank 0 only.

With one process (no torchrun) none of this happens: the same script trains as usual.

Limits: every rank holds the full embedding tables (pure data parallelism) unless the model is built with
``embedding_backend="torchrec"``, whose tables ``compile`` shards over the processes (``ctrkit.training.sharding``,
``docs/sharding.md``); sparse embedding gradients (``sparse=True``) are not supported with DDP. See
``docs/large_data_and_distributed.md``.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DistInfo", "init_from_env", "is_distributed", "get_rank", "get_world_size", "is_main_process",
           "barrier", "shard_indices", "shard_range", "all_gather_rows", "all_reduce_sum", "all_reduce_max",
           "cleanup", "quiet_torchrec"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` among ``world_size`` processes, ``local_rank`` on its node."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"ctrkit.distributed: environment variable {name}={raw!r} is not an integer. It is set "
                         "by torchrun; unset it or launch with torchrun.") from None


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """The number of processes (1 without a process group)."""
    import torch.distributed as dist
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, and in a single-process run. Log, print and write files only where this is True.

    Example:
        >>> is_main_process()
        True
    """
    return get_rank() == 0


def init_from_env(backend: str | None = None, *, device: Any = None, timeout_s: float | None = None) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for a single process).

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``, set by torchrun). With
    ``WORLD_SIZE`` unset or 1 nothing is initialised and ``DistInfo(0, 1, 0)`` is returned, so scripts run
    unchanged with plain ``python``. Calling it again once initialised returns the current group's info.

    Args:
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA); default ``"nccl"`` when ``device`` is CUDA (or, with
            ``device=None``, when CUDA is available), else ``"gloo"``.
        device: the device the model trains on; with ``nccl`` this process's GPU is ``cuda:LOCAL_RANK``.
        timeout_s: collective timeout in seconds (torch's default when None).

    Returns:
        :class:`DistInfo` ``(rank, world_size, local_rank)``.

    Raises:
        ValueError: an environment variable is not an integer, or ``RANK`` is outside ``[0, WORLD_SIZE)``.
        RuntimeError: torch was built without ``torch.distributed``.

    Example:
        >>> init_from_env()        # run with plain python: single process
        DistInfo(rank=0, world_size=1, local_rank=0)
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world <= 1:
        return DistInfo(0, 1, 0)
    if not 0 <= rank < world:
        raise ValueError(f"ctrkit.distributed.init_from_env: RANK={rank} is outside [0, WORLD_SIZE={world}). "
                         "Launch with torchrun, which sets both.")
    if not dist.is_available():
        raise RuntimeError("ctrkit.distributed.init_from_env: WORLD_SIZE > 1 but this torch build has no "
                           "torch.distributed. Install a torch build with distributed support.")
    if backend is None:
        if device is not None:
            cuda = torch.device(device).type == "cuda"
        else:
            cuda = torch.cuda.is_available()
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    kwargs: dict[str, Any] = {"backend": backend, "init_method": "env://", "rank": rank, "world_size": world}
    if timeout_s is not None:
        import datetime
        kwargs["timeout"] = datetime.timedelta(seconds=float(timeout_s))
    dist.init_process_group(**kwargs)
    return DistInfo(rank, world, local_rank)


@contextlib.contextmanager
def quiet_torchrec() -> Iterator[None]:
    """Silence the deprecation warnings and planner log lines that TorchRec and ``torch.distributed`` print on
    every sharding, gather and checkpoint (about their own internals, nothing a user can act on); errors pass."""
    import logging
    import warnings
    loggers = [logging.getLogger(n) for n in ("torchrec", "torchrec.distributed.planner",
                                              "torchrec.distributed.planner.types",
                                              "torchrec.distributed.planner.storage_reservations")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", module=r"torch\.distributed.*")
        warnings.filterwarnings("ignore", module=r"torchrec.*")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def cleanup() -> None:
    """Leave the process group (call at the end of a torchrun script; harmless without one)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if is_distributed():
        import torch.distributed as dist
        dist.barrier()


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous shard ``[lo, hi)`` of ``n`` rows for ``rank``: disjoint, covering, sizes differ by <= 1.

    Used for on-disk stores (each rank reads only its rows) and for validation sets.

    Example:
        >>> [shard_range(10, r, 3) for r in range(3)]
        [(0, 3), (3, 6), (6, 10)]
    """
    _check_rank(rank, world_size, "shard_range")
    return (n * rank) // world_size, (n * (rank + 1)) // world_size


def shard_indices(n: int, rank: int, world_size: int, seed: int) -> torch.Tensor:
    """Row indices of ``rank``'s shard of ``n`` in-memory rows: every ``world_size``-th entry of a permutation
    seeded by ``seed``, so the shards are disjoint, cover ``range(n)`` and differ in size by at most one.

    Example:
        >>> a, b = shard_indices(5, 0, 2, seed=1), shard_indices(5, 1, 2, seed=1)
        >>> sorted(a.tolist() + b.tolist())
        [0, 1, 2, 3, 4]
    """
    _check_rank(rank, world_size, "shard_indices")
    g = torch.Generator().manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
    return torch.randperm(int(n), generator=g)[rank::world_size]


def _check_rank(rank: int, world_size: int, where: str) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"ctrkit.distributed.{where}: need 0 <= rank < world_size, got rank={rank}, "
                         f"world_size={world_size}.")


def _collective_device() -> torch.device:
    import torch.distributed as dist
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order (sizes may differ); ``t`` itself for one process.

    The result is on ``t``'s device. Every rank must call it (it is a collective).
    """
    if not is_distributed():
        return t
    import torch.distributed as dist
    dev = _collective_device()
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_l = [int(s.item()) for s in sizes]
    m = max(sizes_l)
    src = t.detach().to(dev)
    if src.shape[0] < m:
        src = torch.cat([src, src.new_zeros((m - src.shape[0], *src.shape[1:]))])
    parts = [torch.empty_like(src) for _ in range(world)]
    dist.all_gather(parts, src.contiguous())
    return torch.cat([p[:k] for p, k in zip(parts, sizes_l)]).to(t.device)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks (returns a new tensor on ``t``'s device; ``t`` for one process)."""
    if not is_distributed():
        return t
    import torch.distributed as dist
    out = t.detach().to(_collective_device()).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def all_reduce_max(value: float) -> float:
    """Maximum of a Python number over ranks (``value`` for one process)."""
    if not is_distributed():
        return value
    import torch.distributed as dist
    out = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return float(out.item())
