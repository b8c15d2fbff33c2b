"""Bin edges of numeric embeddings: a bounded, chunking-invariant sample of a column and its quantiles.

The encoder fits the edges of ``"quantile"`` / ``"ple"`` numeric embeddings (:class:`~ctrkit.NumericEmbedding`)
in the same single pass as its other statistics, so also chunk by chunk (``partial_fit``) on data larger than
memory. Each finite value gets a pseudo-random key computed from its row number alone (a 64-bit hash of the
row index, seeded); the sample keeps the :data:`SAMPLE_SIZE` values with the smallest keys ("bottom-k"
sampling). The sample therefore does not depend on how the rows are chunked: ``fit`` and any sequence of
``partial_fit`` calls over the same rows give the same sample and so the same edges. With up to
:data:`SAMPLE_SIZE` finite values the sample is the whole column and the quantiles are exact; beyond, they are
those of a uniform random sample of that size (a quantile's rank error is then about ``0.5 / sqrt(SAMPLE_SIZE)``,
0.1 percentile points at the default).
"""
from __future__ import annotations

import numpy as np

__all__ = ["SAMPLE_SIZE", "new_sample", "update_sample", "bin_edges"]

#: at most this many values per column are kept to fit the bin edges
SAMPLE_SIZE = 200_000
_SEED = np.uint64(0x9E3779B97F4A7C15)


def _row_keys(start: int, n: int) -> np.ndarray:
    """splitmix64 of the row numbers ``start .. start + n - 1``: fixed pseudo-random keys, one per row."""
    z = np.arange(start, start + n, dtype=np.uint64) * _SEED + _SEED
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def new_sample() -> dict:
    """An empty sample: ``{"keys": uint64 array, "values": float64 array}``."""
    return {"keys": np.empty(0, dtype=np.uint64), "values": np.empty(0, dtype=np.float64)}


def update_sample(sample: dict, values: np.ndarray, start: int, size: int | None = None) -> None:
    """Add the rows ``start ..`` of one chunk (raw float64 values; NaN and inf are left out) to ``sample``, which
    keeps at most ``size`` values (default :data:`SAMPLE_SIZE`)."""
    size = SAMPLE_SIZE if size is None else int(size)
    keys = _row_keys(start, len(values))
    ok = np.isfinite(values)
    keys = np.concatenate([sample["keys"], keys[ok]])
    vals = np.concatenate([sample["values"], values[ok]])
    if len(keys) > size:
        keep = np.argpartition(keys, size - 1)[:size]
        keys, vals = keys[keep], vals[keep]
    sample["keys"], sample["values"] = keys, vals


def bin_edges(sample: dict, n_bins: int, center: float, scale: float, clip: float) -> tuple[float, ...]:
    """The edges of about ``n_bins`` equal-frequency bins of the sampled values, in the encoded scale
    (``(x - center) / scale`` clipped to ``[-clip, clip]``, as the model receives them).

    A value holding at least ``1 / n_bins`` of the column (a point mass, e.g. the zeros of a column that is mostly
    zero) is an edge of its own, and the other bins split the remaining values into equal-frequency bins: plain
    quantiles would repeat the point mass and leave the rest of the column in one or two bins. Edges are
    distinct in float32 (the model's precision), so a column with few distinct values gets fewer bins; a
    constant or empty column gets one bin ``(v, v + 1)`` around its encoded value ``v``.
    """
    vals = np.sort(sample["values"])
    n_bins = int(n_bins)
    if len(vals):
        distinct, counts = np.unique(vals, return_counts=True)
        heavy = distinct[counts * n_bins >= len(vals)]
        rest = vals[~np.isin(vals, heavy)]
        k = max(n_bins - len(heavy), 1)
        inner = np.quantile(rest, np.linspace(0.0, 1.0, k + 1)) if len(rest) else np.empty(0)
        raw = np.concatenate([heavy, inner])
    else:
        raw = np.array([center])
    with np.errstate(over="ignore", invalid="ignore"):
        enc = np.clip((raw - center) / scale, -clip, clip)
    enc = np.unique(enc.astype(np.float32))
    if len(enc) < 2:
        v = float(enc[0]) if len(enc) else 0.0
        return (v, v + 1.0)
    return tuple(float(e) for e in enc)
