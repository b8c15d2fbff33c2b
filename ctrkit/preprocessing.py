"""Preprocessing: turn a raw DataFrame into model input and produce the feature columns.

:class:`FeatureEncoder` follows scikit-learn's estimator contract (``__init__`` only stores parameters,
``fit`` returns ``self``, fitted attributes end in ``_``) and works inside an sklearn ``Pipeline``::

    enc = FeatureEncoder(sparse=["user_id", "city"], dense=["age"], varlen={"genres": "|"}).fit(df_train)
    x = enc.transform(df_test)          # dict of int64 / float32 numpy arrays, one per feature
    enc.feature_columns                 # [SparseFeat('user_id', ...), DenseFeat('age'), VarLenSparseFeat(...)]

Id policy (every categorical and var-length column):
    * 0 is padding (only used by var-length lists), 1 is the out-of-vocabulary (OOV) bucket;
    * known values get ids 2 .. vocabulary_size-1, most frequent first;
    * values seen fewer than ``min_freq`` times at fit, and values never seen, map to 1 (never an IndexError);
    * missing values (None, NaN, pd.NA) are a category of their own (``"<NA>"``), learned like any other;
    * values are compared by their string form, with integral floats written as ints, so ``7``, ``7.0``
      and ``"7"`` are the same category (a column read as int at fit and as str at predict still matches);
    * with hashing (``hash_buckets``) a value maps to ``2 + stable_hash(value) % buckets`` (no vocabulary kept).

Dense policy: values are coerced to float (non-numeric strings become NaN); ``+-inf`` are clipped to the
training min / max; NaN is replaced by the training mean of the finite values (0 if the column was all NaN
at fit); then ``scaling`` applies: ``"standard"`` (z-score; a constant column gets scale 1, so no division by
zero), ``"minmax"`` (to [0, 1] on the training range; a constant column maps to 0) or ``None``; the result is
clipped to [-10,000, 10,000] so extreme values (1e308) cannot overflow float32.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .exceptions import DataValidationError, NotFittedError, SchemaError, suggest
from .features import DenseFeat, FeatureColumns, SparseFeat, VarLenSparseFeat

__all__ = ["FeatureEncoder", "EncodedData", "MISSING", "PAD_ID", "OOV_ID", "category_keys", "hash_keys",
           "infer_column_types"]

MISSING = "<NA>"
PAD_ID = 0
OOV_ID = 1
_N_RESERVED = 2
_SCALINGS = ("standard", "minmax", None)
_FORMAT_VERSION = 1
_CLIP = 1e4  # scaled dense values are clipped to [-_CLIP, _CLIP]


class EncodedData(dict):
    """The encoder's output: ``{feature name: numpy array}`` with int64 ids and float32 dense values.

    A plain ``dict`` (DeepCTR's input format) that also says how many rows it holds.
    """

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0


# ----------------------------------------------------------------------------------------------- helpers
def _elem_key(v: Any) -> str:
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


def _scalar_key(v: Any) -> str:
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
    return _elem_key(v)


def _scalar_float(v: Any) -> float:
    """One value as :meth:`FeatureEncoder._to_float` reads it: numbers as floats, anything else NaN."""
    if v is None or v is pd.NA or v is pd.NaT:
        return math.nan
    if isinstance(v, (str, bytes)):
        try:
            return float(v)
        except ValueError:
            return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _list_tokens(v: Any, sep: str) -> list[str]:
    """The keys of one var-length cell, as :meth:`FeatureEncoder._split_lists` reads it."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [k for k in (_elem_key(t) for t in v) if k not in (MISSING, "")]
    k = _elem_key(v)
    if k == MISSING or k == "":
        return []
    return [t for t in k.split(sep) if t != ""]


def category_keys(values: Any) -> np.ndarray:
    """Map a column to an object array of string keys (see the module doc for the rules), vectorised."""
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
    return np.array([_elem_key(v) for v in s.to_numpy(dtype=object)], dtype=object)


def hash_keys(keys: np.ndarray, buckets: int) -> np.ndarray:
    """Stable (process-independent) hash of string keys into ``0 .. buckets-1`` as int64."""
    h = pd.util.hash_array(np.asarray(keys, dtype=object), categorize=True)
    return (h % np.uint64(buckets)).astype(np.int64)


def infer_column_types(df: pd.DataFrame, columns: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """Guess ``(sparse, dense)`` columns from dtypes.

    Floats are dense; strings, booleans and categoricals are sparse; integer columns are sparse when their
    name ends in ``id`` or they have at most 20 distinct values, and dense otherwise.
    """
    sparse, dense = [], []
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


def _per_column(value: Any, column: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(column, default)
    return default if value is None else value


# ----------------------------------------------------------------------------------------------- encoder
class FeatureEncoder(TransformerMixin, BaseEstimator):
    """Fit vocabularies and scalers on a DataFrame, transform frames to model input, emit feature columns.

    Args:
        sparse: categorical columns. If ``sparse``, ``dense`` and ``varlen`` are all None, every column not
            in ``ignore`` is used and its type is inferred (:func:`infer_column_types`).
        dense: numeric columns.
        varlen: multi-valued string columns, ``{name: separator}`` (or a list of names, separator ``"|"``).
            A cell may also already be a list of values.
        embedding_dim: embedding width for every sparse/var-length feature, ``"auto"``, or a dict per column.
        min_freq: values seen fewer times than this at fit map to the OOV id (int or dict per column).
        hash_buckets: hash these columns into a fixed number of buckets instead of learning a vocabulary
            (an int for every categorical column, or ``{column: buckets}``).
        max_vocab: keep at most this many most frequent values per column (None: no limit).
        scaling: ``"standard"``, ``"minmax"`` or None, or a dict per dense column.
        maxlen: padded length of var-length columns (int or dict); None uses the longest list seen at fit.
        combiner: pooling of var-length columns (``"mean"``, ``"sum"``, ``"max"``).
        truncating: where over-long lists are cut, ``"pre"`` (keep the last ``maxlen`` values, Keras' default,
            right for time-ordered behaviour sequences) or ``"post"`` (keep the first).
        handle_unknown: ``"oov"`` maps unseen values to the OOV id; ``"error"`` raises instead.
        ignore: columns never used as features when types are inferred (e.g. the labels).

    Attributes:
        feature_names_in_: the columns the encoder reads.
        sparse_columns_, dense_columns_, varlen_columns_: the columns by role.
        vocabularies_: ``{column: [key, ...]}`` (index i has id i + 2); hashed columns are absent.
        dense_stats_: ``{column: {"fill", "center", "scale", "lo", "hi"}}``.
        maxlen_: ``{varlen column: maxlen}``.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"city": ["a", "b", "a"], "age": [20.0, 30.0, None], "tags": ["x|y", "y", ""]})
        >>> enc = FeatureEncoder(sparse=["city"], dense=["age"], varlen={"tags": "|"}).fit(df)
        >>> out = enc.transform(pd.DataFrame({"city": ["c"], "age": [25.0], "tags": ["y|z"]}))
        >>> int(out["city"][0]), out["tags"].tolist()
        (1, [[2, 1]])
    """

    def __init__(self, sparse=None, dense=None, varlen=None, *, embedding_dim=8, min_freq=1, hash_buckets=None,
                 max_vocab=None, scaling="standard", maxlen=None, combiner="mean", truncating="pre",
                 handle_unknown="oov", ignore=None):
        self.sparse = sparse
        self.dense = dense
        self.varlen = varlen
        self.embedding_dim = embedding_dim
        self.min_freq = min_freq
        self.hash_buckets = hash_buckets
        self.max_vocab = max_vocab
        self.scaling = scaling
        self.maxlen = maxlen
        self.combiner = combiner
        self.truncating = truncating
        self.handle_unknown = handle_unknown
        self.ignore = ignore

    # ------------------------------------------------------------------ fit
    def _resolve_columns(self, df: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
        if isinstance(self.varlen, Mapping):
            varlen = {str(k): str(v) for k, v in self.varlen.items()}
        else:
            varlen = {str(k): "|" for k in (self.varlen or [])}
        if self.sparse is None and self.dense is None and self.varlen is None:
            ignore = set(self.ignore or [])
            sparse, dense = infer_column_types(df, [c for c in df.columns if c not in ignore])
        else:
            sparse, dense = list(self.sparse or []), list(self.dense or [])
        seen: dict[str, str] = {}
        for role, cols in (("sparse", sparse), ("dense", dense), ("varlen", list(varlen))):
            for c in cols:
                if c in seen:
                    raise SchemaError(f"FeatureEncoder: column {c!r} is listed as both {seen[c]} and {role}. "
                                      "Give each column one role.")
                seen[c] = role
        for arg, val in (("scaling", self.scaling),):
            for v in (val.values() if isinstance(val, Mapping) else [val]):
                if v not in _SCALINGS:
                    raise ValueError(f"FeatureEncoder: {arg} must be one of {list(_SCALINGS)}, got {v!r}.")
        if self.handle_unknown not in ("oov", "error"):
            raise ValueError(f"FeatureEncoder: handle_unknown must be 'oov' or 'error', got {self.handle_unknown!r}.")
        if self.truncating not in ("pre", "post"):
            raise ValueError(f"FeatureEncoder: truncating must be 'pre' or 'post', got {self.truncating!r}.")
        return sparse, dense, varlen

    def _check_frame(self, df: Any, columns: list[str], where: str) -> pd.DataFrame:
        if isinstance(df, Mapping):
            df = pd.DataFrame(dict(df))
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"FeatureEncoder.{where}: expected a pandas DataFrame, got {type(df).__name__}. "
                            "Wrap arrays with pd.DataFrame({...}).")
        missing = [c for c in columns if c not in df.columns]
        if missing:
            hint = suggest(missing[0], df.columns)
            raise DataValidationError(
                f"FeatureEncoder.{where}: the DataFrame is missing columns {missing}.{hint} "
                f"Available columns: {list(df.columns)[:30]}{' ...' if df.shape[1] > 30 else ''}.")
        return df

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureEncoder:
        """Learn vocabularies, dense statistics and var-length sizes from ``X``. Returns ``self``."""
        state = self._new_state(X)
        self._accumulate(state, X)
        self._finalize(state)
        return self

    def partial_fit(self, X: pd.DataFrame, y: Any = None) -> FeatureEncoder:
        """Accumulate statistics from one chunk; call :meth:`finish_partial_fit` after the last chunk.

        Fitting chunk by chunk gives the same encoder as one ``fit`` on the concatenated chunks (counts, sums
        and min/max add up exactly), so files larger than memory can be fitted in a streaming pass.
        """
        if getattr(self, "_partial_state", None) is None:
            self._partial_state = self._new_state(X)
        self._accumulate(self._partial_state, X)
        return self

    def finish_partial_fit(self) -> FeatureEncoder:
        state = getattr(self, "_partial_state", None)
        if state is None:
            raise NotFittedError("FeatureEncoder.finish_partial_fit: call partial_fit on at least one chunk first.")
        self._finalize(state)
        self._partial_state = None
        return self

    def _new_state(self, X: pd.DataFrame) -> dict[str, Any]:
        if not isinstance(X, pd.DataFrame):
            X = self._check_frame(X, [], "fit")
        sparse, dense, varlen = self._resolve_columns(X)
        return {"sparse": sparse, "dense": dense, "varlen": varlen, "n": 0,
                "counts": {c: {} for c in sparse + list(varlen)}, "maxlen": {c: 0 for c in varlen},
                "dstats": {c: [0, 0.0, 0.0, math.inf, -math.inf] for c in dense}}  # n, mean, M2, lo, hi

    def _accumulate(self, state: dict[str, Any], X: pd.DataFrame) -> None:
        cols = state["sparse"] + state["dense"] + list(state["varlen"])
        X = self._check_frame(X, cols, "fit")
        state["n"] += len(X)
        for c in state["sparse"]:
            if self._buckets(c) is None:
                vc = pd.Series(category_keys(X[c])).value_counts(sort=False)
                cnt = state["counts"][c]
                for k, v in zip(vc.index.tolist(), vc.to_numpy().tolist()):
                    cnt[k] = cnt.get(k, 0) + v
        for c, sep in state["varlen"].items():
            tokens, lengths = self._split_lists(X[c], sep)
            state["maxlen"][c] = max(state["maxlen"][c], int(lengths.max()) if len(lengths) else 0)
            if self._buckets(c) is None and len(tokens):
                vc = pd.Series(tokens).value_counts(sort=False)
                cnt = state["counts"][c]
                for k, v in zip(vc.index.tolist(), vc.to_numpy().tolist()):
                    cnt[k] = cnt.get(k, 0) + v
        for c in state["dense"]:
            a = self._to_float(X[c])
            fin = a[np.isfinite(a)]
            st = state["dstats"][c]
            if fin.size:  # merge (count, mean, M2) with Chan et al.'s update: exact-ish in any chunking
                nb, mb = fin.size, float(fin.mean(dtype=np.float64))
                with np.errstate(over="ignore", invalid="ignore"):
                    m2b = float(((fin - mb) ** 2).sum())
                na, ma = st[0], st[1]
                n = na + nb
                delta = mb - ma
                st[0], st[1] = n, ma + delta * nb / n
                st[2] += m2b + delta * delta * na * nb / n
                st[3] = min(st[3], float(fin.min()))
                st[4] = max(st[4], float(fin.max()))

    def _finalize(self, state: dict[str, Any]) -> None:
        if state["n"] == 0:
            raise DataValidationError("FeatureEncoder.fit: the DataFrame has no rows. Fit on at least one row.")
        self.sparse_columns_ = list(state["sparse"])
        self.dense_columns_ = list(state["dense"])
        self.varlen_columns_ = dict(state["varlen"])
        self.feature_names_in_ = np.array(self.sparse_columns_ + self.dense_columns_ + list(self.varlen_columns_),
                                          dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.hash_buckets_ = {c: b for c in self.sparse_columns_ + list(self.varlen_columns_)
                              if (b := self._buckets(c)) is not None}
        self.vocabularies_ = {}
        for c, cnt in state["counts"].items():
            if c in self.hash_buckets_:
                continue
            min_freq = int(_per_column(self.min_freq, c, 1))
            max_vocab = _per_column(self.max_vocab, c, None)
            items = sorted(((k, v) for k, v in cnt.items() if v >= min_freq), key=lambda kv: (-kv[1], kv[0]))
            if max_vocab is not None:
                items = items[: int(max_vocab)]
            self.vocabularies_[c] = [k for k, _ in items]
        self.dense_stats_ = {}
        for c, (n, mean, m2, lo, hi) in state["dstats"].items():
            std = math.sqrt(m2 / n) if n else 0.0
            lo, hi = (lo, hi) if n else (0.0, 0.0)
            scaling = _per_column(self.scaling, c, self.scaling if not isinstance(self.scaling, Mapping) else None)
            if scaling == "standard":
                center, scale = mean, (std if std > 1e-12 else 1.0)
            elif scaling == "minmax":
                center, scale = lo, ((hi - lo) if hi - lo > 1e-12 else 1.0)
            else:
                center, scale = 0.0, 1.0
            self.dense_stats_[c] = {"fill": mean, "center": center, "scale": scale, "lo": lo, "hi": hi}
        self.maxlen_ = {c: int(_per_column(self.maxlen, c, None) or max(state["maxlen"][c], 1))
                        for c in self.varlen_columns_}
        self._index_cache = {}

    def _buckets(self, c: str) -> int | None:
        b = _per_column(self.hash_buckets, c, None) if isinstance(self.hash_buckets, Mapping) else self.hash_buckets
        if b is None:
            return None
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"FeatureEncoder: hash_buckets for column {c!r} must be an int >= 1, got {b!r}.")
        return int(b)

    @staticmethod
    def _to_float(s: pd.Series) -> np.ndarray:
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            return s.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    @staticmethod
    def _split_lists(s: pd.Series, sep: str) -> tuple[np.ndarray, np.ndarray]:
        """All tokens (as keys) of a var-length column, and each row's length."""
        def to_list(v: Any) -> list:
            if isinstance(v, (list, tuple, np.ndarray)):
                return [t for t in v if _elem_key(t) not in (MISSING, "")]
            k = _elem_key(v)
            if k == MISSING or k == "":
                return []
            return [t for t in k.split(sep) if t != ""]
        lists = [to_list(v) for v in s.to_numpy(dtype=object)]
        lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
        flat = [t for v in lists for t in v]
        tokens = category_keys(pd.Series(flat, dtype=object)) if flat else np.array([], dtype=object)
        return tokens, lengths

    # ------------------------------------------------------------------ transform
    def _check_fitted(self) -> None:
        if not hasattr(self, "vocabularies_"):
            raise NotFittedError("This FeatureEncoder instance is not fitted yet. Call 'fit' with a DataFrame "
                                 "before using it (or load a saved model that bundles a fitted encoder).")

    def _ids(self, c: str, keys: np.ndarray) -> np.ndarray:
        if c in self.hash_buckets_:
            return _N_RESERVED + hash_keys(keys, self.hash_buckets_[c])
        index = self._index_cache.get(c) if hasattr(self, "_index_cache") else None
        if index is None:
            index = pd.Index(self.vocabularies_[c], dtype=object)
            if not hasattr(self, "_index_cache"):
                self._index_cache = {}
            self._index_cache[c] = index
        pos = index.get_indexer(keys) if len(keys) else np.empty(0, dtype=np.int64)
        unseen = pos < 0
        if self.handle_unknown == "error" and unseen.any():
            bad = pd.unique(keys[unseen])[:5].tolist()
            raise DataValidationError(f"FeatureEncoder.transform: column {c!r} has values not seen at fit: {bad}. "
                                      "Use handle_unknown='oov' to map them to the OOV id.")
        return np.where(unseen, OOV_ID, pos + _N_RESERVED).astype(np.int64)

    def vocabulary_size(self, c: str) -> int:
        """Rows of the embedding table of column ``c`` (padding + OOV + known values or buckets)."""
        self._check_fitted()
        if c in self.hash_buckets_:
            return _N_RESERVED + self.hash_buckets_[c]
        return _N_RESERVED + len(self.vocabularies_[c])

    def transform(self, X: pd.DataFrame) -> EncodedData:
        """Encode a DataFrame. Extra columns are ignored; column order does not matter.

        Returns:
            :class:`EncodedData` with int64 ``(n,)`` ids per sparse column, float32 ``(n,)`` per dense column
            and int64 ``(n, maxlen)`` per var-length column (0-padded at the end).
        """
        self._check_fitted()
        X = self._check_frame(X, list(self.feature_names_in_), "transform")
        out = EncodedData()
        for c in self.sparse_columns_:
            out[c] = self._ids(c, category_keys(X[c]))
        for c in self.dense_columns_:
            st = self.dense_stats_[c]
            a = self._to_float(X[c])
            a = np.where(np.isnan(a), st["fill"], a)
            a = np.where(np.isposinf(a), st["hi"], np.where(np.isneginf(a), st["lo"], a))
            with np.errstate(over="ignore", invalid="ignore"):
                z = (a - st["center"]) / st["scale"]
            # extreme inputs (e.g. 1e308) must not overflow float32 or blow up training: bound the scaled value
            out[c] = np.clip(np.nan_to_num(z, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP).astype(np.float32)
        for c, sep in self.varlen_columns_.items():
            out[c] = self._encode_lists(c, X[c], sep)
        return out

    def _encode_lists(self, c: str, s: pd.Series, sep: str) -> np.ndarray:
        L = self.maxlen_[c]
        tokens, lengths = self._split_lists(s, sep)
        ids = self._ids(c, tokens)
        n = len(lengths)
        out = np.zeros((n, L), dtype=np.int64)
        if n == 0 or ids.size == 0:
            return out
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        keep = np.minimum(lengths, L)
        # position of each kept token inside its row
        first = starts + (lengths - keep if self.truncating == "pre" else 0)
        rows = np.repeat(np.arange(n), keep)
        offs = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
        out[rows, offs] = ids[np.repeat(first, keep) + offs]
        return out

    def transform_records(self, records: Iterable[Mapping[str, Any]]) -> EncodedData:
        """Encode raw records (dicts of column → value) without building a DataFrame: the serving path.

        Gives exactly what ``transform(pd.DataFrame.from_records(records))`` gives (same keys, ids, fills and
        scaling; a field absent from a record is missing), at a cost that grows with the number of values
        only, so a single record takes microseconds rather than the milliseconds of a DataFrame round trip.

        Example:
            >>> import pandas as pd
            >>> enc = FeatureEncoder(sparse=["city"], dense=["age"]).fit(
            ...     pd.DataFrame({"city": ["a", "b", "a"], "age": [20.0, 30.0, None]}))
            >>> out = enc.transform_records([{"city": "b", "age": 25}, {"city": "zzz"}])
            >>> out["city"].tolist(), out["age"].tolist()
            ([3, 1], [0.0, 0.0])
        """
        self._check_fitted()
        recs = records if isinstance(records, list) else list(records)
        cols = self._records_columns(recs)
        out = EncodedData()
        for c in self.sparse_columns_:
            out[c] = np.array(cols[c], dtype=np.int64)
        for c in self.dense_columns_:
            out[c] = np.array(cols[c], dtype=np.float64).astype(np.float32)
        for c in self.varlen_columns_:
            out[c] = cols[c]
        return out

    def _records_columns(self, recs: list) -> dict[str, Any]:
        """:meth:`transform_records` as plain lists: ids (sparse), float64 values (dense), and the int64
        ``(n, maxlen)`` matrices of var-length columns."""
        for i, r in enumerate(recs):
            if not isinstance(r, Mapping):
                raise TypeError(f"FeatureEncoder.transform_records: records must be dicts of column -> value, "
                                f"got {type(r).__name__} at position {i}. Pass a DataFrame to transform() instead.")
        n = len(recs)
        out: dict[str, Any] = {}
        for c in self.sparse_columns_:
            out[c] = self._record_ids(c, [_scalar_key(r.get(c)) for r in recs])
        for c in self.dense_columns_:
            st = self.dense_stats_[c]
            fill, lo, hi, center, scale = st["fill"], st["lo"], st["hi"], st["center"], st["scale"]
            col = []
            for r in recs:
                a = _scalar_float(r.get(c))
                if a != a:
                    a = fill
                elif a == math.inf:
                    a = hi
                elif a == -math.inf:
                    a = lo
                z = (a - center) / scale
                col.append(0.0 if z != z else (-_CLIP if z < -_CLIP else _CLIP if z > _CLIP else z))
            out[c] = col
        for c, sep in self.varlen_columns_.items():
            L = self.maxlen_[c]
            mat = np.zeros((n, L), dtype=np.int64)
            for i, r in enumerate(recs):
                toks = _list_tokens(r.get(c), sep)
                if not toks:
                    continue
                if len(toks) > L:
                    toks = toks[-L:] if self.truncating == "pre" else toks[:L]
                mat[i, :len(toks)] = self._record_ids(c, toks)
            out[c] = mat
        return out

    def _record_ids(self, c: str, keys: list[str]) -> list[int]:
        """Ids of a few keys through a dict (a pandas Index lookup costs ~50 us even for one key)."""
        if c in self.hash_buckets_:
            return self._ids(c, np.array(keys, dtype=object)).tolist()
        cache = self.__dict__.setdefault("_index_cache", {})
        lookup = cache.get(("dict", c))
        if lookup is None:
            lookup = cache[("dict", c)] = {k: i for i, k in enumerate(self.vocabularies_[c], _N_RESERVED)}
        ids = [lookup.get(k, OOV_ID) for k in keys]
        if self.handle_unknown == "error" and OOV_ID in ids:
            bad = [k for k, i in zip(keys, ids) if i == OOV_ID][:5]
            raise DataValidationError(f"FeatureEncoder.transform: column {c!r} has values not seen at fit: {bad}. "
                                      "Use handle_unknown='oov' to map them to the OOV id.")
        return ids

    # ------------------------------------------------------------------ feature columns
    @property
    def feature_columns(self) -> FeatureColumns:
        """Feature columns for a model, in the order sparse, dense, var-length; they remember this encoder."""
        self._check_fitted()
        cols: list = []
        for c in self.sparse_columns_:
            cols.append(SparseFeat(c, self.vocabulary_size(c), self._dim(c), dtype="int64"))
        for c in self.dense_columns_:
            cols.append(DenseFeat(c, 1))
        for c in self.varlen_columns_:
            sf = SparseFeat(c, self.vocabulary_size(c), self._dim(c), dtype="int64")
            cols.append(VarLenSparseFeat(sf, maxlen=self.maxlen_[c], combiner=self.combiner))
        return FeatureColumns(cols, encoder=self)

    def _dim(self, c: str) -> int | str:
        return _per_column(self.embedding_dim, c, 8) if isinstance(self.embedding_dim, Mapping) else self.embedding_dim

    # ------------------------------------------------------------------ serialisation (JSON, no pickle)
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the parameters and fitted state."""
        self._check_fitted()
        params = self.get_params()
        for k, v in params.items():
            if isinstance(v, np.ndarray):
                params[k] = v.tolist()
        return {"format_version": _FORMAT_VERSION, "params": params,
                "state": {"sparse_columns_": self.sparse_columns_, "dense_columns_": self.dense_columns_,
                          "varlen_columns_": self.varlen_columns_, "hash_buckets_": self.hash_buckets_,
                          "vocabularies_": self.vocabularies_, "dense_stats_": self.dense_stats_,
                          "maxlen_": self.maxlen_}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict` output."""
        if int(d.get("format_version", -1)) > _FORMAT_VERSION:
            raise ValueError(f"FeatureEncoder.from_dict: format_version {d.get('format_version')} is newer than "
                             f"this ctrkit understands ({_FORMAT_VERSION}). Upgrade ctrkit.")
        enc = cls(**d["params"])
        st = d["state"]
        enc.sparse_columns_ = list(st["sparse_columns_"])
        enc.dense_columns_ = list(st["dense_columns_"])
        enc.varlen_columns_ = dict(st["varlen_columns_"])
        enc.hash_buckets_ = {k: int(v) for k, v in st["hash_buckets_"].items()}
        enc.vocabularies_ = {k: list(v) for k, v in st["vocabularies_"].items()}
        enc.dense_stats_ = {k: {kk: float(vv) for kk, vv in v.items()} for k, v in st["dense_stats_"].items()}
        enc.maxlen_ = {k: int(v) for k, v in st["maxlen_"].items()}
        enc.feature_names_in_ = np.array(enc.sparse_columns_ + enc.dense_columns_ + list(enc.varlen_columns_),
                                         dtype=object)
        enc.n_features_in_ = len(enc.feature_names_in_)
        enc._index_cache = {}
        return enc

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> FeatureEncoder:
        return cls.from_dict(json.loads(s))
