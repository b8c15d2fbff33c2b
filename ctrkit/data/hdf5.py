"""The on-disk store format and its reader: encoded rows in a chunked HDF5 file that ``fit`` / ``evaluate`` /
``predict`` read in batches.

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
    >>> from ctrkit.data import write_store
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
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..exceptions import DataValidationError
from ..features import FeatureColumns, feature_from_dict, split_feature_columns
from .inputs import TensorData
from .prefetch import Prefetcher, cut_batches
from .source import Batch, DataSource, batch_size_of, check_batch_size

__all__ = ["H5Store", "open_store", "STORE_FORMAT", "STORE_VERSION"]

STORE_FORMAT = "ctrkit-store"
STORE_VERSION = 1
DEFAULT_CHUNK_ROWS = 16384
DEFAULT_BUFFER_ROWS = 262144


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("ctrkit.data stores need h5py: pip install h5py") from None
    return h5py


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
        where = f"ctrkit.data.open: {self.path!r}"
        with f:
            a = f.attrs
            if a.get("format") != STORE_FORMAT:
                raise DataValidationError(f"{where} is an HDF5 file but not a ctrkit store "
                                          f"(attribute format={a.get('format')!r}, expected {STORE_FORMAT!r}).")
            attr = "format_version"
            try:
                version = int(a["format_version"])
                if version > STORE_VERSION:
                    raise DataValidationError(f"{where} has store format {version}, newer than this ctrkit reads "
                                              f"({STORE_VERSION}). Upgrade ctrkit.")
                attr = "n_rows"
                self.n_rows = int(a["n_rows"])
                attr = "feature_columns"
                cols = [feature_from_dict(d) for d in json.loads(a["feature_columns"])]
                enc_json = a.get("encoder")
                attr = "task_names"
                self.task_names = list(json.loads(a["task_names"]))
                attr = "task_types"
                types = json.loads(a["task_types"])
                self.task_types = None if types is None else list(types)
                attr = "has_sample_weight"
                self.has_sample_weight = bool(a["has_sample_weight"])
                attr = "has_nan_labels"
                self.has_nan_labels = bool(a["has_nan_labels"])
                attr = "chunk_rows"
                self.chunk_rows = int(a["chunk_rows"])
            except DataValidationError:
                raise
            except (KeyError, ValueError, TypeError, AttributeError) as e:
                raise DataValidationError(f"{where}: the store attribute {attr!r} is missing or corrupted "
                                          f"({type(e).__name__}: {e}). The file was not completely written or was "
                                          "edited; write the store again (ctrkit.data.write_store).") from None
            expected = _dataset_keys(cols, self.has_sample_weight)
            self._keys = [k for k in expected if k in f]
            bad = [f"{k} (missing)" for k in expected if k not in f]
            shapes = {k: tuple(getattr(f[k], "shape", None) or ()) for k in self._keys}
            bad += [f"{k} (shape {shapes[k]})" for k in self._keys if shapes[k][:1] != (self.n_rows,)]
            if bad:
                raise DataValidationError(f"{where}: its datasets do not match its attributes (n_rows={self.n_rows}, "
                                          f"feature_columns): {bad}. The file was not completely written or was "
                                          "edited; write the store again (ctrkit.data.write_store).")
        self.encoder = None
        if enc_json:
            from ..preprocessing import FeatureEncoder
            try:
                self.encoder = FeatureEncoder.from_json(str(enc_json))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise DataValidationError(f"{where}: the stored encoder (attribute 'encoder') is corrupted "
                                          f"({type(e).__name__}: {e}). Write the store again.") from None
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
                    try:
                        ds.read_direct(arr, np.s_[a:b], np.s_[o:o + b - a])
                    except OSError as e:  # a truncated or damaged file: h5py's message alone names neither
                        raise DataValidationError(
                            f"H5Store: reading rows {a}:{b} of dataset {key!r} in {self.path!r} failed ({e}). The "
                            "file is truncated or damaged; write the store again (ctrkit.data.write_store).") from None
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
        wins: list[tuple[list[tuple[int, int]], int | None]] = []
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

        windows_iter: Iterable[Batch] = Prefetcher(produce, self.prefetch) if self.prefetch > 0 else produce()
        return cut_batches(windows_iter, lambda k: batch_size_of(k, steps, n, batch_size), steps, start_step)

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
        batch_size = check_batch_size(batch_size, "H5Store.batches")
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

