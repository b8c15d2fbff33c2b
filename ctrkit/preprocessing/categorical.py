"""Categorical values: their string keys, the id policy (padding, OOV, vocabulary, hashing), id lookup.

Every categorical and var-length value is first turned into a string key (:func:`category_keys`), then into
an id: 0 is padding, 1 the out-of-vocabulary bucket, known values ``2 .. vocabulary_size-1`` (most frequent
first), hashed columns ``2 + stable_hash(key) % buckets``. A DataFrame column and a list of raw record values
go through the same functions (:func:`category_keys`, :func:`lookup_ids`), so both give the same ids.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError

__all__ = ["MISSING", "PAD_ID", "OOV_ID", "N_RESERVED", "category_keys", "hash_keys", "lookup_ids",
           "infer_column_types"]

MISSING = "<NA>"
PAD_ID = 0
OOV_ID = 1
N_RESERVED = 2
_SMALL = 64  # up to this many keys a dict lookup beats pandas' Index.get_indexer (~50 us fixed cost)


def elem_key(v: Any) -> str:
    """The key of one value of an untyped (object) column or of a list cell."""
    if v is None or v is pd.NA or v is pd.NaT:
        return MISSING
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return MISSING
        if math.isfinite(v) and float(v).is_integer():
            return str(int(v))
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def scalar_key(v: Any) -> str:
    """The key of one value as :func:`category_keys` gives it for a column of that value's type."""
    if isinstance(v, str):
        return v
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return MISSING
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if float(v).is_integer() and abs(v) < 2 ** 62:
            return str(int(v))
        return repr(float(v))
    return elem_key(v)


def category_keys(values: Any) -> np.ndarray:
    """Map a column to an object array of string keys (see the package doc for the rules).

    ``values`` is a column (Series / array: vectorised by dtype) or a list of raw values, e.g. one field of
    a few records (each value keyed by its own type, as the column of that type would be).
    """
    if isinstance(values, list):
        return np.array([scalar_key(v) for v in values], dtype=object)
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt) and not s.isna().any():
        return s.astype(bool).map({True: "True", False: "False"}).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(dt) and not s.isna().any():
        return s.to_numpy(dtype=np.int64).astype(str).astype(object)
    if pd.api.types.is_float_dtype(dt):
        a = s.to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.full(a.shape, MISSING, dtype=object)
        fin = np.isfinite(a)
        integral = fin & (np.floor(a) == a) & (np.abs(a) < 2 ** 62)
        out[integral] = a[integral].astype(np.int64).astype(str)
        other = fin & ~integral
        if other.any():
            out[other] = [repr(float(v)) for v in a[other]]
        inf = np.isinf(a)
        if inf.any():
            out[inf] = np.where(a[inf] > 0, "inf", "-inf")
        return out
    if pd.api.types.infer_dtype(s, skipna=True) == "string":
        return s.astype(object).where(s.notna(), MISSING).to_numpy(dtype=object)
    return np.array([elem_key(v) for v in s.to_numpy(dtype=object)], dtype=object)


def hash_keys(keys: np.ndarray, buckets: int) -> np.ndarray:
    """Stable (process-independent) hash of string keys into ``0 .. buckets-1`` as int64."""
    h = pd.util.hash_array(np.asarray(keys, dtype=object), categorize=True)
    return (h % np.uint64(buckets)).astype(np.int64)


def lookup_ids(keys: np.ndarray, column: str, vocabulary: Sequence[str] | None, buckets: int | None,
               cache: dict, handle_unknown: str = "oov") -> np.ndarray:
    """Ids (int64) of the keys of ``column``: hashed when ``buckets`` is set, else through the vocabulary.

    ``cache`` keeps the column's lookup structures (a dict for a few keys, a pandas Index for many: the
    same mapping either way). Unseen keys get :data:`OOV_ID`, or raise with ``handle_unknown="error"``.
    """
    if buckets is not None:
        return N_RESERVED + hash_keys(keys, buckets)
    assert vocabulary is not None, f"column {column!r} has neither hash buckets nor a vocabulary"
    n = len(keys)
    if n <= _SMALL:
        lookup = cache.get(("dict", column))
        if lookup is None:
            lookup = cache[("dict", column)] = {k: i for i, k in enumerate(vocabulary, N_RESERVED)}
        got = [lookup.get(k, OOV_ID) for k in keys]
        ids = np.array(got, dtype=np.int64)
        if handle_unknown != "error" or OOV_ID not in got:
            return ids
        unseen = ids == OOV_ID
    else:
        index = cache.get(column)
        if index is None:
            index = cache[column] = pd.Index(vocabulary, dtype=object)
        pos = index.get_indexer(keys)
        unseen = pos < 0
        ids = np.where(unseen, OOV_ID, pos + N_RESERVED).astype(np.int64)
    if handle_unknown == "error" and unseen.any():
        bad = pd.unique(np.asarray(keys, dtype=object)[unseen])[:5].tolist()
        raise DataValidationError(f"FeatureEncoder.transform: column {column!r} has values not seen at fit: "
                                  f"{bad}. Use handle_unknown='oov' to map them to the OOV id.")
    return ids


def infer_column_types(df: pd.DataFrame, columns: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """Guess ``(sparse, dense)`` columns from dtypes.

    Floats are dense; strings, booleans and categoricals are sparse; integer columns are sparse when their
    name ends in ``id`` or they have at most 20 distinct values, and dense otherwise.
    """
    sparse: list[str] = []
    dense: list[str] = []
    for c in (list(df.columns) if columns is None else list(columns)):
        s = df[c]
        if pd.api.types.is_bool_dtype(s.dtype):
            sparse.append(c)
        elif pd.api.types.is_integer_dtype(s.dtype):
            (sparse if str(c).lower().endswith("id") or s.nunique(dropna=True) <= 20 else dense).append(c)
        elif pd.api.types.is_float_dtype(s.dtype):
            dense.append(c)
        else:
            sparse.append(c)
    return sparse, dense
