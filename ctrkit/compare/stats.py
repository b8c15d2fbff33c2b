"""Confidence intervals and sample sizes for comparisons over seeds.

A comparison trains each model once per seed; these helpers say how sure the seed average is: t- and bootstrap
intervals for a mean (of per-seed metrics, or of paired per-seed differences ``a - b``), a Welch interval for
the difference of two independent means, and the number of seeds a paired t-test needs to detect a given gap.
They work on plain 1-D arrays; scipy (installed with scikit-learn) supplies the t and noncentral-t
distributions.

Example:
    >>> import numpy as np
    >>> a = np.array([0.071, 0.064, 0.080, 0.069, 0.075])
    >>> b = np.array([0.066, 0.061, 0.072, 0.070, 0.068])
    >>> ci = paired_interval(a, b)
    >>> round(ci.mean, 4), ci.lo < ci.mean < ci.hi
    (0.0044, True)
    >>> seeds_for_power(sd=0.02, delta=0.01)   # a paired gap of half a standard deviation
    34
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Interval", "t_interval", "paired_interval", "bootstrap_interval", "welch_interval",
           "paired_t_power", "seeds_for_power"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[lo, hi]`` at level ``confidence``."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n, "confidence": self.confidence}

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}]"


def _vector(x: Any, name: str, min_n: int = 2) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size < min_n:
        raise ValueError(f"{name}: need at least {min_n} values, got {arr.size}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: values must be finite; drop the failed runs first.")
    return arr


def t_interval(x: Any, confidence: float = 0.95) -> Interval:
    """Student-t interval for the mean of ``x`` (``mean ± t_{(1+c)/2, n-1} * sd / sqrt(n)``)."""
    from scipy import stats
    arr = _vector(x, "t_interval")
    n = arr.size
    mean = float(arr.mean())
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(arr.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def paired_interval(a: Any, b: Any, confidence: float = 0.95) -> Interval:
    """t interval for the mean paired difference ``a - b`` (``a[i]`` and ``b[i]`` share seed ``i``)."""
    x, y = _vector(a, "paired_interval a"), _vector(b, "paired_interval b")
    if x.shape != y.shape:
        raise ValueError(f"paired_interval: a has {x.size} values and b {y.size}; pair them by seed.")
    return t_interval(x - y, confidence)


def bootstrap_interval(x: Any, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval for the mean of ``x`` (``n_resamples`` resamples with replacement)."""
    arr = _vector(x, "bootstrap_interval")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 1000):      # chunks keep memory small for long x
        k = min(1000, n_resamples - start)
        means[start:start + k] = arr[rng.integers(0, arr.size, size=(k, arr.size))].mean(axis=1)
    alpha = 1 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(arr.mean()), float(lo), float(hi), arr.size, confidence)


def welch_interval(x: Any, y: Any, confidence: float = 0.95) -> Interval:
    """Welch interval for ``mean(x) - mean(y)`` of two independent samples (unequal variances)."""
    from scipy import stats
    a, b = _vector(x, "welch_interval x"), _vector(y, "welch_interval y")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)) if se > 0 else float(a.size + b.size - 2)
    diff = float(a.mean() - b.mean())
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    return Interval(diff, diff - half, diff + half, a.size + b.size, confidence)


def paired_t_power(n: int, sd: float, delta: float, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs to detect a mean difference ``delta`` when the
    per-pair differences have standard deviation ``sd`` (noncentral t, noncentrality ``delta / sd * sqrt(n)``)."""
    from scipy import stats
    if n < 2:
        raise ValueError(f"paired_t_power: n must be >= 2, got {n}.")
    if not sd > 0:
        raise ValueError(f"paired_t_power: sd must be > 0, got {sd}.")
    df = n - 1
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    nc = abs(delta) / sd * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_for_power(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 10 ** 6) -> int:
    """Smallest number of seeds (pairs) with which a two-sided paired t-test at level ``alpha`` detects a mean
    difference ``delta`` with probability ``power``, given the standard deviation ``sd`` of the per-seed
    differences.

    Starts from the normal approximation ``((z_{1-alpha/2} + z_power) * sd / delta)^2`` and steps to the exact
    (noncentral t) answer, which is a few seeds larger.
    """
    from scipy import stats
    if not delta:
        raise ValueError("seeds_for_power: delta must be non-zero.")
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError(f"seeds_for_power: alpha and power must be in (0, 1), got {alpha}, {power}.")
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    n = max(2, math.floor((z * sd / abs(delta)) ** 2))
    while n > 2 and paired_t_power(n - 1, sd, delta, alpha) >= power:
        n -= 1
    while paired_t_power(n, sd, delta, alpha) < power:
        n += 1
        if n > max_n:
            raise ValueError(f"seeds_for_power: more than {max_n} seeds needed.")
    return n
