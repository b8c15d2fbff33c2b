"""Dense (numeric) values: reading them as floats, the fit-time statistics, the NaN / inf / scaling policy.

Values are coerced to float (non-numeric strings become NaN); ``+-inf`` are clipped to the training min /
max; NaN is replaced by the training mean of the finite values (0 if the column was all NaN at fit); then the
column's scaling applies (``"standard"``, ``"minmax"`` or none) and the result is clipped to
``[-CLIP, CLIP]`` so extreme values cannot overflow float32. :func:`encode_dense` applies this to all dense
columns at once, whether they come from a DataFrame or from a few records.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SCALINGS", "CLIP", "to_float", "new_moments", "update_moments", "dense_stats", "stat_vectors",
           "encode_dense"]

SCALINGS = ("standard", "minmax", None)
CLIP = 1e4  # scaled dense values are clipped to [-CLIP, CLIP]
_STATS = ("fill", "lo", "hi", "center", "scale")


def scalar_float(v: Any) -> float:
    """One value as a column of its type is read: numbers as floats, anything else NaN."""
    if v is None or v is pd.NA or v is pd.NaT:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def to_float(values: Any) -> np.ndarray:
    """A column (Series) or a list of raw values as float64 (non-numbers: NaN)."""
    if isinstance(values, list):
        return np.array([scalar_float(v) for v in values], dtype=np.float64)
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def new_moments() -> list:
    """Running statistics of one column: ``[count, mean, M2, min, max]`` of its finite values."""
    return [0, 0.0, 0.0, math.inf, -math.inf]


def update_moments(st: list, a: np.ndarray) -> None:
    """Merge one chunk's finite values into ``st`` (Chan et al.'s update: the same in any chunking)."""
    fin = a[np.isfinite(a)]
    if not fin.size:
        return
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


def dense_stats(moments: list, scaling: str | None) -> dict[str, float]:
    """The fitted ``{"fill", "center", "scale", "lo", "hi"}`` of a column from its running statistics."""
    n, mean, m2, lo, hi = moments
    std = math.sqrt(m2 / n) if n else 0.0
    lo, hi = (lo, hi) if n else (0.0, 0.0)
    if scaling == "standard":
        center, scale = mean, (std if std > 1e-12 else 1.0)
    elif scaling == "minmax":
        center, scale = lo, ((hi - lo) if hi - lo > 1e-12 else 1.0)
    else:
        center, scale = 0.0, 1.0
    return {"fill": mean, "center": center, "scale": scale, "lo": lo, "hi": hi}


def stat_vectors(stats: Mapping[str, Mapping[str, float]], columns: list[str]) -> dict[str, np.ndarray]:
    """The columns' statistics as ``(D, 1)`` float64 vectors, for :func:`encode_dense`."""
    return {k: np.array([[float(stats[c][k])] for c in columns], dtype=np.float64).reshape(len(columns), 1)
            for k in _STATS}


def encode_dense(a: np.ndarray, v: Mapping[str, np.ndarray]) -> np.ndarray:
    """Encode raw values ``a`` (D columns, n rows: shape ``(D, n)``, float64) to float32 ``(D, n)``."""
    a = np.where(np.isnan(a), v["fill"], a)
    a = np.where(np.isposinf(a), v["hi"], np.where(np.isneginf(a), v["lo"], a))
    with np.errstate(over="ignore", invalid="ignore"):
        z = (a - v["center"]) / v["scale"]
    # extreme inputs (e.g. 1e308) must not overflow float32 or blow up training: bound the scaled value
    np.clip(z, -CLIP, CLIP, out=z)   # +-inf -> +-CLIP
    z[np.isnan(z)] = 0.0
    return z.astype(np.float32)
