"""Dense (numeric) values: reading them as floats, the fit-time statistics, the NaN / inf / scaling policy.

Values are coerced to float (non-numeric strings become NaN); ``+-inf`` are clipped to the training min /
max; NaN is replaced by the training mean of the finite values (0 if the column was all NaN at fit); then the
column's scaling applies (``"standard"``, ``"minmax"`` or none) and the result is clipped to
``[-CLIP, CLIP]`` so extreme values cannot overflow float32. :func:`encode_dense` applies this to all dense
columns at once, whether they come from a DataFrame or from a few records.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError

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


def to_float(values: Any, column: str = "?") -> np.ndarray:
    """A column (Series) or a list of raw values as float64 (non-numbers: NaN, with a warning naming ``column``).

    Dates and durations are refused: their nanosecond integers would be read as numbers of 1e18 and clipped.
    """
    if isinstance(values, list):
        return np.array([scalar_float(v) for v in values], dtype=np.float64)
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if (pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype)
            or isinstance(s.dtype, pd.PeriodDtype)):
        raise DataValidationError(
            f"FeatureEncoder: dense column {column!r} holds {s.dtype} values, not numbers. Convert it to a number "
            f"first, e.g. df[{column!r}] = df[{column!r}].astype('int64') // 10**9 (seconds since 1970), or "
            "derive features such as the hour or the weekday.")
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    out = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    lost = np.isnan(out) & s.notna().to_numpy()
    if lost.any():
        warnings.warn(f"FeatureEncoder: dense column {column!r} has {int(lost.sum())} values that are not numbers "
                      f"(e.g. {s[lost].iloc[0]!r}); they are treated as missing (the training mean).", stacklevel=4)
    return out


OUTLIER = 1e9  # a finite value this many robust deviations from its chunk's median is left out of the statistics


def new_moments() -> list:
    """Running statistics of one column: ``[count, mean, M2, min, max, outliers, an outlier]`` of its finite
    values (outliers, see :func:`update_moments`, are counted but not in the other statistics)."""
    return [0, 0.0, 0.0, math.inf, -math.inf, 0, math.nan]


def _outliers(fin: np.ndarray) -> np.ndarray:
    """Values more than ``OUTLIER`` robust deviations from the median (the MAD, else the mean absolute deviation):
    a single 1e308 must not set the mean and scale of a column of ordinary values."""
    med = float(np.median(fin))
    with np.errstate(over="ignore", invalid="ignore"):
        dev = np.abs(fin - med)
        spread = float(np.median(dev))
        if not spread > 0:
            spread = float(np.mean(np.minimum(dev, np.finfo(np.float64).max / fin.size)))
        if not spread > 0:
            return np.zeros(fin.size, dtype=bool)
        return dev > OUTLIER * spread


def update_moments(st: list, a: np.ndarray) -> None:
    """Merge one chunk's finite values into ``st`` (Chan et al.'s update: the same in any chunking).

    Values far outside the chunk's bulk (:func:`_outliers`) are counted apart and left out, so the statistics
    of ordinary values stay finite and meaningful; at transform such a value is clipped like any other."""
    fin = a[np.isfinite(a)]
    if not fin.size:
        return
    far = _outliers(fin)
    if far.any():
        st[5] += int(far.sum())
        st[6] = float(fin[far][0]) if math.isnan(st[6]) else st[6]
        fin = fin[~far]
    nb = fin.size
    # float64 sums of values near the float64 limit overflow: the mean and M2 come from values scaled by a power of 2
    k = math.ldexp(1.0, math.frexp(max(float(np.abs(fin).max()), 1e-300))[1] - 1)
    mb = float((fin / k).mean(dtype=np.float64)) * k
    with np.errstate(over="ignore", invalid="ignore"):
        m2b = float((((fin - mb) / k) ** 2).sum()) * k * k
    na, ma = st[0], st[1]
    n = na + nb
    delta = mb - ma
    st[0], st[1] = n, ma + delta * nb / n
    st[2] += m2b + (delta * delta * na * nb / n if na else 0.0)  # (no inf * 0 on the first chunk)
    st[3] = min(st[3], float(fin.min()))
    st[4] = max(st[4], float(fin.max()))


def dense_stats(moments: list, scaling: str | None, column: str = "?") -> dict[str, float]:
    """The fitted ``{"fill", "center", "scale", "lo", "hi"}`` of a column from its running statistics.

    Warns, naming the column, when values were left out as outliers or a statistic does not fit in float64."""
    n, mean, m2, lo, hi, n_out, example = moments
    if n_out:
        warnings.warn(f"FeatureEncoder: dense column {column!r} has {n_out} extreme value(s) (e.g. {example:g}) "
                      "far outside the bulk of its values; they are left out of its mean, scale, min and max (else "
                      "every ordinary value would encode to the same number) and are clipped at transform. Check "
                      "the data, or clip / log-transform the column.", stacklevel=4)
    with np.errstate(over="ignore", invalid="ignore"):
        std = math.sqrt(m2 / n) if n and math.isfinite(m2) else (math.inf if n else 0.0)
        width = hi - lo if n else 0.0
    lo, hi = (lo, hi) if n else (0.0, 0.0)
    if not (math.isfinite(std) and math.isfinite(width)):
        std = width = max(abs(lo), abs(hi))  # the values span more than float64: scale by their magnitude
        warnings.warn(f"FeatureEncoder: dense column {column!r} spans values from {lo:g} to {hi:g}, beyond what "
                      "float64 statistics hold; it is scaled by its largest magnitude instead. Consider a log "
                      "transform.", stacklevel=4)
    if scaling == "standard":
        center, scale = mean, (std if std > 1e-12 else 1.0)
    elif scaling == "minmax":
        center, scale = lo, (width if width > 1e-12 else 1.0)
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
