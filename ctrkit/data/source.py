"""The data-source interface the trainer reads batches from, and what every source shares.

A :class:`DataSource` holds rows ``0 .. len(self)-1`` with fixed feature columns and labels and yields them in
whole batches ``(TensorData, labels (n, T), weights (n,) or None)``. :class:`~ctrkit.data.H5Store` (an
on-disk store) and :class:`~ctrkit.data.ArraySource` (columnar tensors in memory) implement it.

Shuffling seeds are functions of ``(seed, epoch, rank)`` only (:func:`mix_seed`), so a run resumed mid-epoch
sees the same order.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..exceptions import DataValidationError
from ..features import split_feature_columns
from .inputs import TensorData

__all__ = ["DataSource", "Batch", "check_source", "is_data_source", "shard_range", "mix_seed",
           "epoch_permutation"]

Batch = tuple[TensorData, torch.Tensor, "torch.Tensor | None"]
_MASK62 = (1 << 62) - 1


def mix_seed(*parts: int) -> int:
    """A 62-bit seed from several ints (stable across processes and platforms)."""
    state = np.random.SeedSequence([int(p) & _MASK62 for p in parts]).generate_state(2, np.uint64)
    return int(state[0]) & _MASK62


def epoch_permutation(n: int, seed: int, epoch: int, rank: int) -> torch.Tensor:
    """The epoch's shuffling of ``n`` in-memory rows: a function of ``(seed, epoch, rank)`` only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch, rank)))


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous shard ``[lo, hi)`` of ``n`` rows for ``rank``: disjoint, covering, sizes differ by <= 1.

    (The same rule as :func:`ctrkit.distributed.shard_range`, here so the data layer needs nothing above it.)
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"ctrkit.distributed.shard_range: need 0 <= rank < world_size, got rank={rank}, "
                         f"world_size={world_size}.")
    return (n * rank) // world_size, (n * (rank + 1)) // world_size


def epoch_steps(rows: int, batch_size: int) -> int:
    """Training batches per epoch over ``rows`` rows: ``ceil(rows / batch_size)``, except that a last batch of
    a single row is merged into the one before (BatchNorm cannot normalise one row in training mode).

    Example:
        >>> epoch_steps(10, 4), epoch_steps(9, 4), epoch_steps(1, 4)
        (3, 2, 1)
    """
    steps = math.ceil(rows / batch_size)
    return steps - 1 if steps > 1 and batch_size > 1 and rows % batch_size == 1 else steps


def batch_size_of(k: int, steps: int, n: int, batch_size: int) -> int:
    """Rows of batch ``k`` of ``steps`` over ``n`` rows: ``batch_size``, the last one takes the rows left."""
    return batch_size if k < steps - 1 else n - (steps - 1) * batch_size


def check_batch_size(batch_size: Any, where: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}.")
    return int(batch_size)


class DataSource:
    """What ``fit`` / ``evaluate`` / ``predict`` need from data that is not held in memory.

    Subclasses provide rows ``0 .. len(self)-1`` with fixed feature columns and labels, and iterate them in
    whole batches. :class:`H5Store` is the implementation ctrkit ships.
    """

    feature_columns: list
    task_names: list[str]
    has_sample_weight: bool = False
    has_nan_labels: bool = False

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def shard_range(self, rank: int = 0, world_size: int = 1) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of ``rank``'s shard: contiguous, disjoint, covering, sizes differ by <= 1."""
        return shard_range(len(self), rank, world_size)

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        """Batches per epoch on every rank: :func:`epoch_steps` of the smallest shard (the last absorbs the rest)."""
        return epoch_steps(len(self) // world_size, batch_size)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0, rank: int = 0,
                world_size: int = 1, start_step: int = 0) -> Iterator[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_range(self, lo: int, hi: int, batch_size: int) -> Iterator[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError

def is_data_source(x: Any) -> bool:
    """True for out-of-core data (a :class:`DataSource`, e.g. an opened store)."""
    return isinstance(x, DataSource)


def check_source(source: DataSource, feature_columns: Sequence[Any], task_names: Sequence[str], where: str
                 ) -> DataSource:
    """Check that a store's features and tasks are the model's (columns are positional in a batch)."""
    mine = split_feature_columns(feature_columns)
    theirs = split_feature_columns(source.feature_columns)

    def sig(s):
        return ([f.name for f in s.sparse], [(f.name, getattr(f, "dimension", 1)) for f in s.dense],
                [(f.name, f.maxlen) for f in s.varlen])
    if sig(mine) != sig(theirs):
        raise DataValidationError(
            f"{where}: the store's feature columns do not match the model's. Model: {sig(mine)}; store "
            f"{getattr(source, 'path', '')!r}: {sig(theirs)}. Build the model from store.feature_columns, or "
            "re-encode the data with the model's encoder.")
    for f_m, f_s in zip(mine.sparse + mine.varlen, theirs.sparse + theirs.varlen):
        if f_s.vocabulary_size > f_m.vocabulary_size:
            raise DataValidationError(
                f"{where}: feature {f_m.name!r} has vocabulary_size {f_s.vocabulary_size} in the store but "
                f"{f_m.vocabulary_size} in the model; its ids could fall outside the embedding table. Re-encode "
                "the data with the model's encoder.")
    if list(source.task_names) != list(task_names):
        raise DataValidationError(f"{where}: the store's labels are {list(source.task_names)} but the model's tasks "
                                  f"are {list(task_names)}. Write the store with labels in the model's task order.")
    return source
