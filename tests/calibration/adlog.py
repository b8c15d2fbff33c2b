"""A synthetic ad log with known click probabilities (tests and benchmarks/ad_calibration.py use it)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def make_ad_log(n: int, seed: int = 0, ctr: float = 0.04, n_users: int = 2000, n_ads: int = 300) -> pd.DataFrame:
    """``user_id, ad_id, slot, price`` and a ``click`` drawn from a known ``p_click``: a logistic model with an
    effect per user, ad and slot and a linear term in ``price``; the effects depend on ``seed // 1000`` only, the
    rows on ``seed``, so logs with seeds 0, 1, 2 share one world."""
    world = np.random.default_rng(10_000 + seed // 1000)
    user_eff, ad_eff = world.normal(0, 0.9, n_users), world.normal(0, 0.9, n_ads)
    slot_eff = world.normal(0, 0.5, 8)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    a = np.minimum(rng.zipf(1.3, n) - 1, n_ads - 1)
    s = rng.integers(0, 8, n)
    price = rng.normal(0, 1, n)
    z = user_eff[u] + ad_eff[a] + slot_eff[s] + 0.6 * price
    lo, hi = -15.0, 5.0           # the intercept that gives the wanted mean click rate (bisection, no randomness)
    for _ in range(60):
        b = (lo + hi) / 2
        lo, hi = (b, hi) if (1 / (1 + np.exp(-(z + b)))).mean() < ctr else (lo, b)
    p = 1 / (1 + np.exp(-(z + b)))
    return pd.DataFrame({"user_id": u, "ad_id": a, "slot": s, "price": price.astype(np.float32),
                         "click": (rng.random(n) < p).astype(np.int64), "p_click": p})
