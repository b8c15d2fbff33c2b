"""In-memory rows as a data source: the trainer reads arrays and on-disk stores the same way."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .inputs import TensorData

__all__ = ["ArraySource", "mix_seed", "epoch_permutation"]

_MASK62 = (1 << 62) - 1


def mix_seed(*parts: int) -> int:
    """A 62-bit seed from several ints (stable across processes)."""
    return int(np.random.SeedSequence([int(p) & _MASK62 for p in parts]).generate_state(2, np.uint64)[0]) & _MASK62


def epoch_permutation(n: int, seed: int, epoch: int, rank: int) -> torch.Tensor:
    """The epoch's shuffling of in-memory rows: a function of (seed, epoch, rank) only (resumable)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch, rank)))


class ArraySource:
    """Rows held in memory, read in whole batches that are slices of the columnar tensors.

    Args:
        x: the model input (:class:`TensorData`).
        y: labels ``(N, ...)`` (task order for tabular models), or None for prediction.
        sample_weight: ``(N,)`` or None.
        steps: batches per epoch (default ``ceil(N / batch_size)``); the last batch takes the rows left over,
            so every rank of a distributed run can take the same number of steps on shards of unequal size.
    """

    def __init__(self, x: TensorData, y: torch.Tensor | None = None, sample_weight: torch.Tensor | None = None
                 ) -> None:
        self.x, self.y, self.w = x, y, sample_weight
        self.has_sample_weight = sample_weight is not None
        self.has_nan_labels = bool(y is not None and y.is_floating_point() and torch.isnan(y).any())

    def __len__(self) -> int:
        return len(self.x)

    def labels(self) -> torch.Tensor | None:
        return self.y

    def take(self, index: torch.Tensor) -> ArraySource:
        """The rows at ``index`` (a gather)."""
        return ArraySource(self.x.take(index), None if self.y is None else self.y.index_select(0, index.to(self.y.device)),
                           None if self.w is None else self.w.index_select(0, index.to(self.w.device)))

    def slice(self, lo: int, hi: int) -> ArraySource:
        return ArraySource(self.x.slice(lo, hi), None if self.y is None else self.y[lo:hi],
                           None if self.w is None else self.w[lo:hi])

    def to(self, device: Any, non_blocking: bool = False) -> ArraySource:
        """The same rows on ``device`` (in-memory data goes to the accelerator once)."""
        return ArraySource(self.x.to(device, non_blocking), None if self.y is None else self.y.to(device, non_blocking=non_blocking),
                           None if self.w is None else self.w.to(device, non_blocking=non_blocking))

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0, rank: int = 0,
                start_step: int = 0, steps: int | None = None) -> Iterator[tuple[Any, Any, Any]]:
        """``(x, y, w)`` batches of one epoch from step ``start_step``, shuffled by ``(seed, epoch, rank)``."""
        n = len(self)
        steps = math.ceil(n / batch_size) if steps is None else steps
        src = self.take(epoch_permutation(n, seed, epoch, rank).to(self.x_device)) if shuffle and n > 1 else self
        for step in range(start_step, steps):
            s = step * batch_size
            e = n if step == steps - 1 else s + batch_size
            yield src.x.slice(s, e), None if src.y is None else src.y[s:e], None if src.w is None else src.w[s:e]

    def iter_range(self, lo: int, hi: int, batch_size: int) -> Iterator[tuple[Any, Any, Any]]:
        """``(x, y, w)`` batches of rows ``[lo, hi)`` in order."""
        for s in range(lo, hi, batch_size):
            e = min(s + batch_size, hi)
            yield self.x.slice(s, e), None if self.y is None else self.y[s:e], None if self.w is None else self.w[s:e]

    @property
    def x_device(self) -> torch.device:
        for t in (self.x.sparse, self.x.dense, *self.x.varlen.values()):
            if t is not None:
                return t.device
        return torch.device("cpu")
