"""Writing stores: :class:`StoreWriter` appends encoded rows chunk by chunk, :func:`write_store` writes a block
or an iterable of chunks. A file is written under a temporary name and renamed into place when complete.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError
from ..features import check_feature_columns, feature_to_dict, split_feature_columns
from .hdf5 import DEFAULT_CHUNK_ROWS, STORE_FORMAT, STORE_VERSION, _h5py
from .inputs import TensorData, to_sample_weight, to_targets, to_tensor_data

__all__ = ["StoreWriter", "write_store"]


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
        >>> from ctrkit.data import open_store
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
        if W is not None:  # has_w
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

