"""Negative downsampling: keep every positive and a seeded share ``rate`` of the negatives of one task.

Training on the sampled log makes a model predict the click probability ``q`` of the sampled log; record the
rate with ``model.set_negative_sampling({task: rate})`` and its predictions are corrected back to the full log,
``p = q / (q + (1 - q) / rate)`` (:mod:`ctrkit.models.calibration`).

Which negatives are kept depends only on ``seed`` and the row's position: negative ``i`` is kept when the
``i``-th draw of ``numpy.random.default_rng(seed).random`` is below ``rate``. Reading the labels in chunks
(an on-disk store, :func:`ctrkit.data.downsample_store`) keeps exactly the rows a whole-frame call keeps.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["downsample_negatives", "negative_sampling_mask", "NegativeSampler"]


def _check_rate(rate: Any, where: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"{where}: rate must be a number in (0, 1] (the share of negatives kept, e.g. 0.1), "
                         f"got {rate!r}.")
    return float(rate)


class NegativeSampler:
    """The keep / drop decision for labels read in order, one chunk after another (see the module docstring).

    Example:
        >>> s = NegativeSampler(rate=0.5, seed=0)
        >>> np.concatenate([s.mask([0, 1, 0]), s.mask([0, 0])]).tolist() == \\
        ...     negative_sampling_mask([0, 1, 0, 0, 0], 0.5, seed=0).tolist()
        True
    """

    def __init__(self, rate: float, seed: int = 0) -> None:
        self.rate = _check_rate(rate, "NegativeSampler")
        self._rng = np.random.default_rng(seed)

    def mask(self, labels: Any) -> np.ndarray:
        """True for the rows kept: positives, missing labels, and the negatives whose draw is below the rate."""
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        draw = self._rng.random(y.size)
        return (y != 0) | (draw < self.rate)   # NaN != 0: rows without this task's label are kept


def negative_sampling_mask(labels: Any, rate: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the rows :func:`downsample_negatives` keeps, for labels ``(n,)`` (0 = negative)."""
    return NegativeSampler(rate, seed).mask(labels)


def downsample_negatives(frame: Any, label: Any, rate: float, seed: int = 0) -> Any:
    """The rows of ``frame`` with every positive of ``label`` and a seeded share ``rate`` of its negatives.

    Args:
        frame: a DataFrame (its index is kept, so labels in another frame follow with ``y.loc[out.index]``)
            or a dict of equal-length arrays.
        label: the label column's name in ``frame``, or the labels themselves ``(n,)`` (0 / 1; NaN rows kept).
        rate: the share of negatives kept, ``0 < rate <= 1``.
        seed: which negatives are kept depends only on it and the row order.

    Returns:
        the kept rows, in their original order, of the same type as ``frame``.

    Example:
        >>> df = pd.DataFrame({"ad": range(1000), "click": [1] + [0] * 999})
        >>> out = downsample_negatives(df, "click", rate=0.1, seed=1)
        >>> int(out.click.sum()), 60 < len(out) < 140
        (1, True)
    """
    rate = _check_rate(rate, "downsample_negatives")
    if isinstance(label, str):
        if label not in frame:
            cols = list(frame.columns if isinstance(frame, pd.DataFrame) else frame.keys())
            raise ValueError(f"downsample_negatives: no label column {label!r} in the frame (columns: {cols[:10]}). "
                             "Pass the label column's name or the labels themselves.")
        y = np.asarray(frame[label])
    else:
        y = np.asarray(label)
    n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values())))
    if y.reshape(-1).size != n:
        raise ValueError(f"downsample_negatives: {y.size} labels for {n} rows; pass one label per row.")
    yf = pd.to_numeric(pd.Series(y.reshape(-1)), errors="coerce").to_numpy(np.float64)
    bad = ~np.isnan(yf) & ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"downsample_negatives: labels must be 0 / 1 (NaN: missing), got values such as "
                         f"{np.unique(yf[bad])[:5].tolist()}.")
    keep = negative_sampling_mask(yf, rate, seed)
    if isinstance(frame, pd.DataFrame):
        return frame.iloc[np.flatnonzero(keep)]
    return {k: np.asarray(v)[keep] for k, v in frame.items()}
