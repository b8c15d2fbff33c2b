"""Model input as columnar tensors, and the conversions from what users pass (DataFrame, dict, encoder output).

Everything below the data boundary is a :class:`TensorData`: one int64 ``(N, F)`` matrix of all
fixed-length sparse ids (in feature-column order), one float32 ``(N, sum of dims)`` matrix of dense values,
and one int64 ``(N, maxlen)`` matrix per var-length feature. Batches are slices of these matrices (views,
no copy), never lists of per-row dicts.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..exceptions import DataValidationError, suggest
from ..features import DenseFeat, SparseFeat, VarLenSparseFeat, split_feature_columns
from ..preprocessing.frames import check_frame_columns

__all__ = ["TensorData", "to_tensor_data", "to_targets", "to_sample_weight", "num_rows"]


@dataclass
class TensorData:
    """Columnar model input: ``sparse`` (N, Fs) int64, ``dense`` (N, Dd) float32, ``varlen`` {name: (N, L)}."""

    sparse: torch.Tensor | None
    dense: torch.Tensor | None
    varlen: dict[str, torch.Tensor] = field(default_factory=dict)
    lengths: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        for t in (self.sparse, self.dense, *self.varlen.values()):
            if t is not None:
                return int(t.shape[0])
        return 0

    def _map(self, fn) -> TensorData:
        return TensorData(None if self.sparse is None else fn(self.sparse),
                          None if self.dense is None else fn(self.dense),
                          {k: fn(v) for k, v in self.varlen.items()},
                          {k: fn(v) for k, v in self.lengths.items()})

    def slice(self, start: int, stop: int) -> TensorData:
        """Rows ``start:stop`` as views."""
        return self._map(lambda t: t[start:stop])

    def take(self, index: torch.Tensor) -> TensorData:
        """Rows at ``index`` (a gather; used once per epoch to shuffle)."""
        return self._map(lambda t: t.index_select(0, index.to(t.device)))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TensorData:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> TensorData:
        return self._map(lambda t: t.pin_memory())


def num_rows(x: Any) -> int:
    if isinstance(x, TensorData):
        return len(x)
    if isinstance(x, pd.DataFrame):
        return len(x)
    if isinstance(x, Mapping):
        return len(next(iter(x.values()))) if x else 0
    if isinstance(x, (list, tuple)) and x:
        return len(x[0])
    return len(x)


def _column(x: Any, name: str, available: Sequence[str]) -> Any:
    try:
        return x[name]
    except (KeyError, IndexError):
        raise DataValidationError(
            f"Input is missing feature column {name!r}.{suggest(name, available)} "
            f"Available: {list(available)[:30]}.") from None


def _hash_values(values: Any, buckets: int) -> np.ndarray:
    from ..preprocessing import category_keys, hash_keys
    return hash_keys(category_keys(pd.Series(np.asarray(values, dtype=object) if not isinstance(values, pd.Series)
                                             else values)), buckets)


def _ids_array(values: Any, feat: SparseFeat | VarLenSparseFeat, where: str) -> np.ndarray:
    """Ids of one sparse column as int64, hashed if ``use_hash``; validated against ``vocabulary_size``."""
    if feat.use_hash:
        arr = np.asarray(values, dtype=object)
        shape = arr.shape
        return _hash_values(arr.reshape(-1), feat.vocabulary_size).reshape(shape)
    if isinstance(values, pd.Series):
        if values.isna().any():
            raise DataValidationError(
                f"{where}: column {feat.name!r} has {int(values.isna().sum())} missing values; ids must be ints. "
                "Fill them, or use ctrkit.FeatureEncoder (missing becomes its own category).")
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object and arr.ndim == 1 and len(arr) and isinstance(arr[0], (list, tuple, np.ndarray)):
        arr = np.stack([np.asarray(v) for v in arr])
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(np.floor(arr) == arr):
            arr = arr.astype(np.int64)
        else:
            raise DataValidationError(
                f"{where}: column {feat.name!r} must hold integer ids in [0, {feat.vocabulary_size}), got dtype "
                f"{arr.dtype} (e.g. {arr.reshape(-1)[:3].tolist()}). Encode it with ctrkit.FeatureEncoder, or "
                f"declare SparseFeat({feat.name!r}, ..., use_hash=True) to hash raw values.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= feat.vocabulary_size:
            bad = hi if hi >= feat.vocabulary_size else lo
            raise DataValidationError(
                f"{where}: column {feat.name!r} has id {bad} outside [0, {feat.vocabulary_size}) "
                f"(vocabulary_size={feat.vocabulary_size}). Ids seen after the feature columns were built need an "
                "out-of-vocabulary bucket: encode with ctrkit.FeatureEncoder (unseen values map to id 1), or "
                "raise vocabulary_size, or use use_hash=True.")
    return arr


def _dense_array(values: Any, feat: DenseFeat, where: str) -> np.ndarray:
    if isinstance(values, pd.Series) and values.dtype == object:
        values = list(values.to_numpy())
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"{where}: dense column {feat.name!r} could not be read as float32 numbers. Convert it, or encode "
            "the frame with ctrkit.FeatureEncoder.") from None
    arr = arr.reshape(len(arr), -1) if arr.ndim != 1 else arr.reshape(-1, 1)
    if arr.shape[1] != feat.dimension:
        raise DataValidationError(f"{where}: dense column {feat.name!r} has {arr.shape[1]} values per row but "
                                  f"DenseFeat({feat.name!r}).dimension is {feat.dimension}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataValidationError(
            f"{where}: dense column {feat.name!r} has {int(bad.sum())} NaN/inf values. Fill them first, or encode "
            "the frame with ctrkit.FeatureEncoder (NaN becomes the training mean, inf is clipped).")
    return arr


def _varlen_array(values: Any, feat: VarLenSparseFeat, where: str) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        arr = values
    else:  # ragged python lists of lists become an object array of rows
        seq = list(values)
        ragged = any(isinstance(v, (list, tuple, np.ndarray)) for v in seq) and len({np.size(v) for v in seq}) > 1
        arr = np.empty(len(seq), dtype=object) if ragged else np.asarray(seq)
        if ragged:
            arr[:] = [np.asarray(v) for v in seq]
    if arr.dtype == object:
        rows = [np.asarray(v, dtype=np.int64).reshape(-1)[: feat.maxlen] for v in arr]
        out = np.zeros((len(rows), feat.maxlen), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        arr = out
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape[1] > feat.maxlen:
        arr = arr[:, : feat.maxlen]
    elif arr.shape[1] < feat.maxlen:
        arr = np.pad(arr, ((0, 0), (0, feat.maxlen - arr.shape[1])))
    return _ids_array(arr, feat, where)


def to_tensor_data(x: Any, feature_columns: Sequence[Any], encoder: Any = None, where: str = "input") -> TensorData:
    """Convert user input to :class:`TensorData`.

    Args:
        x: a :class:`TensorData`; the encoder's output or a dict ``{feature name: array}`` (DeepCTR's format);
            a DataFrame (raw values, encoded on the fly when ``encoder`` is given; otherwise its columns are
            read as already-encoded arrays); or a list of arrays in feature-column order.
        feature_columns: the model's feature columns.
        encoder: a fitted :class:`~ctrkit.FeatureEncoder` applied to DataFrames.
    """
    if isinstance(x, TensorData):
        return x
    if isinstance(x, pd.DataFrame):
        check_frame_columns(x, where, "x", [f.name for f in feature_columns] if encoder is None
                            else [str(c) for c in getattr(encoder, "feature_names_in_", [])] or None)
    if isinstance(x, pd.DataFrame) and encoder is not None:
        x = encoder.transform(x)
    split = split_feature_columns(feature_columns)
    if isinstance(x, (list, tuple)) and not isinstance(x, Mapping):
        names = [f.name for f in feature_columns]
        if len(x) != len(names) and x and isinstance(x[0], (list, tuple)):
            raise DataValidationError(
                f"{where}: x is a list of {len(x)} rows (lists), which cannot be matched to feature columns. Pass a "
                f"DataFrame with columns {names[:10]}{' ...' if len(names) > 10 else ''}, or a dict "
                "{feature name: array}.")
        if len(x) != len(names):
            raise DataValidationError(f"{where}: a list input needs one array per feature column "
                                      f"({len(names)}: {names}), got {len(x)}.")
        x = dict(zip(names, x))
    if isinstance(x, np.ndarray):
        raise DataValidationError(f"{where}: a bare numpy array cannot be matched to feature columns. Pass a "
                                  "DataFrame or a dict {feature name: array}.")
    if not isinstance(x, (Mapping, pd.DataFrame)):
        raise DataValidationError(f"{where}: expected a DataFrame, a dict of arrays or encoder output, "
                                  f"got {type(x).__name__}.")
    available = list(x.keys()) if isinstance(x, Mapping) else list(x.columns)
    needed = [f.name for f in feature_columns] + [f.length_name for f in split.varlen if f.length_name]
    missing = [n for n in needed if n not in available]
    if missing:
        raise DataValidationError(
            f"{where}: missing feature columns {missing}.{suggest(missing[0], available)} "
            f"Available columns: {available[:30]}{' ...' if len(available) > 30 else ''}.")
    n = num_rows(x)
    for name in needed:
        if len(x[name]) != n:
            raise DataValidationError(f"{where}: column {name!r} has {len(x[name])} rows but "
                                      f"{available[0]!r} has {n}. All input columns need the same length.")
    sparse = None
    if split.sparse:
        mat = np.empty((n, len(split.sparse)), dtype=np.int64)
        for j, f in enumerate(split.sparse):
            mat[:, j] = _ids_array(_column(x, f.name, available), f, where).reshape(n)
        sparse = torch.from_numpy(mat)
    dense = None
    if split.dense:
        dense = torch.from_numpy(np.concatenate(
            [_dense_array(_column(x, f.name, available), f, where) for f in split.dense], axis=1))
    varlen = {f.name: torch.from_numpy(np.ascontiguousarray(_varlen_array(_column(x, f.name, available), f, where)))
              for f in split.varlen}
    lengths = {f.name: torch.from_numpy(np.array(_column(x, f.length_name, available), dtype=np.int64).reshape(n))
               for f in split.varlen if f.length_name}
    return TensorData(sparse, dense, varlen, lengths)


def to_targets(y: Any, task_names: Sequence[str], task_types: Sequence[str], n: int,
               where: str = "y") -> torch.Tensor:
    """Labels as a float32 ``(n, T)`` tensor in task order, validated per task type.

    Accepts ``{task: array}``, a DataFrame with one column per task, a ``(n, T)`` array in task order, a list
    of ``T`` arrays, one per output in task order (Keras' ``fit(x, [y1, y2])``), or a 1-D array / Series for
    single-task models. NaN marks a missing label (masked out of that task's loss).
    """
    T = len(task_names)
    if isinstance(y, (str, bytes)) or np.ndim(y) == 0 and not isinstance(y, Mapping):
        raise DataValidationError(
            f"{where}: expected labels (an array of {n} values, a Series, a DataFrame of task columns or a dict "
            f"{{task: array}} for tasks {list(task_names)}), got the {type(y).__name__} {y!r}. To use a column "
            "of x as the label, pass y=df[name] (and drop it from the features).")
    if isinstance(y, (list, tuple)) and len(y) == T and all(np.ndim(c) >= 1 for c in y):
        y = {t: (c.to_numpy() if isinstance(c, (pd.Series, pd.DataFrame)) else np.asarray(c)).reshape(-1)
             for t, c in zip(task_names, y)}
    if isinstance(y, pd.DataFrame):
        check_frame_columns(y, where, "y", list(task_names))
    if isinstance(y, Mapping) or isinstance(y, pd.DataFrame):
        keys = list(y.keys()) if isinstance(y, Mapping) else list(y.columns)
        unknown = [k for k in keys if k not in task_names]
        missing = [t for t in task_names if t not in keys]
        if unknown or missing:
            msg = f"{where}: targets must name exactly the model's tasks {list(task_names)}"
            if unknown:
                msg += f"; got unknown task(s) {unknown}{suggest(unknown[0], task_names)}"
            if missing:
                msg += f"; missing task(s) {missing}"
            raise DataValidationError(msg + ".")
        cols = [np.asarray(y[t], dtype=object if not _numeric(y[t]) else np.float32).reshape(-1) for t in task_names]
    else:
        if isinstance(y, pd.Series):
            y = y.to_numpy()
        arr = np.asarray(y)
        if arr.ndim == 1:
            if T != 1:
                raise DataValidationError(
                    f"{where}: got a 1-D target but the model has {T} tasks {list(task_names)}. Pass a dict "
                    "{task: array}, a DataFrame of task columns, or an (n, T) array in task order.")
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != T:
            raise DataValidationError(f"{where}: expected targets of shape (n, {T}) for tasks {list(task_names)}, "
                                      f"got shape {arr.shape}.")
        cols = [arr[:, t] for t in range(T)]
    out = np.empty((n, T), dtype=np.float32)
    for t, (name, typ, col) in enumerate(zip(task_names, task_types, cols)):
        if len(col) != n:
            raise DataValidationError(f"{where}: task {name!r} has {len(col)} labels but the input has {n} rows. "
                                      "x and y must have the same number of rows.")
        try:
            vals = np.asarray(pd.to_numeric(pd.Series(col), errors="raise"), dtype=np.float64)
        except (TypeError, ValueError):
            raise DataValidationError(f"{where}: task {name!r} labels must be numbers, got values like "
                                      f"{list(col[:3])}.") from None
        if np.isinf(vals).any():
            raise DataValidationError(f"{where}: task {name!r} has {int(np.isinf(vals).sum())} infinite labels; "
                                      "labels must be finite numbers (NaN marks a missing label).")
        big = np.abs(np.nan_to_num(vals)) > _F32_MAX
        if big.any():
            raise DataValidationError(
                f"{where}: task {name!r} has {int(big.sum())} labels beyond float32's range (+-3.4e38, e.g. "
                f"{vals[big][0]:g}); they would become inf. Rescale the labels (e.g. log1p, or divide by a constant).")
        fin = vals[~np.isnan(vals)]
        if typ == "binary" and fin.size and not np.isin(fin, (0.0, 1.0)).all():
            found = np.unique(fin)[:6].tolist()
            raise DataValidationError(
                f"{where}: task {name!r} is binary, so labels must be 0 or 1, got values {found}. Map them to "
                "0/1 (e.g. y = (y == positive_value)), or declare the task 'regression'.")
        out[:, t] = vals
    return torch.from_numpy(out)


_F32_MAX = float(np.finfo(np.float32).max)


def _numeric(col: Any) -> bool:
    try:
        return np.issubdtype(np.asarray(col).dtype, np.number)
    except TypeError:
        return False


def to_sample_weight(w: Any, n: int) -> torch.Tensor | None:
    if w is None:
        return None
    if isinstance(w, (str, bytes, Mapping, pd.DataFrame)) or np.ndim(w) == 0:
        raise DataValidationError(f"sample_weight: expected one number per row ({n} values: an array or a Series), "
                                  f"got a {type(w).__name__}.")
    try:
        arr = np.asarray(w, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataValidationError("sample_weight: values must be numbers, got values like "
                                  f"{list(np.asarray(w, dtype=object).reshape(-1)[:3])}.") from None
    if np.isfinite(arr).all() and (np.abs(arr) > _F32_MAX).any():
        raise DataValidationError("sample_weight: values beyond float32's range (+-3.4e38); rescale the weights.")
    arr = arr.astype(np.float32)
    if len(arr) != n:
        raise DataValidationError(f"sample_weight: has {len(arr)} values but the input has {n} rows.")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise DataValidationError("sample_weight: values must be finite and >= 0.")
    return torch.from_numpy(arr)
