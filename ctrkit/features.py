"""Feature columns: frozen, JSON-serialisable descriptions of a model's inputs.

The names, arguments and argument order are DeepCTR-Torch's, so feature code written for DeepCTR-Torch
runs unchanged::

    from ctrkit import SparseFeat, DenseFeat, VarLenSparseFeat, get_feature_names

    cols = [SparseFeat("user_id", 1000, embedding_dim=8), DenseFeat("age", 1),
            VarLenSparseFeat(SparseFeat("genres", 20, 8), maxlen=5, combiner="mean")]
    get_feature_names(cols)   # ['user_id', 'age', 'genres']

Unlike DeepCTR-Torch, a spec never owns a module or a tensor, ids stay int64, and every spec round-trips
through :func:`feature_to_dict` / :func:`feature_from_dict` (and so through JSON).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Union

import numpy as np

from .exceptions import SchemaError

__all__ = [
    "DEFAULT_GROUP_NAME",
    "NUMERIC_EMBEDDINGS",
    "NumericEmbedding",
    "SparseFeat",
    "DenseFeat",
    "VarLenSparseFeat",
    "FeatureColumns",
    "get_feature_names",
    "feature_to_dict",
    "feature_from_dict",
    "check_feature_columns",
    "split_feature_columns",
    "config_to_json",
    "config_from_json",
]

DEFAULT_GROUP_NAME = "default_group"
_COMBINERS = ("mean", "sum", "max")
#: the kinds of :class:`NumericEmbedding`
NUMERIC_EMBEDDINGS = ("quantile", "ple", "periodic")


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{kind}: name must be a non-empty str, got {name!r}.")


def _dtype_name(where: str, value: Any) -> str:
    """A dtype given as a string, ``torch.int32``, ``np.int32`` or ``np.dtype`` as its plain name (``"int32"``),
    so the spec stays JSON-serialisable and equal to its round trip."""
    if isinstance(value, str) and value:
        try:
            return np.dtype(value).name
        except TypeError:
            return value  # e.g. DeepCTR's "string": kept as written
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        return str(value).removeprefix("torch.")
    try:
        return np.dtype(value).name
    except TypeError:
        raise SchemaError(f"{where}: dtype must be a dtype name (e.g. 'int32'), a torch or numpy dtype, "
                          f"got {value!r}.") from None


def _check_int(where: str, arg: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SchemaError(f"{where}: {arg} must be an int >= {minimum}, got {value!r}.")


@dataclass(frozen=True)
class SparseFeat:
    """A categorical feature looked up in an embedding table.

    Args:
        name: column name in the input.
        vocabulary_size: number of rows of the embedding table; valid ids are ``0 .. vocabulary_size-1``.
        embedding_dim: embedding width (0: no embedding; only linear parts such as MLR's read the feature, as
            DeepCTR allows), or ``"auto"`` for DeepCTR's ``6 * int(vocabulary_size ** 0.25)``.
        use_hash: if True, raw values (ints or strings) given directly to the model are hashed into
            ``vocabulary_size`` buckets at the data boundary instead of being used as ids.
        dtype: kept for DeepCTR compatibility (a name, ``torch.int32`` or ``np.int32``, stored as its name,
            ``"int32"``); ids always travel as int64.
        embedding_name: table name; features with the same ``embedding_name`` share one table.
        group_name: free-form group label (DeepCTR compatibility).

    Example:
        >>> SparseFeat("item_id", 100, embedding_dim="auto").embedding_dim
        18
    """

    name: str
    vocabulary_size: int
    embedding_dim: Union[int, str] = 4
    use_hash: bool = False
    dtype: str = "int32"
    embedding_name: Union[str, None] = None
    group_name: str = DEFAULT_GROUP_NAME

    def __post_init__(self) -> None:
        _check_name("SparseFeat", self.name)
        where = f"SparseFeat({self.name!r})"
        object.__setattr__(self, "dtype", _dtype_name(where, self.dtype))
        # numpy integers (e.g. ``df[col].max() + 1``) are accepted and stored as int
        if hasattr(self.vocabulary_size, "__index__") and not isinstance(self.vocabulary_size, bool):
            object.__setattr__(self, "vocabulary_size", int(self.vocabulary_size))
        _check_int(where, "vocabulary_size", self.vocabulary_size, 1)
        if self.embedding_dim == "auto":
            object.__setattr__(self, "embedding_dim", 6 * int(pow(self.vocabulary_size, 0.25)))
        elif hasattr(self.embedding_dim, "__index__") and not isinstance(self.embedding_dim, bool):
            object.__setattr__(self, "embedding_dim", int(self.embedding_dim))
        _check_int(where, "embedding_dim", self.embedding_dim, 0)   # 0: linear parts only (DeepCTR allows it)
        if self.embedding_name is None:
            object.__setattr__(self, "embedding_name", self.name)
        elif not isinstance(self.embedding_name, str) or not self.embedding_name:
            raise SchemaError(f"{where}: embedding_name must be a non-empty str or None, "
                              f"got {self.embedding_name!r}.")


@dataclass(frozen=True)
class NumericEmbedding:
    """How a one-value :class:`DenseFeat` is embedded into a field (a vector like a sparse feature's embedding).

    Kinds (Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022):

    - ``"quantile"``: the value's bin among ``boundaries`` picks a row of a per-feature table (values below
      the first edge fall in the first bin, above the last in the last; NaN has a row of its own).
    - ``"ple"``: piecewise-linear encoding over the bins (bin ``t`` reads 0 below it, 1 above it, the position
      inside it), then a per-feature linear map to ``embedding_dim`` (``activation="relu"`` adds a ReLU).
    - ``"periodic"``: PLR, ``ReLU(Linear([sin(2 pi c x), cos(2 pi c x)]))`` with ``n_frequencies`` trainable
      frequencies ``c`` initialised from ``N(0, sigma)``; no boundaries.

    The value embedded is the one the model receives (after the encoder's scaling), so ``boundaries`` are in that
    scale; :class:`~ctrkit.FeatureEncoder` fits them (``numeric_embedding=...``).

    Args:
        kind: ``"quantile"``, ``"ple"`` or ``"periodic"``.
        boundaries: the bin edges ``b_0 < b_1 < ... < b_T`` (``T >= 1`` bins) for ``"quantile"`` / ``"ple"``.
        embedding_dim: the field's width (give it the sparse features' width so that FM / cross / attention
            models put it among their fields).
        n_frequencies: ``"periodic"`` only: the number of frequencies ``c``.
        sigma: ``"periodic"`` only: the standard deviation of the frequencies' initialisation.
        activation: ``"relu"`` or None after the linear map of ``"ple"`` / ``"periodic"``; ``"auto"`` is ReLU for
            ``"periodic"`` (PLR) and None otherwise.

    Example:
        >>> e = NumericEmbedding("ple", boundaries=[0, 1.5, 3], embedding_dim=4)
        >>> e.boundaries, e.n_bins, e.activation
        ((0.0, 1.5, 3.0), 2, None)
    """

    kind: str
    boundaries: tuple = ()
    embedding_dim: int = 8
    n_frequencies: int = 16
    sigma: float = 0.1
    activation: Union[str, None] = "auto"

    def __post_init__(self) -> None:
        where = f"NumericEmbedding(kind={self.kind!r})"
        if self.kind not in NUMERIC_EMBEDDINGS:
            raise SchemaError(f"NumericEmbedding: kind must be one of {list(NUMERIC_EMBEDDINGS)}, got {self.kind!r}.")
        try:
            edges = tuple(float(b) for b in np.asarray(self.boundaries, dtype=np.float64).reshape(-1))
        except (TypeError, ValueError):
            raise SchemaError(f"{where}: boundaries must be a sequence of numbers, got {self.boundaries!r}.") from None
        object.__setattr__(self, "boundaries", edges)
        if self.kind == "periodic":
            if edges:
                raise SchemaError(f"{where}: periodic embeddings take no boundaries, got {len(edges)}. Drop them, "
                                  "or use kind='ple' / 'quantile'.")
        elif len(edges) < 2 or not all(np.isfinite(edges)) or any(not a < b for a, b in zip(edges, edges[1:])):
            raise SchemaError(f"{where}: boundaries must be at least 2 finite, strictly increasing bin edges, got "
                              f"{edges!r}. Fit them with FeatureEncoder(numeric_embedding={self.kind!r}), or pass "
                              "e.g. numpy.unique(numpy.quantile(values, numpy.linspace(0, 1, 17))).")
        for arg in ("embedding_dim", "n_frequencies"):
            v = getattr(self, arg)
            if hasattr(v, "__index__") and not isinstance(v, bool):
                object.__setattr__(self, arg, int(v))
            _check_int(where, arg, getattr(self, arg), 1)
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float, np.floating)) \
                or not 0 < float(self.sigma) < math.inf:
            raise SchemaError(f"{where}: sigma must be a number > 0, got {self.sigma!r}.")
        object.__setattr__(self, "sigma", float(self.sigma))
        if self.activation == "auto":
            object.__setattr__(self, "activation", "relu" if self.kind == "periodic" else None)
        if self.activation not in ("relu", None):
            raise SchemaError(f"{where}: activation must be 'relu', None or 'auto', got {self.activation!r}.")

    @property
    def n_bins(self) -> int:
        """The number of bins ``T`` (0 for ``"periodic"``)."""
        return max(len(self.boundaries) - 1, 0)


@dataclass(frozen=True)
class DenseFeat:
    """A numeric feature of ``dimension`` float values per row.

    Args:
        name: column name in the input.
        dimension: number of values per row (a column of 1-D vectors when > 1).
        dtype: kept for DeepCTR compatibility (a name or a torch / numpy dtype, stored as its name); dense
            values travel as float32.
        embedding: a :class:`NumericEmbedding` (or its dict): the value also becomes a field of the model's
            embeddings (one-value features only); None (the default): the value only joins the dense vector.

    Example:
        >>> DenseFeat("age").dimension
        1
        >>> DenseFeat("age", embedding=NumericEmbedding("periodic", embedding_dim=4)).embedding.activation
        'relu'
    """

    name: str
    dimension: int = 1
    dtype: str = "float32"
    embedding: Union[NumericEmbedding, None] = None

    def __post_init__(self) -> None:
        _check_name("DenseFeat", self.name)
        where = f"DenseFeat({self.name!r})"
        object.__setattr__(self, "dtype", _dtype_name(where, self.dtype))
        if hasattr(self.dimension, "__index__") and not isinstance(self.dimension, bool):
            object.__setattr__(self, "dimension", int(self.dimension))
        _check_int(where, "dimension", self.dimension, 1)
        if isinstance(self.embedding, Mapping):
            object.__setattr__(self, "embedding", NumericEmbedding(**self.embedding))
        if self.embedding is not None:
            if not isinstance(self.embedding, NumericEmbedding):
                raise SchemaError(f"{where}: embedding must be a NumericEmbedding, its dict or None, got "
                                  f"{type(self.embedding).__name__}.")
            if self.dimension != 1:
                raise SchemaError(f"{where}: a numeric embedding needs dimension=1 (one value per row), got "
                                  f"dimension={self.dimension}. Split the vector into one-value DenseFeats, or drop "
                                  "the embedding.")


@dataclass(frozen=True)
class VarLenSparseFeat:
    """A multi-valued categorical feature (a padded list of ids per row), pooled into one vector.

    Id 0 is padding (DeepCTR's convention): it is masked out of the pooling.

    Args:
        sparsefeat: the :class:`SparseFeat` describing the ids and their table.
        maxlen: padded length of each row.
        combiner: pooling, one of ``"mean"``, ``"sum"``, ``"max"``.
        length_name: optional input column holding each row's true length; if absent the mask is ``id != 0``.

    Example:
        >>> f = VarLenSparseFeat(SparseFeat("genres", 20, 4), maxlen=3)
        >>> f.name, f.vocabulary_size, f.combiner
        ('genres', 20, 'mean')
    """

    sparsefeat: SparseFeat
    maxlen: int
    combiner: str = "mean"
    length_name: Union[str, None] = None

    def __post_init__(self) -> None:
        if not isinstance(self.sparsefeat, SparseFeat):
            raise SchemaError("VarLenSparseFeat: sparsefeat must be a SparseFeat, "
                              f"got {type(self.sparsefeat).__name__}.")
        where = f"VarLenSparseFeat({self.sparsefeat.name!r})"
        if hasattr(self.maxlen, "__index__") and not isinstance(self.maxlen, bool):
            object.__setattr__(self, "maxlen", int(self.maxlen))
        _check_int(where, "maxlen", self.maxlen, 1)
        if self.combiner not in _COMBINERS:
            raise SchemaError(f"{where}: combiner must be one of {list(_COMBINERS)}, got {self.combiner!r}.")
        if self.length_name is not None and (not isinstance(self.length_name, str) or not self.length_name):
            raise SchemaError(f"{where}: length_name must be a non-empty str or None, got {self.length_name!r}.")

    # DeepCTR-Torch forwards these attributes to the inner SparseFeat.
    @property
    def name(self) -> str:
        return self.sparsefeat.name

    @property
    def vocabulary_size(self) -> int:
        return self.sparsefeat.vocabulary_size

    @property
    def embedding_dim(self) -> int:
        return self.sparsefeat.embedding_dim  # type: ignore[return-value]

    @property
    def use_hash(self) -> bool:
        return self.sparsefeat.use_hash

    @property
    def dtype(self) -> str:
        return self.sparsefeat.dtype

    @property
    def embedding_name(self) -> str:
        return self.sparsefeat.embedding_name  # type: ignore[return-value]

    @property
    def group_name(self) -> str:
        return self.sparsefeat.group_name


Feature = Union[SparseFeat, DenseFeat, VarLenSparseFeat]


class FeatureColumns(list):
    """A list of feature columns that remembers the fitted encoder that produced it.

    A model built from ``encoder.feature_columns`` keeps the encoder, so ``fit`` / ``predict`` also accept
    raw DataFrames. It behaves as a plain ``list`` everywhere else (``+`` gives a plain list).
    """

    def __init__(self, columns: Iterable[Feature] = (), encoder: Any = None) -> None:
        super().__init__(columns)
        self.encoder = encoder


def get_feature_names(feature_columns: Iterable[Feature]) -> list[str]:
    """Names of the input columns the feature columns read (DeepCTR-Torch's helper), de-duplicated.

    Example:
        >>> get_feature_names([SparseFeat("a", 3), DenseFeat("b")])
        ['a', 'b']
    """
    names: list[str] = []
    for f in feature_columns:
        for n in (f.name, getattr(f, "length_name", None)):
            if n is not None and n not in names:
                names.append(n)
    return names


def feature_to_dict(feature: Feature) -> dict[str, Any]:
    """A JSON-ready dict describing one feature column (with a ``"type"`` key)."""
    if isinstance(feature, VarLenSparseFeat):
        d = asdict(feature)
        d["sparsefeat"] = asdict(feature.sparsefeat)
        return {"type": "VarLenSparseFeat", **d}
    if isinstance(feature, DenseFeat):
        d = asdict(feature)
        if feature.embedding is None:
            del d["embedding"]   # what older versions wrote: their readers load it
        else:
            d["embedding"]["boundaries"] = list(feature.embedding.boundaries)
        return {"type": "DenseFeat", **d}
    if isinstance(feature, SparseFeat):
        return {"type": type(feature).__name__, **asdict(feature)}
    raise SchemaError(f"feature_to_dict: expected SparseFeat, DenseFeat or VarLenSparseFeat, "
                      f"got {type(feature).__name__}.")


def feature_from_dict(d: dict[str, Any]) -> Feature:
    """Inverse of :func:`feature_to_dict`."""
    d = dict(d)
    kind = d.pop("type", None)
    if kind == "SparseFeat":
        return SparseFeat(**d)
    if kind == "DenseFeat":
        return DenseFeat(**d)
    if kind == "VarLenSparseFeat":
        d["sparsefeat"] = SparseFeat(**d["sparsefeat"])
        return VarLenSparseFeat(**d)
    raise SchemaError(f"feature_from_dict: unknown feature type {kind!r}; expected 'SparseFeat', "
                      "'DenseFeat' or 'VarLenSparseFeat'.")


def check_feature_columns(feature_columns: Sequence[Feature], where: str = "feature_columns") -> list[Feature]:
    """Validate a list of feature columns and return it as a list with duplicates of the same spec dropped.

    Raises:
        SchemaError: on a non-feature entry, two different features with one name, or features that share an
            ``embedding_name`` with different ``embedding_dim``.
    """
    if feature_columns is None:
        raise SchemaError(f"{where}: expected a list of SparseFeat / DenseFeat / VarLenSparseFeat, got None.")
    out: list[Feature] = []
    by_name: dict[str, Feature] = {}
    tables: dict[str, SparseFeat | VarLenSparseFeat] = {}
    for f in feature_columns:
        if not isinstance(f, (SparseFeat, DenseFeat, VarLenSparseFeat)):
            raise SchemaError(f"{where}: expected SparseFeat, DenseFeat or VarLenSparseFeat entries, "
                              f"got {type(f).__name__} ({f!r}).")
        if f.name in by_name:
            if by_name[f.name] == f:
                continue  # DeepCTR users pass linear + dnn columns that repeat the same specs
            raise SchemaError(f"{where}: duplicate feature name {f.name!r} with different specs "
                              f"({by_name[f.name]!r} and {f!r}). Give each feature a unique name.")
        by_name[f.name] = f
        if not isinstance(f, DenseFeat):
            table = f.embedding_name
            assert table is not None  # SparseFeat.__post_init__ defaults it to the feature name
            other = tables.get(table)
            if other is not None and other.embedding_dim != f.embedding_dim:
                raise SchemaError(
                    f"{where}: features {other.name!r} and {f.name!r} share embedding_name "
                    f"{f.embedding_name!r} but have embedding_dim {other.embedding_dim} and {f.embedding_dim}. "
                    "Shared tables need one embedding_dim; give them equal dims or different embedding_names.")
            tables.setdefault(table, f)
        out.append(f)
    return out


@dataclass(frozen=True)
class _Split:
    sparse: list = field(default_factory=list)
    dense: list = field(default_factory=list)
    varlen: list = field(default_factory=list)


def split_feature_columns(feature_columns: Sequence[Feature]) -> _Split:
    """Split columns into ``(sparse, dense, varlen)`` lists, keeping their order."""
    s = _Split()
    for f in feature_columns:
        (s.varlen if isinstance(f, VarLenSparseFeat) else s.sparse if isinstance(f, SparseFeat) else s.dense).append(f)
    return s


def config_to_json(v: Any) -> Any:
    """A model's constructor arguments as JSON-ready values (feature columns as ``{"__features__": [...]}``)."""
    if isinstance(v, (list, tuple)) and v and all(hasattr(f, "name") and hasattr(f, "__dataclass_fields__")
                                                  for f in v):
        return {"__features__": [feature_to_dict(f) for f in v]}
    if isinstance(v, tuple):
        return [config_to_json(x) for x in v]
    if isinstance(v, list):
        return [config_to_json(x) for x in v]
    if isinstance(v, Mapping):
        return {k: config_to_json(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    if type(v).__name__ == "device" and type(v).__module__ == "torch":
        return str(v)
    return v


def config_from_json(v: Any) -> Any:
    """The inverse of :func:`config_to_json`."""
    if isinstance(v, Mapping) and "__features__" in v:
        return [feature_from_dict(d) for d in v["__features__"]]
    if isinstance(v, Mapping):
        return {k: config_from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [config_from_json(x) for x in v]
    return v
