"""The synthetic ad log: reproducible, its labels follow its true probabilities, conversions only after clicks."""
from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

import ctrkit.datasets.adlog
from ctrkit.datasets import AD_LOG_DENSE, AD_LOG_SPARSE, make_ad_log


@pytest.fixture(scope="module")
def big():
    return make_ad_log(n_requests=40_000, n_users=2_000, n_ads=300, seed=11)


def test_docstring_examples_run():
    res = doctest.testmod(ctrkit.datasets.adlog)
    assert res.attempted > 0 and res.failed == 0


def test_same_seed_same_log_other_seed_other_log():
    a = make_ad_log(n_requests=500, n_users=50, n_ads=40, seed=4)
    b = make_ad_log(n_requests=500, n_users=50, n_ads=40, seed=4)
    c = make_ad_log(n_requests=500, n_users=50, n_ads=40, seed=5)
    pd.testing.assert_frame_equal(a.impressions, b.impressions)
    assert a.params == b.params and a.params["seed"] == 4
    assert not np.allclose(a.impressions["p_click"], c.impressions["p_click"])
    assert make_ad_log(**a.params).impressions.equals(a.impressions)        # params regenerate the log


def test_shape_columns_and_candidates(big):
    df = big.impressions
    assert len(df) == 40_000 * 10
    assert big.feature_columns == [*AD_LOG_SPARSE, *AD_LOG_DENSE]
    assert set(big.feature_columns) | {"request_id", "bid", "cpa_bid", "p_click", "p_conv", "click",
                                       "conversion"} == set(df.columns)
    per_req = df.groupby("request_id")
    assert (per_req.size() == 10).all() and (per_req["ad_id"].nunique() == 10).all()   # distinct candidates
    assert (per_req["user_id"].nunique() == 1).all() and (per_req["hour"].nunique() == 1).all()
    # an ad always has the same advertiser, category and bids
    assert (df.groupby("ad_id")[["advertiser_id", "category", "bid", "cpa_bid"]].nunique() == 1).all().all()
    assert (df["bid"] > 0).all() and (df["cpa_bid"] > df["bid"]).mean() > 0.95


def test_conversions_only_after_clicks(big):
    df = big.impressions
    assert ((df["conversion"] == 1) <= (df["click"] == 1)).all()
    assert df["conversion"].sum() > 0


def test_mean_probabilities_hit_the_targets():
    log = make_ad_log(n_requests=3000, n_users=300, n_ads=100, ctr=0.02, cvr=0.3, seed=2)
    assert log.impressions["p_click"].mean() == pytest.approx(0.02, abs=1e-6)
    assert log.impressions["p_conv"].mean() == pytest.approx(0.3, abs=1e-6)


def _calibration_gaps(p: np.ndarray, y: np.ndarray, bins: int = 10) -> np.ndarray:
    """|observed rate - mean probability| / binomial standard error, per quantile bin of p."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    gaps = []
    for k in range(bins):
        m = b == k
        pm = p[m].mean()
        se = np.sqrt(np.sum(p[m] * (1 - p[m]))) / m.sum()
        gaps.append(abs(y[m].mean() - pm) / se)
    return np.array(gaps)


def test_labels_follow_the_true_probabilities(big):
    df = big.impressions
    p, y = df["p_click"].to_numpy(), df["click"].to_numpy()
    assert np.all(_calibration_gaps(p, y) < 4.5)
    clicked = df[df["click"] == 1]
    pc, yc = clicked["p_conv"].to_numpy(), clicked["conversion"].to_numpy()
    assert np.all(_calibration_gaps(pc, yc, bins=5) < 4.5)
    # the check can fail: labels drawn from other probabilities are caught
    shifted = np.clip(p * 1.15, 0, 1)
    assert np.any(_calibration_gaps(shifted, y) > 4.5)


def test_the_truth_is_informative_and_beats_a_blurred_truth(big):
    df = big.impressions
    y, p = df["click"].to_numpy(), df["p_click"].to_numpy()
    auc = roc_auc_score(y, p)
    assert 0.7 < auc < 0.95                                   # learnable, not trivial
    rng = np.random.default_rng(0)
    blurred = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 0.5, len(p)))))
    assert log_loss(y, p) < log_loss(y, blurred) and roc_auc_score(y, blurred) < auc


def test_split_keeps_requests_whole():
    log = make_ad_log(n_requests=1000, n_users=100, n_ads=50, seed=0)
    parts = log.split((0.7, 0.2, 0.1), seed=3)
    ids = [set(p["request_id"]) for p in parts]
    assert [len(i) for i in ids] == [700, 200, 100]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(len(p) for p in parts) == len(log.impressions)
    assert parts[0].equals(log.split((0.7, 0.2, 0.1), seed=3)[0])
    with pytest.raises(ValueError, match="sum to 1"):
        log.split((0.5, 0.2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_requests=0), "n_requests must be an integer >= 1"),
    (dict(n_ads=5, n_candidates=10), "at least n_candidates"),
    (dict(ctr=1.5), "ctr must be in"),
])
def test_bad_arguments_say_what_is_expected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_ad_log(**kwargs)
