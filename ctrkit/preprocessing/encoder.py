"""The feature encoder: raw DataFrames or records to model input, feature columns, JSON (de)serialisation.

See :mod:`ctrkit.preprocessing` for the id and dense policies; :meth:`FeatureEncoder.transform` and
:meth:`FeatureEncoder.transform_records` share one encoding routine (:meth:`FeatureEncoder._encode`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ..exceptions import ModelFormatError, NotFittedError, SchemaError
from ..features import DenseFeat, FeatureColumns, NumericEmbedding, SparseFeat, VarLenSparseFeat, feature_to_dict
from .categorical import N_RESERVED, category_keys, lookup_ids
from .fitting import EncoderFitting, _per_column
from .numerical import _STATS, encode_dense, stat_vectors, to_float
from .records import as_records, record_columns
from .sequence import pad_lists, split_cells

__all__ = ["FeatureEncoder", "EncodedData"]

_FORMAT_VERSION = 1


class EncodedData(dict):
    """The encoder's output: ``{feature name: numpy array}`` with int64 ids and float32 dense values.

    A plain ``dict`` (DeepCTR's input format) that also says how many rows it holds.
    """

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0


# ----------------------------------------------------------------------------------------------- encoder
class FeatureEncoder(EncoderFitting, TransformerMixin, BaseEstimator):
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
        numeric_embedding: embed dense columns as fields too (:class:`~ctrkit.NumericEmbedding`): a kind,
            ``"quantile"``, ``"ple"`` or ``"periodic"``, a dict of its options (``{"kind": "periodic", "sigma":
            1.0}``), None (no embedding, the default), or ``{column: one of those}``. The embedding width is
            ``embedding_dim`` unless given. The bin edges of ``"quantile"`` / ``"ple"`` are fitted (quantiles of
            up to 200,000 sampled values per column, see :mod:`ctrkit.preprocessing.quantiles`), in the encoded
            scale, and saved with the encoder.
        n_bins: the number of equal-frequency bins of those embeddings (int or dict per column); repeated
            quantiles are merged, so a column with few distinct values gets fewer.
        ignore: columns never used as features (e.g. the labels, ids, timestamps); with inferred roles they are
            skipped, and listing one of them in ``sparse`` / ``dense`` / ``varlen`` is an error. The columns
            named by the labels passed as ``fit(X, y)`` are excluded the same way.

    Attributes:
        feature_names_in_: the columns the encoder reads.
        sparse_columns_, dense_columns_, varlen_columns_: the columns by role.
        vocabularies_: ``{column: [key, ...]}`` (index i has id i + 2); hashed columns are absent.
        dense_stats_: ``{column: {"fill", "center", "scale", "lo", "hi"}}``.
        maxlen_: ``{varlen column: maxlen}``.
        numeric_embeddings_: ``{dense column: NumericEmbedding}`` (the embedded columns, with fitted edges).

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
                 handle_unknown="oov", ignore=None, numeric_embedding=None, n_bins=16):
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
        self.numeric_embedding = numeric_embedding
        self.n_bins = n_bins

    # ------------------------------------------------------------------ transform
    def _check_fitted(self) -> None:
        if not hasattr(self, "vocabularies_"):
            raise NotFittedError("This FeatureEncoder instance is not fitted yet. Call 'fit' with a DataFrame "
                                 "before using it (or load a saved model that bundles a fitted encoder).")

    def _cache(self) -> dict:
        return self.__dict__.setdefault("_index_cache", {})

    def _ids(self, c: str, keys: np.ndarray) -> np.ndarray:
        return lookup_ids(keys, c, self.vocabularies_.get(c), self.hash_buckets_.get(c), self._cache(),
                          self.handle_unknown)

    def vocabulary_size(self, c: str) -> int:
        """Rows of the embedding table of column ``c`` (padding + OOV + known values or buckets)."""
        self._check_fitted()
        if c in self.hash_buckets_:
            return N_RESERVED + self.hash_buckets_[c]
        return N_RESERVED + len(self.vocabularies_[c])

    def transform(self, X: pd.DataFrame) -> EncodedData:
        """Encode a DataFrame. Extra columns are ignored; column order does not matter.

        Returns:
            :class:`EncodedData` with int64 ``(n,)`` ids per sparse column, float32 ``(n,)`` per dense column
            and int64 ``(n, maxlen)`` per var-length column (0-padded at the end).
        """
        self._check_fitted()
        X = self._check_frame(X, list(self.feature_names_in_), "transform")
        return self._encode(X.__getitem__, len(X))

    def transform_records(self, records: Iterable[Mapping[str, Any]]) -> EncodedData:
        """Encode raw records (dicts of column → value) without building a DataFrame: the serving path.

        Gives exactly what ``transform(pd.DataFrame.from_records(records))`` gives (same keys, ids, fills and
        scaling; a field absent from a record is missing): each column's values go through the same encoding
        functions as a DataFrame column, at a cost that grows with the number of values only, so a single
        record takes microseconds rather than the milliseconds of a DataFrame round trip.

        Example:
            >>> import pandas as pd
            >>> enc = FeatureEncoder(sparse=["city"], dense=["age"]).fit(
            ...     pd.DataFrame({"city": ["a", "b", "a"], "age": [20.0, 30.0, None]}))
            >>> out = enc.transform_records([{"city": "b", "age": 25}, {"city": "zzz"}])
            >>> out["city"].tolist(), out["age"].tolist()
            ([3, 1], [0.0, 0.0])
        """
        self._check_fitted()
        recs = as_records(records, "FeatureEncoder.transform_records")
        return self._encode(record_columns(recs, self.feature_names_in_).__getitem__, len(recs))

    def _encode(self, column: Callable[[str], Any], n: int) -> EncodedData:
        """The encoding of every column; ``column(name)`` is a DataFrame column or a list of record values."""
        out = EncodedData()
        cache, vocabs, buckets, unknown = self._cache(), self.vocabularies_, self.hash_buckets_, self.handle_unknown
        for c in self.sparse_columns_:
            out[c] = lookup_ids(category_keys(column(c)), c, vocabs.get(c), buckets.get(c), cache, unknown)
        if self.dense_columns_:
            vectors = cache.get(("dense",))
            if vectors is None:
                vectors = cache[("dense",)] = stat_vectors(self.dense_stats_, self.dense_columns_)
            raw = np.empty((len(self.dense_columns_), n), dtype=np.float64)
            for j, c in enumerate(self.dense_columns_):
                raw[j] = to_float(column(c), c)
            values = encode_dense(raw, vectors)
            for j, c in enumerate(self.dense_columns_):
                out[c] = values[j]
        for c, sep in self.varlen_columns_.items():
            tokens, lengths = split_cells(column(c), sep)
            out[c] = pad_lists(self._ids(c, tokens), lengths, self.maxlen_[c], self.truncating)
        return out

    # ------------------------------------------------------------------ feature columns
    @property
    def feature_columns(self) -> FeatureColumns:
        """Feature columns for a model, in the order sparse, dense, var-length; they remember this encoder."""
        self._check_fitted()
        cols: list = []
        for c in self.sparse_columns_:
            cols.append(SparseFeat(c, self.vocabulary_size(c), self._dim(c), dtype="int64"))
        for c in self.dense_columns_:
            cols.append(DenseFeat(c, 1, embedding=self.numeric_embeddings_.get(c)))
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
                          "maxlen_": self.maxlen_,
                          "numeric_embeddings_": {c: feature_to_dict(DenseFeat(c, embedding=e))["embedding"]
                                                  for c, e in self.numeric_embeddings_.items()}}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict` output.

        Raises:
            ModelFormatError: ``d`` is not what :meth:`to_dict` writes (wrong JSON shape, a missing key, a column
                without its vocabulary / hash buckets / statistics / maxlen), or has a newer format version.
        """
        where = "FeatureEncoder.from_dict"
        if not isinstance(d, Mapping):
            raise ModelFormatError(f"{where}: expected a JSON object with 'format_version', 'params' and 'state' "
                                   f"(what FeatureEncoder.to_dict writes), got a {type(d).__name__}. The file is not "
                                   "an encoder saved by ctrkit; save the encoder again.")
        try:
            version = int(d.get("format_version", -1))
        except (TypeError, ValueError):
            raise ModelFormatError(f"{where}: format_version must be an integer, got "
                                   f"{d.get('format_version')!r}.") from None
        if version > _FORMAT_VERSION:
            raise ModelFormatError(f"{where}: format_version {version} is newer than this ctrkit understands "
                                   f"({_FORMAT_VERSION}). Upgrade ctrkit.")
        params, st = d.get("params"), d.get("state")
        for key, v in (("params", params), ("state", st)):
            if not isinstance(v, Mapping):
                raise ModelFormatError(f"{where}: {key!r} must be a JSON object, got "
                                       f"{'nothing' if v is None else type(v).__name__}. Save the encoder again.")
        assert isinstance(params, Mapping) and isinstance(st, Mapping)
        kinds = {"sparse_columns_": list, "dense_columns_": list, "varlen_columns_": Mapping, "hash_buckets_": Mapping,
                 "vocabularies_": Mapping, "dense_stats_": Mapping, "maxlen_": Mapping}
        for key, kind in kinds.items():
            if not isinstance(st.get(key), kind):
                raise ModelFormatError(f"{where}: state[{key!r}] must be a JSON "
                                       f"{'list' if kind is list else 'object'}, got "
                                       f"{'nothing' if key not in st else type(st[key]).__name__}. Save the encoder "
                                       "again.")
        try:
            enc = cls(**params)
        except TypeError as e:
            raise ModelFormatError(f"{where}: 'params' does not match FeatureEncoder's arguments ({e}). The file "
                                   "comes from another ctrkit version or was edited; save the encoder again.") from None
        for c in list(st["sparse_columns_"]) + list(st["varlen_columns_"]):
            if c not in st["vocabularies_"] and c not in st["hash_buckets_"]:
                raise ModelFormatError(f"{where}: column {c!r} has neither a vocabulary nor hash buckets in 'state'. "
                                       "The file was truncated or edited; save the encoder again.")
        for c in st["varlen_columns_"]:
            if c not in st["maxlen_"]:
                raise ModelFormatError(f"{where}: var-length column {c!r} has no maxlen in state['maxlen_']. Save the "
                                       "encoder again.")
        for c in st["dense_columns_"]:
            stats = st["dense_stats_"].get(c)
            lacking = sorted(set(_STATS) - set(stats)) if isinstance(stats, Mapping) else list(_STATS)
            if lacking:
                raise ModelFormatError(f"{where}: dense column {c!r} lacks the statistics {lacking} in "
                                       "state['dense_stats_']. The file was truncated or edited; save the encoder "
                                       "again.")
        try:
            enc.sparse_columns_ = [str(c) for c in st["sparse_columns_"]]
            enc.dense_columns_ = [str(c) for c in st["dense_columns_"]]
            enc.varlen_columns_ = dict(st["varlen_columns_"])
            enc.hash_buckets_ = {k: int(v) for k, v in st["hash_buckets_"].items()}
            enc.vocabularies_ = {k: list(v) for k, v in st["vocabularies_"].items()}
            enc.dense_stats_ = {k: {kk: float(vv) for kk, vv in v.items()} for k, v in st["dense_stats_"].items()}
            enc.maxlen_ = {k: int(v) for k, v in st["maxlen_"].items()}
            # absent from encoders saved before numeric embeddings existed
            enc.numeric_embeddings_ = {str(k): NumericEmbedding(**v)
                                       for k, v in dict(st.get("numeric_embeddings_") or {}).items()}
        except (TypeError, ValueError, AttributeError, SchemaError) as e:
            raise ModelFormatError(f"{where}: a value in 'state' has the wrong type ({type(e).__name__}: {e}). Save "
                                   "the encoder again.") from None
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
