"""A synthetic ad log with known truth: requests, candidate ads, bids, and click / conversion probabilities.

Every candidate row carries the *true* probabilities it was sampled from (``p_click`` and ``p_conv``, the
probability of a conversion given a click), so a model trained on the labels can be measured against the
ceiling the truth reaches (the oracle's AUC, logloss, gAUC) and an auction replay can be scored with the true
expected outcomes (:mod:`ctrkit.ranking`).

This module is pure numpy/pandas (it does not import torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["AdLog", "make_ad_log", "AD_LOG_SPARSE", "AD_LOG_DENSE"]

AD_LOG_SPARSE = ("user_id", "user_segment", "hour", "device", "ad_id", "advertiser_id", "category")
"""Categorical feature columns of :func:`make_ad_log`'s impressions (what a model may read)."""
AD_LOG_DENSE = ("user_age",)
"""Continuous feature columns of :func:`make_ad_log`'s impressions."""
_DEVICES = np.array(["mobile", "desktop", "tablet"])
_DEVICE_SHARE = np.array([0.6, 0.3, 0.1])


@dataclass(frozen=True)
class AdLog:
    """The output of :func:`make_ad_log`: one row per (request, candidate ad), plus what describes it.

    Attributes:
        impressions: the candidate rows, grouped by ``request_id`` (columns in :func:`make_ad_log`).
        sparse_features: the categorical feature columns a model may read (:data:`AD_LOG_SPARSE`).
        dense_features: the continuous feature columns (:data:`AD_LOG_DENSE`).
        params: the generator's arguments (JSON-serialisable), enough to regenerate the same log.
    """

    impressions: pd.DataFrame
    sparse_features: tuple[str, ...] = AD_LOG_SPARSE
    dense_features: tuple[str, ...] = AD_LOG_DENSE
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        """The feature columns, sparse then dense (never the truth, the labels or the bids)."""
        return [*self.sparse_features, *self.dense_features]

    def split(self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[pd.DataFrame, ...]:
        """Split the impressions by request (all candidates of a request land in the same part).

        Args:
            fractions: the parts' shares of the requests; they must be positive and sum to 1.
            seed: seed of the permutation of the request ids.

        Returns:
            One DataFrame per fraction, each in the log's row order with a fresh ``RangeIndex``.

        Example:
            >>> log = make_ad_log(n_requests=100, n_users=20, n_ads=30, seed=0)
            >>> train, test = log.split((0.8, 0.2))
            >>> train["request_id"].nunique(), test["request_id"].nunique()
            (80, 20)
        """
        fr = np.asarray(fractions, dtype=float)
        if fr.ndim != 1 or len(fr) < 1 or (fr <= 0).any() or not math.isclose(fr.sum(), 1.0, abs_tol=1e-9):
            raise ValueError(f"AdLog.split: fractions must be positive and sum to 1, got {tuple(fractions)!r}.")
        ids = self.impressions["request_id"].unique()
        perm = np.random.default_rng(seed).permutation(ids)
        cuts = np.round(np.cumsum(fr)[:-1] * len(ids)).astype(int)
        parts = np.split(perm, cuts)
        req = self.impressions["request_id"].to_numpy()
        return tuple(self.impressions[np.isin(req, p)].reset_index(drop=True) for p in parts)


def _logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))          # = 1 / (1 + exp(-z)), without overflow


def _shift_to_mean(z: np.ndarray, target: float) -> float:
    """The offset ``b`` with ``mean(sigmoid(z + b)) == target`` (bisection; the mean grows with ``b``)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _logistic(z + mid).mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"make_ad_log: {name} must be {expected}, got {value!r}.")


def make_ad_log(
    n_requests: int = 20_000,
    n_users: int = 2_000,
    n_ads: int = 500,
    *,
    n_advertisers: int = 50,
    n_categories: int = 20,
    n_segments: int = 8,
    n_candidates: int = 10,
    ctr: float = 0.05,
    cvr: float = 0.10,
    latent_dim: int = 8,
    seed: int = 0,
) -> AdLog:
    """Generate an ad log whose click and conversion probabilities are known functions of its features.

    **The world.** Users belong to one of ``n_segments`` segments and have an age; ads belong to an advertiser
    and a category. A user has a latent taste vector (its segment's vector plus individual noise), an ad a
    latent vector (its category's vector plus noise); a conversion vector of the ad mixes its click vector
    (weight 0.6) with independent noise. Each request comes from a user (users' activity is log-normal), at an
    hour (0-23) on a device (mobile 60 %, desktop 30 %, tablet 10 %), with ``n_candidates`` distinct candidate
    ads drawn without replacement with Zipf-like popularity (weight ``1 / (rank + 10)``).

    **The truth.** With ``σ`` the logistic function and ``a = (age - 40) / 20``:

    * ``p_click = σ(b_click + user·ad + user_bias + ad_bias + 0.3 sin(2π hour / 24) + device×category
      - 0.5 a²)``
    * ``p_conv = σ(b_conv + user·ad_conv + advertiser_quality + 0.4 a)``: the probability of a conversion
      **given a click**.

    ``b_click`` and ``b_conv`` are set (by bisection) so that the mean ``p_click`` over the log is ``ctr`` and
    the mean ``p_conv`` is ``cvr``. Labels are sampled from the truth: ``click ~ Bernoulli(p_click)`` and
    ``conversion = click and Bernoulli(p_conv)``, so there is never a conversion without a click. Every
    candidate of a request is labelled as if shown once in the top slot (an exploration log without position
    effects); the auction replay applies position bias itself.

    **Bids.** An advertiser has a log-normal base CPC bid (median 1.0); an ad bids ``bid`` = its advertiser's
    base times a log-normal factor (σ 0.2), per click. For oCPA, ``cpa_bid`` (per conversion) is
    ``bid / cvr`` times a log-normal factor (σ 0.3). Bids are constant across requests and rounded to cents.

    Random draws come from ``np.random.default_rng(seed)`` in a fixed order, so the same arguments always give
    the same log.

    Args:
        n_requests: number of requests (>= 1).
        n_users, n_ads: numbers of users and ads (``n_ads >= n_candidates``).
        n_advertisers, n_categories, n_segments: sizes of the ad and user groupings (>= 1).
        n_candidates: candidate ads per request (>= 1).
        ctr: mean true click probability, in (0, 1).
        cvr: mean true conversion probability given a click, in (0, 1).
        latent_dim: size of the latent taste vectors (>= 1).
        seed: seed of the generator.

    Returns:
        An :class:`AdLog` whose ``impressions`` has ``n_requests * n_candidates`` rows and the columns
        ``request_id`` (int64), the features ``user_id``, ``user_segment``, ``user_age`` (float), ``hour``,
        ``device`` (str), ``ad_id``, ``advertiser_id``, ``category``, the bids ``bid`` and ``cpa_bid``, the
        truth ``p_click`` and ``p_conv`` (float64), and the labels ``click`` and ``conversion`` (int64).

    Example:
        >>> log = make_ad_log(n_requests=2000, n_users=200, n_ads=100, seed=1)
        >>> df = log.impressions
        >>> len(df), int(df.groupby("request_id").size().max())
        (20000, 10)
        >>> bool((df["conversion"] <= df["click"]).all())       # conversions only after clicks
        True
        >>> round(float(df["p_click"].mean()), 3)
        0.05
    """
    for name, value in (("n_requests", n_requests), ("n_users", n_users), ("n_ads", n_ads),
                        ("n_advertisers", n_advertisers), ("n_categories", n_categories),
                        ("n_segments", n_segments), ("n_candidates", n_candidates), ("latent_dim", latent_dim)):
        _check(name, value, isinstance(value, (int, np.integer)) and value >= 1, "an integer >= 1")
    _check("n_ads", n_ads, n_ads >= n_candidates, f"at least n_candidates ({n_candidates})")
    _check("ctr", ctr, 0.0 < ctr < 1.0, "in (0, 1)")
    _check("cvr", cvr, 0.0 < cvr < 1.0, "in (0, 1)")
    params = dict(n_requests=int(n_requests), n_users=int(n_users), n_ads=int(n_ads),
                  n_advertisers=int(n_advertisers), n_categories=int(n_categories), n_segments=int(n_segments),
                  n_candidates=int(n_candidates), ctr=float(ctr), cvr=float(cvr), latent_dim=int(latent_dim),
                  seed=int(seed))
    rng = np.random.default_rng(seed)
    d, scale = latent_dim, latent_dim ** -0.25

    # users
    seg_vec = rng.standard_normal((n_segments, d))
    user_seg = rng.integers(n_segments, size=n_users)
    user_vec = (seg_vec[user_seg] + 0.6 * rng.standard_normal((n_users, d))) * scale
    user_bias = rng.normal(0.0, 0.5, n_users)
    user_age = np.round(rng.uniform(18.0, 70.0, n_users))
    user_activity = rng.lognormal(0.0, 1.0, n_users)
    # ads and advertisers
    cat_vec = rng.standard_normal((n_categories, d))
    ad_cat = rng.integers(n_categories, size=n_ads)
    ad_adv = rng.integers(n_advertisers, size=n_ads)
    ad_vec = (cat_vec[ad_cat] + 0.6 * rng.standard_normal((n_ads, d))) * scale
    conv_vec = 0.6 * ad_vec + 0.8 * rng.standard_normal((n_ads, d)) * scale
    ad_bias = rng.normal(0.0, 0.5, n_ads)
    adv_quality = rng.normal(0.0, 0.6, n_advertisers)
    device_cat = rng.normal(0.0, 0.3, (len(_DEVICES), n_categories))
    adv_bid = rng.lognormal(0.0, 0.5, n_advertisers)
    ad_bid = np.maximum(np.round(adv_bid[ad_adv] * rng.lognormal(0.0, 0.2, n_ads), 2), 0.01)
    ad_cpa_bid = np.maximum(np.round(ad_bid / cvr * rng.lognormal(0.0, 0.3, n_ads), 2), 0.01)
    popularity = 1.0 / (rng.permutation(n_ads) + 10.0)

    # requests and their candidates (Gumbel top-k: weighted sampling without replacement, in chunks)
    req_user = rng.choice(n_users, size=n_requests, p=user_activity / user_activity.sum())
    req_hour = rng.integers(24, size=n_requests)
    req_device = rng.choice(len(_DEVICES), size=n_requests, p=_DEVICE_SHARE)
    log_pop = np.log(popularity)
    cand = np.empty((n_requests, n_candidates), dtype=np.int64)
    chunk = max(1, 2_000_000 // n_ads)
    for lo in range(0, n_requests, chunk):
        g = log_pop + rng.gumbel(size=(min(chunk, n_requests - lo), n_ads))
        cand[lo:lo + len(g)] = np.sort(np.argpartition(-g, n_candidates - 1, axis=1)[:, :n_candidates], axis=1)

    rows_req = np.repeat(np.arange(n_requests), n_candidates)
    ad = cand.ravel()
    user = req_user[rows_req]
    hour, device = req_hour[rows_req], req_device[rows_req]
    a = (user_age[user] - 40.0) / 20.0
    z_click = (np.einsum("ij,ij->i", user_vec[user], ad_vec[ad]) + user_bias[user] + ad_bias[ad]
               + 0.3 * np.sin(2.0 * np.pi * hour / 24.0) + device_cat[device, ad_cat[ad]] - 0.5 * a * a)
    z_conv = np.einsum("ij,ij->i", user_vec[user], conv_vec[ad]) + adv_quality[ad_adv[ad]] + 0.4 * a
    p_click = _logistic(z_click + _shift_to_mean(z_click, ctr))
    p_conv = _logistic(z_conv + _shift_to_mean(z_conv, cvr))
    click = rng.random(len(ad)) < p_click
    conversion = click & (rng.random(len(ad)) < p_conv)

    frame = pd.DataFrame({
        "request_id": rows_req.astype(np.int64),
        "user_id": user.astype(np.int64),
        "user_segment": user_seg[user].astype(np.int64),
        "user_age": user_age[user],
        "hour": hour.astype(np.int64),
        "device": _DEVICES[device],
        "ad_id": ad,
        "advertiser_id": ad_adv[ad].astype(np.int64),
        "category": ad_cat[ad].astype(np.int64),
        "bid": ad_bid[ad],
        "cpa_bid": ad_cpa_bid[ad],
        "p_click": p_click,
        "p_conv": p_conv,
        "click": click.astype(np.int64),
        "conversion": conversion.astype(np.int64),
    })
    return AdLog(impressions=frame, params=params)
