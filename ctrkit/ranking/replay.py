"""Offline auction replay: rank each request's candidate ads by a score, fill the top slots, price and score.

For every request of a log (rows = candidate ads with bids), :func:`replay_auction` ranks the candidates by a
score (the eCPM from given probabilities, or any score), shows the best ``slots`` of them, charges each shown
ad by the first- or second-price rule, and counts the outcomes with the log's **true** probabilities: the
expected clicks, conversions, revenue and advertiser value (or outcomes sampled from those probabilities with
a seed). :func:`compare_replays` runs several policies (a model, the truth, a baseline) on the same log and
reports each as a fraction of a reference.

Pure numpy / pandas: no torch, no models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .scoring import BID_TYPES, _array, _probability, ecpm

__all__ = ["ReplayResult", "replay_auction", "compare_replays", "PRICING_RULES", "SUMMARY_COLUMNS"]

PRICING_RULES = ("first", "second")
"""``"first"``: a winner pays its bid per event; ``"second"``: generalised second price (GSP)."""
SUMMARY_COLUMNS = ("requests", "impressions", "clicks", "conversions", "revenue", "advertiser_value",
                   "cost_per_click", "cost_per_conversion")
"""The columns of :meth:`ReplayResult.summary` and of :func:`compare_replays`' table, in order."""


@dataclass(frozen=True)
class ReplayResult:
    """What one replay showed and earned.

    Attributes:
        shown: one row per shown ad, in request then slot order: ``row`` (the position of the candidate in
            the log), ``request``, ``slot`` (0 = top), ``score``, ``price`` (per click for CPC, per
            conversion for oCPA), ``clicks``, ``conversions`` (expected, or sampled, counts), ``payment`` (what
            the advertiser pays: price x clicks or price x conversions) and ``value`` (bid x the same events:
            what the outcome is worth to the advertiser at its own bid).
        requests: number of requests in the log.
        settings: the replay's settings (bid type, slots, pricing, reserve, position bias, sampled or not).
    """

    shown: pd.DataFrame
    requests: int
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Totals over the log: see :data:`SUMMARY_COLUMNS`.

        ``revenue`` is the platform's income, which is also the advertisers' total cost (the sum of
        ``payment``); ``advertiser_value`` values the same events at the advertisers' bids, so ``value -
        revenue`` is their surplus. ``cost_per_click`` / ``cost_per_conversion`` are revenue per event (NaN
        without events).
        """
        s = self.shown
        clicks, conv, revenue = float(s["clicks"].sum()), float(s["conversions"].sum()), float(s["payment"].sum())
        return {"requests": float(self.requests), "impressions": float(len(s)), "clicks": clicks,
                "conversions": conv, "revenue": revenue, "advertiser_value": float(s["value"].sum()),
                "cost_per_click": revenue / clicks if clicks > 0 else float("nan"),
                "cost_per_conversion": revenue / conv if conv > 0 else float("nan")}


def _column(log: pd.DataFrame, name: str, what: str) -> np.ndarray:
    if name not in log.columns:
        raise KeyError(f"replay_auction: the log has no {what} column {name!r}; its columns are "
                       f"{list(log.columns)}. Pass the right name ({what}=...).")
    return log[name].to_numpy()


def replay_auction(
    log: pd.DataFrame,
    pctr: Any = None,
    pcvr: Any = None,
    *,
    score: Any = None,
    bid_type: str = "cpc",
    slots: int = 1,
    pricing: str = "second",
    reserve: float = 0.0,
    position_bias: Sequence[float] | None = None,
    request: str = "request_id",
    bid: str | None = None,
    true_ctr: str = "p_click",
    true_cvr: str = "p_conv",
    sample: bool = False,
    seed: int = 0,
) -> ReplayResult:
    """Replay one auction per request of ``log`` with the given scores; count outcomes with the true rates.

    **Ranking.** A candidate's score is its eCPM from the given probabilities (divided by 1,000: the expected
    payment of one impression): ``bid * pctr`` for ``bid_type="cpc"``, ``bid * pctr * pcvr`` for ``"ocpa"``
    (:func:`~ctrkit.ranking.ecpm`); or ``score`` itself when given (e.g. a :func:`~ctrkit.ranking.fuse_scores`
    result). A candidate takes part if its bid is at least ``reserve`` and its score is positive. Within a
    request, candidates are sorted by score (ties: the earlier log row first) and the best ``slots`` are shown.

    **Pricing**, per billed event (a click for CPC, a conversion for oCPA):

    * ``"first"``: the bid.
    * ``"second"`` (generalised second price): the smallest bid that would keep the slot, ``bid * s_next /
      s_own``, where ``s_next`` is the score of the next candidate in the ranking (shown or not; 0 when there
      is none). For an eCPM score this is the next eCPM divided by the own pCTR (CPC) or by the own
      pCTR x pCVR (oCPA). The price is then raised to ``reserve`` and capped at the bid, so it never exceeds the
      first price.

    **Outcomes.** A shown ad in slot ``j`` is clicked with probability ``position_bias[j] * log[true_ctr]``
    and converts after a click with probability ``log[true_cvr]``. By default the replay adds up these
    expected values (no sampling noise); with ``sample=True`` it draws the clicks and conversions with
    ``np.random.default_rng(seed)`` instead. The payment is price x clicks (CPC) or price x conversions (oCPA);
    the advertiser value is bid x the same events.

    Args:
        log: one row per candidate ad: a request id, a bid and the true probabilities.
        pctr: click probabilities used for ranking and pricing (one per row), e.g. a model's predictions.
        pcvr: conversion-given-click probabilities; needed for ``bid_type="ocpa"``.
        score: a ranking score per row instead of the eCPM (then ``pctr`` / ``pcvr`` are not used).
        bid_type: ``"cpc"`` or ``"ocpa"``.
        slots: number of ad slots per request (>= 1).
        pricing: ``"first"`` or ``"second"``.
        reserve: minimum price per event (>= 0); candidates bidding less take no part.
        position_bias: click factor per slot, top first (at least ``slots`` values in [0, 1]; default all 1).
        request, bid, true_ctr, true_cvr: column names in ``log``; ``bid`` defaults to ``"bid"`` for CPC and
            ``"cpa_bid"`` for oCPA (the columns of :func:`~ctrkit.datasets.make_ad_log`).
        sample: draw outcomes instead of taking expectations.
        seed: seed of the draws when ``sample`` is true.

    Returns:
        A :class:`ReplayResult`; ``.summary()`` gives the totals.

    Example:
        >>> log = pd.DataFrame({"request_id": [0, 0, 0], "bid": [1.0, 2.0, 3.0],
        ...                     "p_click": [0.10, 0.04, 0.02], "p_conv": [0.1, 0.1, 0.1]})
        >>> r = replay_auction(log, log["p_click"], pricing="second")      # eCPM/1000: 0.10, 0.08, 0.06
        >>> r.shown[["row", "price"]].round(3).values.tolist()              # pays 0.08 / 0.10 per click
        [[0.0, 0.8]]
        >>> round(r.summary()["revenue"], 3)                                 # 0.8 x 0.10 expected clicks
        0.08
    """
    where = "replay_auction"
    if bid_type not in BID_TYPES:
        raise ValueError(f"{where}: bid_type must be one of {BID_TYPES}, got {bid_type!r}.")
    if pricing not in PRICING_RULES:
        raise ValueError(f"{where}: pricing must be one of {PRICING_RULES}, got {pricing!r}.")
    if not (isinstance(slots, (int, np.integer)) and slots >= 1):
        raise ValueError(f"{where}: slots must be an integer >= 1, got {slots!r}.")
    if not reserve >= 0:
        raise ValueError(f"{where}: reserve must be >= 0, got {reserve!r}.")
    pb = np.ones(slots) if position_bias is None else np.asarray(position_bias, dtype=np.float64)
    if pb.ndim != 1 or len(pb) < slots or ((pb < 0) | (pb > 1)).any():
        raise ValueError(f"{where}: position_bias must hold at least slots={slots} factors in [0, 1], top slot "
                         f"first, got {position_bias!r}.")
    if not isinstance(log, pd.DataFrame):
        raise TypeError(f"{where}: log must be a pandas DataFrame of candidate rows, got {type(log).__name__}.")
    n = len(log)
    bid = bid or ("bid" if bid_type == "cpc" else "cpa_bid")
    req = _column(log, request, "request")
    b = _array("bid", _column(log, bid, "bid"), where)
    t_ctr = _probability("the true click probability", _column(log, true_ctr, "true_ctr"), where)
    t_cvr = _probability("the true conversion probability", _column(log, true_cvr, "true_cvr"), where)
    if score is not None:
        s = _array("score", score, where)
    else:
        if pctr is None:
            raise ValueError(f"{where}: pass pctr (and pcvr for oCPA) to rank by eCPM, or score=...")
        s = ecpm(b, pctr, pcvr, bid_type=bid_type) / 1000.0
    if len(s) != n:
        raise ValueError(f"{where}: got {len(s)} scores for a log of {n} rows; pass one value per log row.")

    # rank the eligible candidates of each request: request code ascending, score descending, log order
    codes = pd.factorize(req)[0]
    idx = np.flatnonzero((b >= reserve) & (s > 0))
    order = idx[np.lexsort((idx, -s[idx], codes[idx]))]
    c_sorted = codes[order]
    new_group = np.r_[True, c_sorted[1:] != c_sorted[:-1]]
    starts = np.flatnonzero(new_group)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    s_sorted = s[order]
    same_next = np.r_[c_sorted[1:] == c_sorted[:-1], False]
    s_next = np.where(same_next, np.r_[s_sorted[1:], 0.0], 0.0)

    keep = rank < slots
    rows, slot, s_own, s_nxt = order[keep], rank[keep], s_sorted[keep], s_next[keep]
    bid_own = b[rows]
    if pricing == "first":
        price = bid_own.copy()
    else:
        price = np.minimum(np.maximum(bid_own * s_nxt / s_own, reserve), bid_own)
    p_click = pb[slot] * t_ctr[rows]
    if sample:
        rng = np.random.default_rng(seed)
        clicks = (rng.random(len(rows)) < p_click).astype(np.float64)
        conversions = clicks * (rng.random(len(rows)) < t_cvr[rows])
    else:
        clicks = p_click
        conversions = p_click * t_cvr[rows]
    events = clicks if bid_type == "cpc" else conversions
    shown = pd.DataFrame({"row": rows, "request": req[rows], "slot": slot, "score": s_own, "price": price,
                          "clicks": clicks, "conversions": conversions, "payment": price * events,
                          "value": bid_own * events})
    settings = {"bid_type": bid_type, "slots": int(slots), "pricing": pricing, "reserve": float(reserve),
                "position_bias": [float(v) for v in pb[:slots]], "sample": bool(sample), "seed": int(seed)}
    return ReplayResult(shown=shown, requests=int(codes.max() + 1) if n else 0, settings=settings)


def compare_replays(
    log: pd.DataFrame,
    policies: Mapping[str, Mapping[str, Any]],
    *,
    reference: str | None = "oracle",
    **auction: Any,
) -> pd.DataFrame:
    """Replay several ranking policies on the same log; one row each, with fractions of a reference policy.

    Args:
        log: the candidate rows (see :func:`replay_auction`).
        policies: policy name -> keyword arguments of :func:`replay_auction` for it: ``{"pctr": ...}``,
            ``{"pctr": ..., "pcvr": ...}`` or ``{"score": ...}``. Typically the truth (``{"pctr":
            log["p_click"], "pcvr": log["p_conv"]}``, the upper bound), a model and a baseline.
        reference: the policy the fractions are taken of (``None``: no fraction columns).
        **auction: the settings shared by every policy (``bid_type``, ``slots``, ``pricing``, ``reserve``,
            ``position_bias``, column names, ``sample``, ``seed``).

    Returns:
        A DataFrame indexed by policy name with :data:`SUMMARY_COLUMNS` and, for ``clicks``, ``conversions``,
        ``revenue`` and ``advertiser_value``, a ``<column>_vs_<reference>`` fraction.

    Example:
        >>> log = pd.DataFrame({"request_id": [0, 0, 1, 1], "bid": [1.0, 2.0, 1.0, 1.0],
        ...                     "p_click": [0.10, 0.02, 0.03, 0.06], "p_conv": [0.1] * 4})
        >>> t = compare_replays(log, {"oracle": {"pctr": log["p_click"]}, "bid only": {"score": log["bid"]}},
        ...                     pricing="first")
        >>> round(float(t.loc["bid only", "revenue_vs_oracle"]), 3)         # (2 x 0.02 + 0.03) / (0.10 + 0.06)
        0.438
    """
    if not policies:
        raise ValueError("compare_replays: policies is empty; pass e.g. {'oracle': {'pctr': ...}, 'model': ...}.")
    if reference is not None and reference not in policies:
        raise ValueError(f"compare_replays: the reference policy {reference!r} is not among the policies "
                         f"{list(policies)}; add it or pass reference=None.")
    clash = sorted(set(auction) & {"pctr", "pcvr", "score"})
    if clash:
        raise ValueError(f"compare_replays: {clash} belong in each policy's mapping, not in the shared settings.")
    table = pd.DataFrame({name: replay_auction(log, **dict(kw), **auction).summary()
                          for name, kw in policies.items()}).T.loc[:, list(SUMMARY_COLUMNS)]
    if reference is not None:
        for col in ("clicks", "conversions", "revenue", "advertiser_value"):
            ref = table.loc[reference, col]
            table[f"{col}_vs_{reference}"] = table[col] / ref if ref > 0 else float("nan")
    table.index.name = "policy"
    return table
