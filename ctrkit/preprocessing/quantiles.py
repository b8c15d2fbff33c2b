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


def update_sample(sample: dict, values: np.ndarray, start: int, size: int = SAMPLE_SIZE) -> None:
    """Add the rows ``start ..`` of one chunk (raw float64 values; NaN and inf are left out) to ``sample``."""
    keys = _row_keys(start, len(values))
    ok = np.isfinite(values)
    keys = np.concatenate([sample["keys"], keys[ok]])
    vals = np.concatenate([sample["values"], values[ok]])
    if len(keys) > size:
        keep = np.argpartition(keys, size - 1)[:size]
        keys, vals = keys[keep], vals[keep]
    sample["keys"], sample["values"] = keys, vals


def bin_edges(sample: dict, n_bins: int, center: float, scale: float, clip: float) -> tuple[float, ...]:
    """The edges of ``n_bins`` equal-frequency bins of the sampled values, in the encoded scale
    (``(x - center) / scale`` clipped to ``[-clip, clip]``, as the model receives them).

    Repeated quantiles (a column with few distinct values, e.g. mostly zeros) are merged, so a column may get
    fewer bins; edges are made distinct in float32 (the model's precision). A constant or empty column gets one
    bin ``(v, v + 1)`` around its encoded value ``v``.
    """
    vals = sample["values"]
    if len(vals):
        raw = np.quantile(vals, np.linspace(0.0, 1.0, int(n_bins) + 1))
    else:
        raw = np.array([center])
    with np.errstate(over="ignore", invalid="ignore"):
        enc = np.clip((raw - center) / scale, -clip, clip)
    enc = np.unique(enc.astype(np.float32))
    if len(enc) < 2:
        v = float(enc[0]) if len(enc) else 0.0
        return (v, v + 1.0)
    return tuple(float(e) for e in enc)
