"""Fitting a :class:`~ctrkit.preprocessing.FeatureEncoder`: column roles, vocabulary counts, dense statistics.

``fit`` is one pass of ``partial_fit``: counts, sums and min / max add up exactly over chunks, so a file larger
than memory can be fitted chunk by chunk and give the same encoder.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError, NotFittedError, SchemaError, suggest
from ..features import NUMERIC_EMBEDDINGS, NumericEmbedding
from .categorical import category_keys, infer_column_types
from .frames import check_frame_columns, label_arrays, label_copies, label_names
from .numerical import CLIP, SCALINGS, dense_stats, new_moments, to_float, update_moments
from .quantiles import bin_edges, new_sample, update_sample
from .sequence import split_cells

__all__ = ["EncoderFitting"]

_E = TypeVar("_E", bound="EncoderFitting")


def _per_column(value: Any, column: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(column, default)
    return default if value is None else value


def _count(counts: dict[str, int], keys: np.ndarray) -> None:
    vc = pd.Series(keys).value_counts(sort=False)
    for k, v in zip(vc.index.tolist(), vc.to_numpy().tolist()):
        counts[k] = counts.get(k, 0) + v


class EncoderFitting:
    """The fitting half of :class:`~ctrkit.preprocessing.FeatureEncoder` (a mixin: it reads its parameters)."""

    # parameters, set by FeatureEncoder.__init__ (annotations only: sklearn reads the __init__ signature)
    sparse: Any
    dense: Any
    varlen: Any
    embedding_dim: Any
    min_freq: Any
    hash_buckets: Any
    max_vocab: Any
    scaling: Any
    maxlen: Any
    combiner: str
    truncating: str
    handle_unknown: str
    ignore: Any
    numeric_embedding: Any
    n_bins: Any
    # fitted state, set by _finalize
    sparse_columns_: list[str]
    dense_columns_: list[str]
    varlen_columns_: dict[str, str]
    feature_names_in_: np.ndarray
    n_features_in_: int
    hash_buckets_: dict[str, int]
    vocabularies_: dict[str, list[Any]]
    dense_stats_: dict[str, dict[str, Any]]
    maxlen_: dict[str, int]
    numeric_embeddings_: dict[str, NumericEmbedding]
    _index_cache: dict[Any, Any]
    _partial_state: dict[str, Any] | None

    def _resolve_columns(self, df: pd.DataFrame, targets: list[str] | None = None
                         ) -> tuple[list[str], list[str], dict[str, str]]:
        if isinstance(self.varlen, Mapping):
            varlen = {str(k): str(v) for k, v in self.varlen.items()}
        else:
            varlen = {str(k): "|" for k in (self.varlen or [])}
        ignore = [str(c) for c in ([self.ignore] if isinstance(self.ignore, str) else (self.ignore or []))]
        excluded = set(ignore) | set(targets or [])
        if self.sparse is None and self.dense is None and self.varlen is None:
            sparse, dense = infer_column_types(df, [c for c in df.columns if c not in excluded])
        else:
            sparse, dense = list(self.sparse or []), list(self.dense or [])
            used = [c for c in sparse + dense + list(varlen) if c in excluded]
            if used:
                why = "ignore" if used[0] in ignore else "the labels y passed to fit"
                raise SchemaError(f"FeatureEncoder: column {used[0]!r} is listed as a feature but is in {why}; a "
                                  "label used as a feature leaks the answer into the model. Remove it from "
                                  "sparse / dense / varlen.")
        seen: dict[str, str] = {}
        for role, cols in (("sparse", sparse), ("dense", dense), ("varlen", list(varlen))):
            for c in cols:
                if c in seen:
                    raise SchemaError(f"FeatureEncoder: column {c!r} is listed as both {seen[c]} and {role}. "
                                      "Give each column one role.")
                seen[c] = role
        for arg, val in (("scaling", self.scaling),):
            for v in (val.values() if isinstance(val, Mapping) else [val]):
                if v not in SCALINGS:
                    raise ValueError(f"FeatureEncoder: {arg} must be one of {list(SCALINGS)}, got {v!r}.")
        for c in dense:
            self._numeric_template(c)   # a wrong kind or option fails before any data is read
        ne = self.numeric_embedding
        stray = [c for c in (ne if isinstance(ne, Mapping) and "kind" not in ne else ()) if c not in dense]
        if stray:
            raise ValueError(f"FeatureEncoder: numeric_embedding names {stray}, which are not dense columns "
                             f"{dense}. Embed dense columns only (sparse columns have embeddings already).")
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
        check_frame_columns(df, f"FeatureEncoder.{where}", "X", columns or None)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            hint = suggest(missing[0], df.columns)
            raise DataValidationError(
                f"FeatureEncoder.{where}: the DataFrame is missing columns {missing}.{hint} "
                f"Available columns: {list(df.columns)[:30]}{' ...' if df.shape[1] > 30 else ''}.")
        return df

    def fit(self: _E, X: pd.DataFrame, y: Any = None) -> _E:
        """Learn vocabularies, dense statistics and var-length sizes from ``X``. Returns ``self``.

        ``y`` (optional) are the labels: columns of ``X`` they name (a DataFrame's columns, a Series' name, a
        dict's keys) are never features when roles are inferred, and a feature equal to a label on every row
        gives a warning (a leaked label).
        """
        state = self._new_state(X, y)
        self._accumulate(state, X)
        self._finalize(state)
        self._warn_label_copies(X, y)
        return self

    def _warn_label_copies(self, X: Any, y: Any) -> None:
        if y is None or not isinstance(X, pd.DataFrame):
            return
        for c, t in label_copies(X, list(self.feature_names_in_), label_arrays(y)):
            warnings.warn(f"FeatureEncoder.fit: feature column {c!r} equals the label {t!r} on every row: a label "
                          "leaked into the features, and a model would learn to copy it. Drop the column, or pass "
                          f"ignore=[{c!r}].", stacklevel=3)

    def partial_fit(self: _E, X: pd.DataFrame, y: Any = None) -> _E:
        """Accumulate statistics from one chunk; call :meth:`finish_partial_fit` after the last chunk.

        Fitting chunk by chunk gives the same encoder as one ``fit`` on the concatenated chunks (counts, sums
        and min/max add up exactly), so files larger than memory can be fitted in a streaming pass.
        """
        state = getattr(self, "_partial_state", None)
        if state is None:
            state = self._partial_state = self._new_state(X, y)
        self._accumulate(state, X)
        return self

    def finish_partial_fit(self: _E) -> _E:
        state = getattr(self, "_partial_state", None)
        if state is None:
            raise NotFittedError("FeatureEncoder.finish_partial_fit: call partial_fit on at least one chunk first.")
        self._finalize(state)
        self._partial_state = None
        return self

    def _new_state(self, X: pd.DataFrame, y: Any = None) -> dict[str, Any]:
        X = self._check_frame(X, [], "fit")
        sparse, dense, varlen = self._resolve_columns(X, [c for c in label_names(y) if c in X.columns])
        return {"sparse": sparse, "dense": dense, "varlen": varlen, "n": 0,
                "counts": {c: {} for c in sparse + list(varlen)}, "maxlen": {c: 0 for c in varlen},
                "dstats": {c: new_moments() for c in dense},
                "samples": {c: new_sample() for c in dense
                            if (t := self._numeric_template(c)) is not None and t["kind"] != "periodic"}}

    def _accumulate(self, state: dict[str, Any], X: pd.DataFrame) -> None:
        cols = state["sparse"] + state["dense"] + list(state["varlen"])
        X = self._check_frame(X, cols, "fit")
        start = state["n"]
        state["n"] += len(X)
        for c in state["sparse"]:
            if self._buckets(c) is None:
                _count(state["counts"][c], category_keys(X[c]))
        for c, sep in state["varlen"].items():
            tokens, lengths = split_cells(X[c], sep)
            state["maxlen"][c] = max(state["maxlen"][c], int(lengths.max()) if len(lengths) else 0)
            if self._buckets(c) is None and len(tokens):
                _count(state["counts"][c], tokens)
        for c in state["dense"]:
            values = to_float(X[c], c)
            update_moments(state["dstats"][c], values)
            if c in state["samples"]:
                update_sample(state["samples"][c], values, start)

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
        for c, moments in state["dstats"].items():
            scaling = _per_column(self.scaling, c, self.scaling if not isinstance(self.scaling, Mapping) else None)
            self.dense_stats_[c] = dense_stats(moments, scaling, c)
        self.numeric_embeddings_ = {}
        for c in self.dense_columns_:
            t = self._numeric_template(c)
            if t is None:
                continue
            if c in state["samples"]:
                st = self.dense_stats_[c]
                n_bins = _per_column(self.n_bins, c, 16) if isinstance(self.n_bins, Mapping) else self.n_bins
                t = {**t, "boundaries": bin_edges(state["samples"][c], n_bins, st["center"], st["scale"], CLIP)}
            self.numeric_embeddings_[c] = NumericEmbedding(**t)
        self.maxlen_ = {c: int(_per_column(self.maxlen, c, None) or max(state["maxlen"][c], 1))
                        for c in self.varlen_columns_}
        self._index_cache = {}

    def _numeric_template(self, c: str) -> dict[str, Any] | None:
        """The :class:`~ctrkit.NumericEmbedding` options of dense column ``c`` (without its boundaries), or None.

        ``numeric_embedding`` is a kind (``"ple"``), a dict of options with a ``"kind"`` key, None, or a dict
        ``{column: one of those}``; the embedding width defaults to the encoder's int ``embedding_dim`` (else 8).
        """
        v = self.numeric_embedding
        if isinstance(v, Mapping) and "kind" not in v:
            v = v.get(c)
        if v is None:
            return None
        t = dict(v) if isinstance(v, Mapping) else {"kind": v}
        where = f"FeatureEncoder: numeric_embedding for dense column {c!r}"
        if t.get("kind") not in NUMERIC_EMBEDDINGS:
            raise ValueError(f"{where} must be one of {list(NUMERIC_EMBEDDINGS)}, a dict of NumericEmbedding "
                             f"options with a 'kind', or None, got {v!r}.")
        if "boundaries" in t:
            raise ValueError(f"{where}: 'boundaries' are fitted by the encoder; leave them out (or build the "
                             "DenseFeat with NumericEmbedding(boundaries=...) yourself).")
        dim = _per_column(self.embedding_dim, c, 8) if isinstance(self.embedding_dim, Mapping) else self.embedding_dim
        t.setdefault("embedding_dim", dim if isinstance(dim, int) and not isinstance(dim, bool) else 8)
        n_bins = _per_column(self.n_bins, c, 16) if isinstance(self.n_bins, Mapping) else self.n_bins
        if t["kind"] != "periodic" and (isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer))
                                        or n_bins < 1):
            raise ValueError(f"FeatureEncoder: n_bins for dense column {c!r} must be an int >= 1, got {n_bins!r}.")
        probe = {**t, "boundaries": () if t["kind"] == "periodic" else (0.0, 1.0)}
        try:
            NumericEmbedding(**probe)
        except TypeError as e:
            raise ValueError(f"{where}: unknown option ({e}); the options are kind, embedding_dim, n_frequencies, "
                             "sigma and activation.") from None
        return t

    def _buckets(self, c: str) -> int | None:
        b = _per_column(self.hash_buckets, c, None) if isinstance(self.hash_buckets, Mapping) else self.hash_buckets
        if b is None:
            return None
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"FeatureEncoder: hash_buckets for column {c!r} must be an int >= 1, got {b!r}.")
        return int(b)
