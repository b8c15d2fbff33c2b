"""eCPM scoring of candidate ads (CPC, oCPA), weighted fusion of several objectives, and a rate baseline.

Pure numpy / pandas: no torch, no models. The functions take probability arrays from any source (a model's
``predict``, the truth of a synthetic log, a baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ecpm", "fuse_scores", "smoothed_rate", "BID_TYPES"]

BID_TYPES = ("cpc", "ocpa")
"""Bid types: ``"cpc"`` (bid per click) and ``"ocpa"`` (bid per conversion, optimised by pCTR x pCVR)."""


def _array(name: str, value: Any, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be one-dimensional (one value per candidate), got shape "
                         f"{arr.shape}; pass one column (e.g. predict(x)[:, 0]).")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: {name} holds {int((~np.isfinite(arr)).sum())} NaN or infinite value(s); "
                         f"every candidate needs a finite value.")
    return arr


def _same_length(where: str, **arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: the arrays must have one value per candidate, got lengths {lengths}.")


def _probability(name: str, value: Any, where: str) -> np.ndarray:
    arr = _array(name, value, where)
    if ((arr < 0) | (arr > 1)).any():
        raise ValueError(f"{where}: {name} must be probabilities in [0, 1], got values in "
                         f"[{arr.min():.4g}, {arr.max():.4g}]; pass probabilities (predict), not logits.")
    return arr


def ecpm(bid: Any, pctr: Any, pcvr: Any = None, *, bid_type: str = "cpc") -> np.ndarray:
    """Effective cost per mille: the expected payment of 1,000 impressions of each candidate.

    * ``bid_type="cpc"`` (the bid is per click): ``1000 * bid * pCTR``.
    * ``bid_type="ocpa"`` (the bid is per conversion, the target CPA): ``1000 * bid * pCTR * pCVR``, where
      pCVR is the probability of a conversion given a click.

    Args:
        bid: bids, one per candidate (non-negative).
        pctr: click probabilities.
        pcvr: conversion-given-click probabilities; required for ``"ocpa"``, refused for ``"cpc"``.
        bid_type: ``"cpc"`` or ``"ocpa"``.

    Returns:
        float64 array of eCPMs, one per candidate.

    Example:
        >>> ecpm([2.0, 1.0], [0.01, 0.05])
        array([20., 50.])
        >>> ecpm([100.0], [0.05], [0.1], bid_type="ocpa")
        array([500.])
    """
    where = "ecpm"
    if bid_type not in BID_TYPES:
        raise ValueError(f"{where}: bid_type must be one of {BID_TYPES}, got {bid_type!r}.")
    b = _array("bid", bid, where)
    if (b < 0).any():
        raise ValueError(f"{where}: bids must be >= 0, got a minimum of {b.min():.4g}.")
    p = _probability("pctr", pctr, where)
    if bid_type == "cpc":
        if pcvr is not None:
            raise ValueError(f"{where}: a CPC bid pays per click, so pcvr is not used; drop pcvr or pass "
                             f"bid_type='ocpa'.")
        _same_length(where, bid=b, pctr=p)
        return 1000.0 * b * p
    if pcvr is None:
        raise ValueError(f"{where}: bid_type='ocpa' ranks by bid x pCTR x pCVR; pass pcvr.")
    c = _probability("pcvr", pcvr, where)
    _same_length(where, bid=b, pctr=p, pcvr=c)
    return 1000.0 * b * p * c


def fuse_scores(scores: Mapping[str, Any], weights: Mapping[str, float], *, how: str = "sum") -> np.ndarray:
    """Weighted fusion of several per-candidate objectives into one ranking score.

    * ``how="sum"``: ``sum_i w_i * s_i`` (e.g. eCPM plus a weighted pCTR term for user experience).
    * ``how="product"``: ``prod_i s_i ** w_i`` (scores must be >= 0); with unit weights, the product of
      pCTR, pCVR and the bid is the oCPA eCPM up to the factor 1000.

    Args:
        scores: objective name -> array, one value per candidate (all the same length).
        weights: objective name -> weight; every weighted objective must be in ``scores`` (objectives without
            a weight are not used).
        how: ``"sum"`` or ``"product"``.

    Returns:
        float64 array of fused scores.

    Example:
        >>> fuse_scores({"ecpm": [50.0, 40.0], "pctr": [0.01, 0.2]}, {"ecpm": 1.0, "pctr": 100.0})
        array([51., 60.])
        >>> fuse_scores({"pctr": [0.1, 0.2], "pcvr": [0.5, 0.1]}, {"pctr": 1.0, "pcvr": 1.0}, how="product")
        array([0.05, 0.02])
    """
    where = "fuse_scores"
    if how not in ("sum", "product"):
        raise ValueError(f"{where}: how must be 'sum' or 'product', got {how!r}.")
    if not weights:
        raise ValueError(f"{where}: weights is empty; give at least one objective a weight, e.g. {{'ecpm': 1.0}}.")
    missing = sorted(set(weights) - set(scores))
    if missing:
        raise ValueError(f"{where}: weights name {missing}, which are not in scores {sorted(scores)}; give a "
                         f"score array for each weighted objective.")
    arrays = {k: _array(f"scores[{k!r}]", scores[k], where) for k in weights}
    _same_length(where, **arrays)
    if how == "sum":
        return np.sum([float(w) * arrays[k] for k, w in weights.items()], axis=0)
    neg = [k for k in weights if (arrays[k] < 0).any()]
    if neg:
        raise ValueError(f"{where}: how='product' needs non-negative scores; {neg} hold negative values.")
    return np.prod([arrays[k] ** float(w) for k, w in weights.items()], axis=0)


def smoothed_rate(keys: Any, labels: Any, query: Any, *, prior_strength: float = 20.0) -> np.ndarray:
    """A per-key event rate with a prior, as a simple baseline predictor (e.g. each ad's historical CTR).

    ``rate(k) = (events(k) + m * r) / (count(k) + m)`` with ``r`` the global rate of ``labels`` and ``m =
    prior_strength``: a key seen rarely gets a rate close to the global one; an unseen key gets ``r`` itself.

    Args:
        keys: the key of each training row (e.g. ``train["ad_id"]``).
        labels: the 0/1 (or fractional) label of each training row.
        query: keys to predict for.
        prior_strength: pseudo-count ``m`` of the global rate (>= 0).

    Returns:
        float64 array, the smoothed rate of each query key.

    Example:
        >>> smoothed_rate(["a", "a", "b"], [1, 1, 0], ["a", "b", "c"], prior_strength=1.0).round(3)
        array([0.889, 0.333, 0.667])
    """
    if not prior_strength >= 0:
        raise ValueError(f"smoothed_rate: prior_strength must be >= 0, got {prior_strength!r}.")
    y = _array("labels", labels, "smoothed_rate")
    k = pd.Series(np.asarray(keys))
    if len(k) != len(y) or len(y) == 0:
        raise ValueError(f"smoothed_rate: keys and labels must be non-empty and of the same length, got "
                         f"{len(k)} and {len(y)}.")
    r = float(y.mean())
    agg = pd.DataFrame({"k": k, "y": y}).groupby("k")["y"].agg(["sum", "count"])
    rate = (agg["sum"] + prior_strength * r) / (agg["count"] + prior_strength)
    out = pd.Series(np.asarray(query)).map(rate).fillna(r)
    return out.to_numpy(dtype=np.float64)
