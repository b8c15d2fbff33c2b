"""Out-of-core data: encoded rows in a chunked HDF5 file that ``fit`` / ``evaluate`` / ``predict`` read in batches.

A store holds what :class:`~ctrkit.data.TensorData` holds, one HDF5 dataset per dtype group, plus the labels,
the feature columns and the fitted encoder::

    sparse          (N, Fs) int64    ids of the fixed-length sparse features, in feature-column order
    dense           (N, Dd) float32  dense values
    varlen/<i>      (N, L_i) int64   ids of the i-th var-length feature (names in the attributes)
    lengths/<i>     (N,) int64       its length column, when it has one
    labels          (N, T) float32   one column per task (NaN: missing label)
    weight          (N,) float32     sample weights (optional)
    attributes      format, format_version, n_rows, feature_columns (JSON), encoder (JSON), task_names, ...

Datasets are chunked by ``chunk_rows`` rows (16,384 by default), uncompressed unless asked. A file is written
under a temporary name and renamed into place when complete, so a crash never leaves a half-written store
under the final name.

Reading for training (:meth:`H5Store.batches`): each rank takes a contiguous shard of rows; the shard is cut
into blocks aligned with the HDF5 chunks; every epoch the blocks are visited in a random order (seeded by
``(seed, epoch, rank)``), grouped into windows of ``buffer_rows`` rows (the shuffle buffer), and each window's
rows are permuted in memory before batches are cut from it. Windows are read as whole slices (one read per
block and dataset, never per row) by a background thread, ``prefetch`` windows ahead, so reading overlaps
training. The order is a pure function of ``(seed, epoch, rank, world_size, batch_size)``: a run resumed in
the middle of an epoch skips the batches it already trained on without reading them.

Example:
    >>> import tempfile, os, pandas as pd
    >>> from ctrkit import FeatureEncoder
    >>> df = pd.DataFrame({"city": ["a", "b", "a", "c"] * 50, "age": range(200), "click": [0, 1] * 100})
    >>> enc = FeatureEncoder(sparse=["city"], dense=["age"]).fit(df)
    >>> path = os.path.join(tempfile.mkdtemp(), "train.h5")
    >>> _ = write_store(path, df, ["click"], enc.feature_columns)
    >>> store = open_store(path)
    >>> len(store), store.task_names
    (200, ['click'])
    >>> x, y, w = next(iter(store.batches(64, seed=0)))
    >>> len(x), tuple(y.shape)
    (64, (64, 1))
"""
from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..exceptions import DataValidationError
from ..features import FeatureColumns, check_feature_columns, feature_from_dict, feature_to_dict, split_feature_columns
from .inputs import TensorData, to_sample_weight, to_targets, to_tensor_data

__all__ = ["DataSource", "H5Store", "StoreWriter", "write_store", "open_store", "encode_to_store",
           "STORE_FORMAT", "STORE_VERSION"]

STORE_FORMAT = "ctrkit-store"
STORE_VERSION = 1
DEFAULT_CHUNK_ROWS = 16384
DEFAULT_BUFFER_ROWS = 262144

Batch = tuple[TensorData, torch.Tensor, "torch.Tensor | None"]


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("ctrkit.data stores need h5py: pip install h5py") from None
    return h5py


# ================================================================================================ sources
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
        from ..distributed import shard_range
        return shard_range(len(self), rank, world_size)

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        """Batches per epoch on every rank: ``ceil(smallest shard / batch_size)`` (the last absorbs the rest)."""
        return math.ceil((len(self) // world_size) / batch_size)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0, rank: int = 0,
                world_size: int = 1, start_step: int = 0) -> Iterator[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_range(self, lo: int, hi: int, batch_size: int) -> Iterator[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError


def _window_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array for a window buffer, in its own anonymous memory map when it is large.

    Such a buffer goes back to the operating system as soon as it is freed. Allocated with ``malloc``, buffers of a
    few MB end up in the allocator's heaps once its dynamic mmap threshold has grown, and the heaps fragment over an
    epoch, so the process's peak memory would creep up with the number of windows read.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < (1 << 20):
        return np.empty(shape, dtype)
    import mmap
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0) | getattr(mmap, "MAP_POPULATE", 0)
    buf = mmap.mmap(-1, nbytes, flags=flags) if flags else mmap.mmap(-1, nbytes)  # populate: fault pages in bulk
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _batch_size_of(k: int, steps: int, n: int, batch_size: int) -> int:
    return batch_size if k < steps - 1 else n - (steps - 1) * batch_size


class _Prefetcher:
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


def _cut_batches(windows: Iterable[Batch], sizes: Callable[[int], int], steps: int, start_step: int
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
        win = x = y = w = piece = None  # drop this window before the next one is fetched
        if k >= steps:
            return
    if pending and k < steps:  # only reached if the windows held fewer rows than promised
        raise RuntimeError(f"ctrkit.data: the store yielded {have} rows for batch {k} of {steps}; the file may "
                           "have been modified while it was read.")


# ================================================================================================ reading
class H5Store(DataSource):
    """An encoded data set in an HDF5 file, read in whole batches. Open with :func:`open_store`.

    Attributes:
        path: the file.
        feature_columns: the feature columns the rows were encoded for (carrying the encoder when stored).
        encoder: the fitted :class:`~ctrkit.FeatureEncoder` stored with the data, or None.
        task_names, task_types: the label columns, in order.
        has_sample_weight: whether rows carry a weight.
        has_nan_labels: whether some labels are missing (NaN).
        chunk_rows: rows per HDF5 chunk (the default shuffle block).
        block_rows, buffer_rows, prefetch: the shuffling and read-ahead settings used by :meth:`batches`.
    """

    def __init__(self, path: str, *, block_rows: int | None = None, buffer_rows: int = DEFAULT_BUFFER_ROWS,
                 prefetch: int = 1) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"ctrkit.data.open: no such file {self.path!r}. Write one with "
                                    "ctrkit.data.write_store(...) or ctrkit.data.encode_to_store(...).")
        h5py = _h5py()
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise DataValidationError(f"ctrkit.data.open: {self.path!r} is not a readable HDF5 file ({e}). Pass a "
                                      "store written by ctrkit.data.write_store.") from None
        with f:
            a = f.attrs
            if a.get("format") != STORE_FORMAT:
                raise DataValidationError(f"ctrkit.data.open: {self.path!r} is an HDF5 file but not a ctrkit store "
                                          f"(attribute format={a.get('format')!r}, expected {STORE_FORMAT!r}).")
            version = int(a["format_version"])
            if version > STORE_VERSION:
                raise DataValidationError(f"ctrkit.data.open: {self.path!r} has store format {version}, newer than "
                                          f"this ctrkit reads ({STORE_VERSION}). Upgrade ctrkit.")
            self.n_rows = int(a["n_rows"])
            cols = [feature_from_dict(d) for d in json.loads(a["feature_columns"])]
            enc_json = a.get("encoder")
            self.task_names = list(json.loads(a["task_names"]))
            types = json.loads(a["task_types"])
            self.task_types = None if types is None else list(types)
            self.has_sample_weight = bool(a["has_sample_weight"])
            self.has_nan_labels = bool(a["has_nan_labels"])
            self.chunk_rows = int(a["chunk_rows"])
            self._keys = [k for k in _dataset_keys(cols, self.has_sample_weight) if k in f]
        self.encoder = None
        if enc_json:
            from ..preprocessing import FeatureEncoder
            self.encoder = FeatureEncoder.from_json(str(enc_json))
        self.feature_columns = FeatureColumns(cols, encoder=self.encoder)
        self._split = split_feature_columns(cols)
        self.block_rows = int(block_rows or self.chunk_rows)
        self.buffer_rows = int(buffer_rows)
        self.prefetch = int(prefetch)
        for name, v, lo in (("block_rows", self.block_rows, 1), ("buffer_rows", self.buffer_rows, 1),
                            ("prefetch", self.prefetch, 0)):
            if v < lo:
                raise ValueError(f"ctrkit.data.open: {name} must be >= {lo}, got {v}.")
        self._file = None
        self._pid = None
        self._lock = threading.Lock()

    # -------------------------------------------------------------- basics
    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (f"H5Store({self.path!r}, rows={self.n_rows:,}, features={len(self.feature_columns)}, "
                f"tasks={self.task_names})")

    def __enter__(self) -> H5Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"], state["_lock"] = None, None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the file handle (reopened on the next read)."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def _h5(self):
        if self._file is None or self._pid != os.getpid():
            with self._lock:
                if self._file is None or self._pid != os.getpid():
                    self._file = _h5py().File(self.path, "r")
                    self._pid = os.getpid()
        return self._file

    # -------------------------------------------------------------- whole-slice reads
    def _read_ranges(self, ranges: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
        """Rows of the given ``[a, b)`` ranges, concatenated: one ``read_direct`` per range and dataset."""
        f = self._h5()
        rows = sum(b - a for a, b in ranges)
        out: dict[str, np.ndarray] = {}
        for key in self._keys:
            ds = f[key]
            arr = _window_empty((rows, *ds.shape[1:]), ds.dtype)
            o = 0
            for a, b in ranges:
                if b > a:
                    ds.read_direct(arr, np.s_[a:b], np.s_[o:o + b - a])
                    o += b - a
            out[key] = arr
        return out

    def _to_batch(self, arrs: Mapping[str, np.ndarray], perm: np.ndarray | None = None) -> Batch:
        idx = None if perm is None else torch.from_numpy(perm)

        def t(a: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(a)
            if idx is None:
                return x
            return torch.index_select(x, 0, idx, out=torch.from_numpy(_window_empty(a.shape, a.dtype)))
        vl = [f.name for f in self._split.varlen]
        x = TensorData(t(arrs["sparse"]) if "sparse" in arrs else None,
                       t(arrs["dense"]) if "dense" in arrs else None,
                       {name: t(arrs[f"varlen/{i}"]) for i, name in enumerate(vl)},
                       {name: t(arrs[f"lengths/{i}"]) for i, name in enumerate(vl) if f"lengths/{i}" in arrs})
        return x, t(arrs["labels"]), (t(arrs["weight"]) if "weight" in arrs else None)

    def read(self, start: int = 0, stop: int | None = None) -> Batch:
        """Rows ``start:stop`` as ``(TensorData, labels (n, T), weights (n,) or None)``, read in one slice.

        ``store.read()`` loads the whole store into memory (as ``fit`` on in-memory data would need it).
        """
        stop = self.n_rows if stop is None else min(int(stop), self.n_rows)
        start = max(0, int(start))
        if stop < start:
            raise ValueError(f"H5Store.read: stop={stop} < start={start}.")
        return self._to_batch(self._read_ranges([(start, stop)]))

    def labels(self) -> torch.Tensor:
        """All labels ``(N, T)`` (float32, NaN = missing)."""
        return torch.from_numpy(self._h5()["labels"][:])

    # -------------------------------------------------------------- batch iteration
    def _blocks(self, lo: int, hi: int, block_rows: int) -> list[tuple[int, int]]:
        cuts = list(range((lo // block_rows + 1) * block_rows, hi, block_rows))
        edges = [lo, *cuts, hi]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def _windows(self, lo: int, hi: int, shuffle: bool, seed: int, epoch: int, rank: int
                 ) -> list[tuple[list[tuple[int, int]], int | None]]:
        """The epoch's windows: (block ranges, seed of the in-window permutation or None)."""
        blocks = self._blocks(lo, hi, self.block_rows if shuffle else max(self.block_rows, self.buffer_rows))
        if not shuffle:
            return [([b], None) for b in blocks]
        order = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, int(epoch), int(rank)]).permutation(len(blocks))
        per = max(1, self.buffer_rows // self.block_rows)
        wins = []
        for i, w in enumerate(range(0, len(order), per)):
            wins.append(([blocks[j] for j in order[w:w + per]], i))
        return wins

    def _iterate(self, lo: int, hi: int, batch_size: int, steps: int, *, shuffle: bool, seed: int, epoch: int,
                 rank: int, start_step: int) -> Iterator[Batch]:
        n = hi - lo
        if steps <= 0 or start_step >= steps:
            return iter(())
        skip = start_step * batch_size
        windows = self._windows(lo, hi, shuffle, seed, epoch, rank)
        base = [int(seed) & 0xFFFFFFFFFFFF, int(epoch), int(rank)]

        def produce() -> Iterator[Batch]:
            done = 0
            for ranges, wseed in windows:
                m = sum(b - a for a, b in ranges)
                if done + m <= skip:  # entirely before the resume point: not read
                    done += m
                    continue
                arrs = self._read_ranges(ranges)
                perm = None if wseed is None else np.random.default_rng([*base, 1, wseed]).permutation(m)
                batch = self._to_batch(arrs, perm)
                del arrs  # with a permutation the window is a copy: free the raw read before waiting to hand it over
                if done < skip:
                    cut = skip - done
                    batch = (batch[0].slice(cut, m), batch[1][cut:], None if batch[2] is None else batch[2][cut:])
                done += m
                yield batch

        windows_iter: Iterable[Batch] = _Prefetcher(produce, self.prefetch) if self.prefetch > 0 else produce()
        return _cut_batches(windows_iter, lambda k: _batch_size_of(k, steps, n, batch_size), steps, start_step)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0, rank: int = 0,
                world_size: int = 1, start_step: int = 0) -> Iterator[Batch]:
        """One epoch of ``rank``'s shard as ``(TensorData, labels, weights)`` batches.

        Every rank yields :meth:`steps_per_epoch` batches: ``batch_size`` rows each except the last, which holds
        the rest of the shard. The order depends only on the arguments (block order and in-window permutation
        seeded by ``(seed, epoch, rank)``); ``start_step`` skips the first batches without reading them.

        Args:
            batch_size: rows per batch.
            shuffle: block shuffle + shuffle buffer (see the module doc); False reads rows in file order.
            seed, epoch: select the epoch's order.
            rank, world_size: which shard (see :func:`ctrkit.distributed.shard_range`).
            start_step: first batch to yield (resuming mid-epoch).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"H5Store.batches: batch_size must be an int >= 1, got {batch_size!r}.")
        lo, hi = self.shard_range(rank, world_size)
        steps = self.steps_per_epoch(batch_size, world_size)
        return self._iterate(lo, hi, int(batch_size), steps, shuffle=shuffle, seed=seed, epoch=epoch, rank=rank,
                             start_step=start_step)

    def iter_range(self, lo: int, hi: int, batch_size: int) -> Iterator[Batch]:
        """Rows ``[lo, hi)`` in file order, in batches of ``batch_size`` (the last may be shorter); read ahead."""
        steps = math.ceil(max(0, hi - lo) / batch_size)
        return self._iterate(lo, hi, int(batch_size), steps, shuffle=False, seed=0, epoch=0, rank=0, start_step=0)


def open_store(path: str, *, block_rows: int | None = None, buffer_rows: int = DEFAULT_BUFFER_ROWS,
               prefetch: int = 1) -> H5Store:
    """Open a store written by :func:`write_store` / :func:`encode_to_store` (also ``ctrkit.data.open``).

    Pass the result to ``model.fit`` / ``evaluate`` / ``predict`` (or as ``validation_data``) instead of
    in-memory data; labels (and sample weights) come from the store.

    Args:
        path: the ``.h5`` file.
        block_rows: rows per shuffle block (default: the store's chunk rows, 16,384 unless written otherwise).
        buffer_rows: rows of the in-memory shuffle buffer (the rows of ``buffer_rows // block_rows`` random
            blocks are permuted together). Memory: about 3-4 windows of ``buffer_rows`` rows, whatever the
            number of rows in the store.
        prefetch: windows read ahead by a background thread (0: read in the training thread).

    Returns:
        an :class:`H5Store`.

    Raises:
        FileNotFoundError: no such file.
        DataValidationError: the file is not a ctrkit store, or has a newer format.
    """
    return H5Store(path, block_rows=block_rows, buffer_rows=buffer_rows, prefetch=prefetch)


# ================================================================================================ writing
def _dataset_keys(cols: Sequence[Any], weights: bool) -> list[str]:
    split = split_feature_columns(cols)
    keys = []
    if split.sparse:
        keys.append("sparse")
    if split.dense:
        keys.append("dense")
    for i, f in enumerate(split.varlen):
        keys.append(f"varlen/{i}")
        if f.length_name:
            keys.append(f"lengths/{i}")
    keys.append("labels")
    if weights:
        keys.append("weight")
    return keys


class StoreWriter:
    """Append encoded rows chunk by chunk to a new store; the file appears under ``path`` on :meth:`close`.

    Args:
        path: the ``.h5`` file to create (replaced if it exists, once the new one is complete).
        feature_columns: the feature columns of the rows (an encoder's ``feature_columns`` also stores the
            encoder, so a model can be built from the store alone).
        task_names: the label columns, in order.
        task_types: ``"binary"`` / ``"regression"`` per task; binary labels are checked to be 0/1. Default:
            labels are only checked to be finite numbers or NaN.
        encoder: the fitted encoder (default: the one ``feature_columns`` carries); raw DataFrames passed to
            :meth:`append` are encoded with it.
        chunk_rows: rows per HDF5 chunk (the unit of reading and of shuffling).
        compression: None, ``"lzf"`` or ``"gzip"`` (smaller files, slower reads).

    Example:
        >>> import tempfile, os, numpy as np
        >>> from ctrkit import SparseFeat
        >>> path = os.path.join(tempfile.mkdtemp(), "s.h5")
        >>> with StoreWriter(path, [SparseFeat("a", 10)], ["y"]) as w:
        ...     for _ in range(3):
        ...         _ = w.append({"a": np.arange(5) % 10}, np.zeros(5))
        >>> len(open_store(path))
        15
    """

    def __init__(self, path: str, feature_columns: Sequence[Any], task_names: Sequence[str],
                 task_types: Sequence[str] | None = None, *, encoder: Any = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, compression: str | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.feature_columns = check_feature_columns(feature_columns, where="StoreWriter: feature_columns")
        if not self.feature_columns:
            raise DataValidationError("StoreWriter: feature_columns is empty; pass the encoder's feature_columns.")
        if isinstance(task_names, str):
            task_names = [task_names]
        self.task_names = [str(t) for t in task_names]
        if not self.task_names:
            raise DataValidationError("StoreWriter: at least one label column (task) is needed.")
        if task_types is not None and len(task_types) != len(self.task_names):
            raise ValueError(f"StoreWriter: {len(task_types)} task_types for {len(self.task_names)} tasks "
                             f"{self.task_names}.")
        self.task_types = None if task_types is None else [str(t) for t in task_types]
        self.encoder = encoder if encoder is not None else getattr(feature_columns, "encoder", None)
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
            raise ValueError(f"StoreWriter: chunk_rows must be an int >= 1, got {chunk_rows!r}.")
        if compression not in (None, "lzf", "gzip"):
            raise ValueError(f"StoreWriter: compression must be None, 'lzf' or 'gzip', got {compression!r}.")
        self.chunk_rows, self.compression = int(chunk_rows), compression
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._tmp = f"{self.path}.tmp-{os.getpid()}-{threading.get_ident()}"
        self._f = _h5py().File(self._tmp, "w")
        self.n_rows = 0
        self._weights: bool | None = None
        self._nan_labels = False
        self._closed = False

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _create(self, arrs: Mapping[str, np.ndarray]) -> None:
        for key, a in arrs.items():
            shape = (0, *a.shape[1:])
            chunks = (self.chunk_rows, *a.shape[1:]) if all(a.shape[1:]) else None
            self._f.create_dataset(key, shape=shape, maxshape=(None, *a.shape[1:]), dtype=a.dtype,
                                   chunks=chunks or True, compression=self.compression)

    def append(self, x: Any, y: Any, sample_weight: Any = None) -> int:
        """Append rows. Returns the number of rows appended.

        Args:
            x: a :class:`TensorData`, encoder output / dict of arrays, or a DataFrame (raw values are encoded
                with the encoder).
            y: labels: ``{task: array}``, a DataFrame of task columns, or an ``(n, T)`` array in task order.
            sample_weight: per-row weights (give them in every call or in none).
        """
        if self._closed:
            raise RuntimeError("StoreWriter.append: the writer is closed.")
        td = to_tensor_data(x, self.feature_columns, self.encoder, where="StoreWriter.append")
        n = len(td)
        types = self.task_types or ["regression"] * len(self.task_names)
        Y = to_targets(y, self.task_names, types, n, where="StoreWriter.append: labels")
        W = to_sample_weight(sample_weight, n)
        has_w = W is not None
        if self._weights is None:
            self._weights = has_w
        elif self._weights != has_w:
            raise DataValidationError("StoreWriter.append: sample_weight was given for some chunks but not for "
                                      "others. Pass weights with every chunk or with none.")
        if n == 0:
            return 0
        arrs: dict[str, np.ndarray] = {}
        if td.sparse is not None:
            arrs["sparse"] = td.sparse.numpy()
        if td.dense is not None:
            arrs["dense"] = td.dense.numpy().astype(np.float32, copy=False)
        for i, f in enumerate(split_feature_columns(self.feature_columns).varlen):
            arrs[f"varlen/{i}"] = td.varlen[f.name].numpy()
            if f.length_name:
                arrs[f"lengths/{i}"] = td.lengths[f.name].numpy()
        arrs["labels"] = Y.numpy()
        if has_w:
            arrs["weight"] = W.numpy()
        if self.n_rows == 0 and "labels" not in self._f:
            self._create(arrs)
        lo, hi = self.n_rows, self.n_rows + n
        for key, a in arrs.items():
            ds = self._f[key]
            ds.resize(hi, axis=0)
            ds[lo:hi] = a
        self._nan_labels = self._nan_labels or bool(np.isnan(arrs["labels"]).any())
        self.n_rows = hi
        return n

    def close(self) -> str:
        """Write the attributes, flush, and move the file to ``path``. Returns ``path``."""
        if self._closed:
            return self.path
        if self.n_rows == 0:
            self.abort()
            raise DataValidationError(f"StoreWriter: no rows were appended to {self.path!r}; nothing written.")
        from .._version import __version__
        a = self._f.attrs
        a["format"] = STORE_FORMAT
        a["format_version"] = STORE_VERSION
        a["n_rows"] = self.n_rows
        a["feature_columns"] = json.dumps([feature_to_dict(f) for f in self.feature_columns])
        if self.encoder is not None:
            a["encoder"] = self.encoder.to_json()
        a["task_names"] = json.dumps(self.task_names)
        a["task_types"] = json.dumps(self.task_types)
        a["has_sample_weight"] = bool(self._weights)
        a["has_nan_labels"] = self._nan_labels
        a["chunk_rows"] = self.chunk_rows
        a["ctrkit_version"] = __version__
        a["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._f.close()
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        _fsync_dir(os.path.dirname(self.path))
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard the partial file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._f.close()
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)


def _fsync_dir(d: str) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _is_block(x: Any) -> bool:
    return isinstance(x, (TensorData, pd.DataFrame, Mapping, np.ndarray))


def write_store(path: str, data: Any, labels: Any, feature_columns: Sequence[Any], *,
                task_names: Sequence[str] | None = None, task_types: Sequence[str] | None = None,
                sample_weight: Any = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                compression: str | None = None) -> str:
    """Write rows (one block, or an iterable of chunks) to a store at ``path``; returns ``path``.

    Args:
        path: the ``.h5`` file (written under a temporary name, renamed when complete).
        data: one block of rows -- a DataFrame (raw values are encoded with the encoder the feature columns
            carry), encoder output / dict of arrays, or :class:`TensorData` -- or an iterable of such chunks,
            e.g. ``pd.read_csv(path, chunksize=100_000)``, or of ``(x, y)`` / ``(x, y, sample_weight)`` tuples.
        labels: the label column names (a list of str) read from each DataFrame / dict chunk; or, for one block,
            the labels themselves (``{task: array}``, a DataFrame of task columns, an ``(n, T)`` array with
            ``task_names``); None when the chunks are ``(x, y[, w])`` tuples (then pass ``task_names``).
        feature_columns: the feature columns (an encoder's ``feature_columns``).
        task_names: task order when ``labels`` does not name the tasks.
        task_types: optional, to check binary labels are 0/1.
        sample_weight: a weight column name (read from each chunk), or weights for one block.
        chunk_rows, compression: as in :class:`StoreWriter`.

    Returns:
        ``path``; open it with :func:`open_store`.
    """
    by_name = isinstance(labels, (list, tuple)) and labels and all(isinstance(v, str) for v in labels)
    if isinstance(labels, str):
        labels, by_name = [labels], True
    if by_name:
        names = list(labels)
    elif isinstance(labels, Mapping):
        names = list(labels.keys())
    elif isinstance(labels, pd.DataFrame):
        names = list(labels.columns)
    elif task_names is not None:
        names = list(task_names)
    else:
        raise DataValidationError("write_store: cannot tell the task names. Pass labels as a list of label "
                                  "column names, a dict {task: array} or a DataFrame, or give task_names=[...].")
    if task_names is not None and list(task_names) != names:
        raise DataValidationError(f"write_store: task_names {list(task_names)} do not match the labels {names}.")
    weight_col = sample_weight if isinstance(sample_weight, str) else None
    with StoreWriter(path, feature_columns, names, task_types, chunk_rows=chunk_rows,
                     compression=compression) as w:
        if _is_block(data):
            chunks: Iterable[Any] = [data]
            if not by_name:
                chunks = [(data, labels, None if weight_col else sample_weight)]
        else:
            chunks = data
        for chunk in chunks:
            if isinstance(chunk, tuple):
                if len(chunk) not in (2, 3):
                    raise DataValidationError("write_store: tuple chunks must be (x, y) or (x, y, sample_weight).")
                w.append(*chunk)
                continue
            if not by_name:
                raise DataValidationError("write_store: with several chunks, labels must be the label column names "
                                          "(or the chunks (x, y) tuples).")
            missing = [c for c in names + ([weight_col] if weight_col else []) if c not in _keys_of(chunk)]
            if missing:
                raise DataValidationError(f"write_store: a chunk lacks the label/weight column(s) {missing}; its "
                                          f"columns are {list(_keys_of(chunk))[:30]}.")
            y = {t: np.asarray(chunk[t]) for t in names}
            wt = None if weight_col is None else np.asarray(chunk[weight_col])
            w.append(chunk, y, wt)
    return w.path


def _keys_of(chunk: Any) -> list[str]:
    if isinstance(chunk, pd.DataFrame):
        return list(chunk.columns)
    if isinstance(chunk, Mapping):
        return list(chunk.keys())
    raise DataValidationError(f"write_store: chunks must be DataFrames, dicts of arrays or (x, y) tuples, got "
                              f"{type(chunk).__name__}.")


# ================================================================================================ encoding
def _read_chunks(source: Any, chunksize: int, columns: list[str] | None,
                 read_options: Mapping[str, Any] | None) -> Iterator[pd.DataFrame]:
    if callable(source):
        yield from source()
        return
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"encode_to_store: no such file {path!r}.")
    opts = dict(read_options or {})
    low = path.lower()
    if low.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=chunksize, columns=columns, **opts):
            yield batch.to_pandas()
        return
    if low.endswith((".tsv", ".tsv.gz")) and "sep" not in opts:
        opts["sep"] = "\t"
    if columns is not None and "usecols" not in opts:
        opts["usecols"] = columns
    yield from pd.read_csv(path, chunksize=chunksize, **opts)


def encode_to_store(source: Any, encoder: Any, out_path: str, tasks: Sequence[str], *,
                    chunksize: int = 200_000, task_types: Sequence[str] | None = None,
                    sample_weight: str | None = None, fit: bool | None = None,
                    read_options: Mapping[str, Any] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                    compression: str | None = None) -> H5Store:
    """Encode a CSV / Parquet file larger than memory into a store, reading it in chunks.

    Pass 1 fits ``encoder`` chunk by chunk (``partial_fit``: vocabulary counts and dense statistics add up, so
    the encoder equals one fitted on the whole file); pass 2 encodes each chunk and appends it to the store
    with its labels. Memory stays bounded by ``chunksize`` rows, whatever the file size.

    Args:
        source: a ``.csv`` (also ``.csv.gz``, ``.tsv``, ``.txt``) or ``.parquet`` path, or a callable returning
            a fresh iterable of DataFrame chunks (called once per pass).
        encoder: a :class:`~ctrkit.FeatureEncoder`; its label columns must not be features (give ``sparse`` /
            ``dense`` explicitly, or ``ignore=tasks``).
        out_path: the ``.h5`` file to write.
        tasks: the label columns, in task order.
        chunksize: rows per chunk read.
        task_types: optional, checks binary labels are 0/1.
        sample_weight: name of a weight column, if any.
        fit: fit the encoder in pass 1 (default: only if it is not fitted yet); False uses it as is.
        read_options: extra keyword arguments for ``pd.read_csv`` (e.g. ``sep``) or ``ParquetFile.iter_batches``.
        chunk_rows, compression: as in :class:`StoreWriter`.

    Returns:
        the opened :class:`H5Store` (its ``feature_columns`` carry the fitted encoder).

    Example:
        >>> import tempfile, os
        >>> from ctrkit import FeatureEncoder
        >>> from ctrkit.datasets import make_criteo_like
        >>> d = tempfile.mkdtemp()
        >>> make_criteo_like(1000, seed=0).to_csv(os.path.join(d, "raw.csv"), index=False)
        >>> enc = FeatureEncoder(sparse=[f"C{i}" for i in range(1, 27)], dense=[f"I{i}" for i in range(1, 14)])
        >>> store = encode_to_store(os.path.join(d, "raw.csv"), enc, os.path.join(d, "train.h5"),
        ...                         ["click", "purchase"], chunksize=300)
        >>> len(store), len(store.feature_columns)
        (1000, 39)
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = list(tasks)
    if isinstance(chunksize, bool) or not isinstance(chunksize, (int, np.integer)) or chunksize < 1:
        raise ValueError(f"encode_to_store: chunksize must be an int >= 1, got {chunksize!r}.")
    fitted = hasattr(encoder, "vocabularies_")
    if fit is None:
        fit = not fitted
    if not fit and not fitted:
        raise DataValidationError("encode_to_store: fit=False but the encoder is not fitted. Fit it first or "
                                  "pass fit=True.")
    explicit = encoder.sparse is not None or encoder.dense is not None or encoder.varlen is not None
    if fit and not explicit:
        ignore = set(encoder.ignore or [])
        leaked = [t for t in tasks + ([sample_weight] if sample_weight else []) if t not in ignore]
        if leaked:
            raise DataValidationError(f"encode_to_store: the encoder infers its columns but would take the label "
                                      f"column(s) {leaked} as features. Pass ignore={leaked} (or list sparse= / "
                                      "dense= explicitly).")
    columns: list[str] | None = None
    if explicit:
        vl = encoder.varlen if isinstance(encoder.varlen, Mapping) else list(encoder.varlen or [])
        feats = list(encoder.sparse or []) + list(encoder.dense or []) + list(vl)
        columns = list(dict.fromkeys(feats + tasks + ([sample_weight] if sample_weight else [])))
    if fit:
        rows = 0
        for chunk in _read_chunks(source, int(chunksize), columns, read_options):
            if len(chunk):
                encoder.partial_fit(chunk)
                rows += len(chunk)
        if rows == 0:
            raise DataValidationError(f"encode_to_store: {source!r} has no rows.")
        encoder.finish_partial_fit()
    cols = encoder.feature_columns
    with StoreWriter(out_path, cols, tasks, task_types, encoder=encoder, chunk_rows=chunk_rows,
                     compression=compression) as w:
        for chunk in _read_chunks(source, int(chunksize), columns, read_options):
            if not len(chunk):
                continue
            missing = [c for c in tasks + ([sample_weight] if sample_weight else []) if c not in chunk.columns]
            if missing:
                raise DataValidationError(f"encode_to_store: {source!r} lacks the label/weight column(s) {missing}; "
                                          f"its columns are {list(chunk.columns)[:30]}.")
            y = {t: chunk[t].to_numpy() for t in tasks}
            wt = None if sample_weight is None else chunk[sample_weight].to_numpy()
            w.append(encoder.transform(chunk), y, wt)
    return open_store(out_path)


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
