"""Read-ahead and batch cutting shared by the on-disk sources.

:class:`Prefetcher` runs a generator of windows (blocks of rows already read) in a background thread, a few
windows ahead, so reading overlaps training; :func:`cut_batches` cuts that stream of windows into the epoch's
batches (views where a batch lies inside one window).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from .inputs import TensorData
from .source import Batch

__all__ = ["Prefetcher", "cut_batches"]


class Prefetcher:
    """Runs ``produce()`` (a generator) in a daemon thread, ``depth`` items ahead; re-raises its errors."""

    _DONE = object()

    def __init__(self, produce: Callable[[], Iterator[Any]], depth: int) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(produce,), daemon=True, name="ctrkit-read-ahead")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, produce: Callable[[], Iterator[Any]]) -> None:
        try:
            for item in produce():
                if not self._put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(("__error__", e))
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                item = self._q.get()
                if item is self._DONE:
                    return
                if isinstance(item, tuple) and len(item) == 2 and item[0] == "__error__":
                    raise item[1]
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        try:  # unblock a producer waiting on a full queue
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


def _cat(pieces: list[Batch]) -> Batch:
    xs = [p[0] for p in pieces]

    def cat(ts):
        return torch.cat(ts) if len(ts) > 1 else ts[0]
    x = TensorData(None if xs[0].sparse is None else cat([t.sparse for t in xs]),
                   None if xs[0].dense is None else cat([t.dense for t in xs]),
                   {k: cat([t.varlen[k] for t in xs]) for k in xs[0].varlen},
                   {k: cat([t.lengths[k] for t in xs]) for k in xs[0].lengths})
    y = cat([p[1] for p in pieces])
    w = None if pieces[0][2] is None else cat([p[2] for p in pieces])
    return x, y, w


def cut_batches(windows: Iterable[Batch], sizes: Callable[[int], int], steps: int, start_step: int
                 ) -> Iterator[Batch]:
    """Cut a stream of windows into batches ``start_step .. steps-1`` of the given sizes (views when possible)."""
    k = start_step
    pending: list[Batch] = []
    have = 0
    for win in windows:
        m = len(win[1])
        off = 0
        while off < m and k < steps:
            need = sizes(k) - have
            take = min(need, m - off)
            x, y, w = win
            piece = (x.slice(off, off + take), y[off:off + take], None if w is None else w[off:off + take])
            off += take
            if not pending and take == need:
                yield piece
                k += 1
                continue
            # a batch straddling two windows: copy the (small) piece so the old window can be freed
            pending.append((piece[0].take(torch.arange(take)), piece[1].clone(),
                            None if piece[2] is None else piece[2].clone()))
            have += take
            if have == sizes(k):
                yield _cat(pending)
                pending, have = [], 0
                k += 1
        win = x = y = w = piece = None  # type: ignore[assignment]  # drop this window before the next is fetched
        if k >= steps:
            return
    if pending and k < steps:  # only reached if the windows held fewer rows than promised
        raise RuntimeError(f"ctrkit.data: the store yielded {have} rows for batch {k} of {steps}; the file may "
                           "have been modified while it was read.")

