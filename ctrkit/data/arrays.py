"""In-memory data as a data source: columnar tensors behind the same interface as an on-disk store.

:class:`ArraySource` holds a :class:`~ctrkit.data.TensorData`, the labels ``(N, T)`` and optional weights
``(N,)``, and yields ``(x, y, w)`` batches by slicing them (views, no copy). With ``shuffle`` the rows of the
shard are permuted once per epoch (one gather) by :func:`~ctrkit.data.source.epoch_permutation` — a function
of ``(seed, epoch, rank)`` only — and batches are slices of the permuted tensors, so an epoch resumed at
``start_step`` yields exactly the batches it had left.

Example:
    >>> import torch
    >>> from ctrkit.data import TensorData
    >>> x = TensorData(torch.arange(10).view(10, 1), None, {}, {})
    >>> src = ArraySource(x, torch.zeros(10, 1))
    >>> [len(b[1]) for b in src.batches(4, shuffle=False)]
    [4, 4, 2]
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch

from ..exceptions import DataValidationError
from .inputs import TensorData
from .source import Batch, DataSource, check_batch_size, epoch_permutation

__all__ = ["ArraySource"]


class ArraySource(DataSource):
    """Rows held in memory as columnar tensors, read in whole batches like a store.

    Args:
        x: the features, a :class:`~ctrkit.data.TensorData` of ``N`` rows.
        y: the labels, a tensor ``(N, T)`` (float, NaN: missing label; or ``(N, L)`` next-item targets), or
            None for rows to predict.
        w: per-row sample weights ``(N,)``, or None.
        feature_columns: the feature columns of ``x`` (for :func:`~ctrkit.data.source.check_source`).
        task_names: the label columns, in order (default ``task0 .. task{T-1}``).
    """

    def __init__(self, x: TensorData, y: torch.Tensor | None = None, w: torch.Tensor | None = None, *,
                 feature_columns: Sequence[Any] | None = None,
                 task_names: Sequence[str] | None = None) -> None:
        if not isinstance(x, TensorData):
            raise TypeError(f"ArraySource: x must be a TensorData, got {type(x).__name__}. Convert with "
                            "ctrkit.data.to_tensor_data(x, feature_columns).")
        if y is not None and (not isinstance(y, torch.Tensor) or y.dim() != 2):
            raise DataValidationError(f"ArraySource: y must be a 2-d tensor (N, T), got "
                                      f"{type(y).__name__}{tuple(y.shape) if hasattr(y, 'shape') else ''}.")
        n = len(x)
        if (y is not None and len(y) != n) or (w is not None and len(w) != n):
            weights = "" if w is None else f" and {len(w)} weights"
            raise DataValidationError(f"ArraySource: {n} feature rows but {n if y is None else len(y)} label "
                                      f"rows{weights}; they must match.")
        self.x, self.y, self.w = x, y, w
        self.feature_columns = list(feature_columns or [])
        self.task_names = [str(t) for t in task_names] if task_names is not None else \
            [f"task{i}" for i in range(0 if y is None else y.shape[1])]
        if y is not None and len(self.task_names) != y.shape[1]:
            raise DataValidationError(f"ArraySource: {len(self.task_names)} task_names for {y.shape[1]} "
                                      "label columns.")
        self.has_sample_weight = w is not None
        self.has_nan_labels = bool(y is not None and y.is_floating_point() and torch.isnan(y).any())

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return f"ArraySource(rows={len(self):,}, tasks={self.task_names})"

    def labels(self) -> torch.Tensor | None:
        """All labels ``(N, T)``."""
        return self.y

    def _new(self, x: TensorData, y: torch.Tensor | None, w: torch.Tensor | None) -> ArraySource:
        return ArraySource(x, y, w, feature_columns=self.feature_columns, task_names=self.task_names)

    def take(self, index: torch.Tensor) -> ArraySource:
        """The rows at ``index`` (a gather)."""
        y, w = self.y, self.w
        return self._new(self.x.take(index), None if y is None else y.index_select(0, index.to(y.device)),
                         None if w is None else w.index_select(0, index.to(w.device)))

    def slice(self, start: int, stop: int) -> ArraySource:
        """Rows ``start:stop`` (views)."""
        return self._new(*self._rows(self.x, self.y, self.w, start, stop))

    def to(self, device: Any, non_blocking: bool = False) -> ArraySource:
        """The same rows on ``device`` (in-memory data goes to an accelerator once, not per batch)."""
        y, w = self.y, self.w
        return self._new(self.x.to(device, non_blocking),
                         None if y is None else y.to(device, non_blocking=non_blocking),
                         None if w is None else w.to(device, non_blocking=non_blocking))

    def read(self, start: int = 0, stop: int | None = None) -> Batch:
        """Rows ``start:stop`` as ``(TensorData, labels, weights or None)`` (views)."""
        stop = len(self) if stop is None else min(int(stop), len(self))
        start = max(0, int(start))
        if stop < start:
            raise ValueError(f"ArraySource.read: stop={stop} < start={start}.")
        return self._rows(self.x, self.y, self.w, start, stop)

    @staticmethod
    def _rows(x: TensorData, y: torch.Tensor | None, w: torch.Tensor | None, s: int, e: int) -> Batch:
        # y is None only for an unlabeled source (predict), whose readers do not use the labels
        return cast(Batch, (x.slice(s, e), None if y is None else y[s:e], None if w is None else w[s:e]))

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0, rank: int = 0,
                world_size: int = 1, start_step: int = 0, steps: int | None = None) -> Iterator[Batch]:
        """One epoch of ``rank``'s shard as ``(TensorData, labels, weights)`` batches (views).

        Every rank yields :meth:`steps_per_epoch` batches (or ``steps``, when the caller sharded the rows
        itself): ``batch_size`` rows each except the last, which holds the rest of the shard. With ``shuffle``
        the shard's rows are permuted by ``epoch_permutation(n, seed, epoch, rank)`` first (the in-memory
        trainer's order); ``start_step`` skips the first batches.
        """
        batch_size = check_batch_size(batch_size, "ArraySource.batches")
        lo, hi = self.shard_range(rank, world_size) if world_size > 1 else (0, len(self))  # else: pre-sharded
        steps = self.steps_per_epoch(batch_size, world_size) if steps is None else int(steps)
        x, y, w = self._rows(self.x, self.y, self.w, lo, hi)
        if shuffle and hi - lo > 1 and steps > int(start_step):
            perm = epoch_permutation(hi - lo, seed, epoch, rank)
            x = x.take(perm)
            y = None if y is None else y.index_select(0, perm.to(y.device))
            w = None if w is None else w.index_select(0, perm.to(w.device))
        return self._cut(x, y, w, hi - lo, batch_size, steps, int(start_step))

    def _cut(self, x: TensorData, y: torch.Tensor, w: torch.Tensor | None, n: int, batch_size: int,
             steps: int, first: int) -> Iterator[Batch]:
        for step in range(first, steps):
            s = step * batch_size
            e = n if step == steps - 1 else s + batch_size
            yield self._rows(x, y, w, s, e)

    def iter_range(self, lo: int, hi: int, batch_size: int) -> Iterator[Batch]:
        """Rows ``[lo, hi)`` in order, in batches of ``batch_size`` (the last may be shorter)."""
        batch_size = check_batch_size(batch_size, "ArraySource.iter_range")
        lo, hi = max(0, int(lo)), min(int(hi), len(self))
        steps = math.ceil(max(0, hi - lo) / batch_size)
        x, y, w = self._rows(self.x, self.y, self.w, lo, max(lo, hi))
        return self._cut(x, y, w, max(0, hi - lo), batch_size, steps, 0)
