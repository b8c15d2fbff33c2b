"""ctrkit.ranking: eCPM scoring, fusion, the rate baseline, and the auction replay on hand-checkable logs."""
from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import ctrkit.ranking.replay
import ctrkit.ranking.scoring
from ctrkit.datasets import make_ad_log
from ctrkit.ranking import compare_replays, ecpm, fuse_scores, replay_auction, smoothed_rate


def _log(bids, p_click, p_conv=None, requests=None, cpa=None):
    n = len(bids)
    df = pd.DataFrame({"request_id": [0] * n if requests is None else requests, "bid": bids, "p_click": p_click,
                       "p_conv": [0.1] * n if p_conv is None else p_conv})
    if cpa is not None:
        df["cpa_bid"] = cpa
    return df


@pytest.fixture(scope="module")
def ad_log() -> pd.DataFrame:
    return make_ad_log(n_requests=3000, n_users=300, n_ads=200, seed=3).impressions


def test_docstring_examples_run():
    for mod in (ctrkit.ranking.scoring, ctrkit.ranking.replay):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


def test_import_needs_no_torch():
    code = "import sys, ctrkit.ranking, ctrkit.datasets.adlog; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------------------------------------- scoring
def test_ecpm_cpc_and_ocpa():
    np.testing.assert_allclose(ecpm([2.0, 0.5], [0.01, 0.2]), [20.0, 100.0])
    np.testing.assert_allclose(ecpm([10.0, 20.0], [0.1, 0.05], [0.2, 0.5], bid_type="ocpa"), [200.0, 500.0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(bid=[1.0], pctr=[0.1], bid_type="ocpa"), "pass pcvr"),
    (dict(bid=[1.0], pctr=[0.1], pcvr=[0.1]), "pays per click"),
    (dict(bid=[1.0], pctr=[2.5]), "not logits"),
    (dict(bid=[1.0, 2.0], pctr=[0.1]), "lengths"),
    (dict(bid=[-1.0], pctr=[0.1]), ">= 0"),
    (dict(bid=[1.0], pctr=[0.1], bid_type="cpm"), "bid_type"),
])
def test_ecpm_refuses_what_it_cannot_price(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ecpm(**kwargs)


def test_fuse_scores_sum_and_product():
    s = {"ecpm": np.array([3.0, 1.0]), "pctr": np.array([0.1, 0.4]), "unused": np.array([9.0, 9.0])}
    np.testing.assert_allclose(fuse_scores(s, {"ecpm": 1.0, "pctr": 10.0}), [4.0, 5.0])
    np.testing.assert_allclose(fuse_scores(s, {"ecpm": 1.0, "pctr": 2.0}, how="product"), [0.03, 0.16])
    with pytest.raises(ValueError, match=r"\['cvr'\]"):
        fuse_scores(s, {"cvr": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        fuse_scores({"a": [-1.0]}, {"a": 1.0}, how="product")


def test_smoothed_rate_shrinks_rare_keys_to_the_global_rate():
    keys = ["a"] * 100 + ["b"] * 2
    y = [1] * 50 + [0] * 50 + [1, 1]
    r = smoothed_rate(keys, y, ["a", "b", "zzz"], prior_strength=10.0)
    glob = 52 / 102
    assert r[0] == pytest.approx((50 + 10 * glob) / 110)
    assert r[1] == pytest.approx((2 + 10 * glob) / 12) and glob < r[1] < 1.0
    assert r[2] == pytest.approx(glob)


# ---------------------------------------------------------------------------------------------------- replay
def test_first_and_second_price_on_one_request():
    # eCPM / 1000: 0.10, 0.08, 0.06 -> ad 0 wins the top slot, ad 1 the second
    log = _log([1.0, 2.0, 3.0], [0.10, 0.04, 0.02])
    first = replay_auction(log, log["p_click"], slots=2, pricing="first")
    assert first.shown["row"].tolist() == [0, 1] and first.shown["slot"].tolist() == [0, 1]
    assert first.shown["price"].tolist() == [1.0, 2.0]
    assert first.summary()["revenue"] == pytest.approx(1.0 * 0.10 + 2.0 * 0.04)
    second = replay_auction(log, log["p_click"], slots=2, pricing="second")
    np.testing.assert_allclose(second.shown["price"], [0.08 / 0.10, 0.06 / 0.04])   # next eCPM / own pCTR
    assert second.summary()["revenue"] == pytest.approx(0.8 * 0.10 + 1.5 * 0.04)
    assert second.summary()["clicks"] == pytest.approx(0.14)
    assert second.summary()["conversions"] == pytest.approx(0.014)
    assert second.summary()["advertiser_value"] == pytest.approx(first.summary()["revenue"])


def test_second_price_of_the_last_candidate_is_the_reserve_and_never_above_the_bid():
    log = _log([1.0, 2.0], [0.10, 0.04])
    r = replay_auction(log, log["p_click"], slots=2, pricing="second", reserve=0.3)
    np.testing.assert_allclose(r.shown["price"], [0.8, 0.3])          # nobody below the second: reserve
    # a reserve above a bid keeps that candidate out of the auction entirely
    r = replay_auction(log, log["p_click"], slots=2, pricing="second", reserve=1.5)
    assert r.shown["row"].tolist() == [1] and r.shown["price"].tolist() == [1.5]
    # a ranking score that disagrees with eCPM: the GSP price is capped at the bid
    r = replay_auction(log, score=[1.0, 5.0], slots=1, pricing="second")
    assert r.shown["row"].tolist() == [1] and r.shown["price"].tolist() == [pytest.approx(2.0 * 1.0 / 5.0)]


def test_second_price_never_charges_more_than_first_price(ad_log):
    rng = np.random.default_rng(0)
    noisy = np.clip(ad_log["p_click"] * rng.lognormal(0.0, 0.5, len(ad_log)), 0.0, 1.0)
    for slots in (1, 3):
        first = replay_auction(ad_log, noisy, slots=slots, pricing="first").shown
        second = replay_auction(ad_log, noisy, slots=slots, pricing="second").shown
        assert first["row"].tolist() == second["row"].tolist()        # the pricing rule does not change ranking
        assert (second["price"] <= first["price"] + 1e-12).all()
        assert (second["price"] < first["price"] - 1e-9).mean() > 0.9  # and usually charges strictly less
        assert second["payment"].sum() < first["payment"].sum()


def test_the_truth_earns_the_most_at_first_price_with_one_slot(ad_log):
    """With one slot and first price, a request earns bid x true pCTR of the winner: the truth maximises it."""
    oracle = replay_auction(ad_log, ad_log["p_click"], pricing="first").summary()["revenue"]
    rng = np.random.default_rng(1)
    for sigma in (0.1, 0.5, 2.0):
        noisy = np.clip(ad_log["p_click"] * rng.lognormal(0.0, sigma, len(ad_log)), 0.0, 1.0)
        assert replay_auction(ad_log, noisy, pricing="first").summary()["revenue"] < oracle
    for score in (rng.random(len(ad_log)), ad_log["bid"].to_numpy(), ad_log["p_click"].to_numpy()):
        assert replay_auction(ad_log, score=score, pricing="first").summary()["revenue"] < oracle
    # per request, not only in total
    per_req = replay_auction(ad_log, ad_log["p_click"], pricing="first").shown["payment"].to_numpy()
    other = replay_auction(ad_log, score=rng.random(len(ad_log)), pricing="first").shown["payment"].to_numpy()
    assert (per_req >= other - 1e-15).all()


def test_position_bias_scales_the_clicks_of_each_slot():
    log = _log([1.0, 1.0, 1.0], [0.3, 0.2, 0.1])
    r = replay_auction(log, log["p_click"], slots=3, position_bias=[1.0, 0.5, 0.25], pricing="first")
    np.testing.assert_allclose(r.shown["clicks"], [0.3, 0.1, 0.025])
    assert r.summary()["clicks"] == pytest.approx(0.425)
    assert r.summary()["revenue"] == pytest.approx(0.425)
    unbiased = replay_auction(log, log["p_click"], slots=3, pricing="first").summary()["clicks"]
    assert unbiased == pytest.approx(0.6)
    with pytest.raises(ValueError, match="at least slots=3"):
        replay_auction(log, log["p_click"], slots=3, position_bias=[1.0, 0.5])


def test_ocpa_ranks_by_pctr_times_pcvr_and_bills_conversions():
    # eCPM / 1000 = cpa_bid * pCTR * pCVR: 10 * 0.1 * 0.1 = 0.1 and 20 * 0.05 * 0.2 = 0.2 -> ad 1 wins
    log = _log([1.0, 1.0], [0.1, 0.05], p_conv=[0.1, 0.2], cpa=[10.0, 20.0])
    r = replay_auction(log, log["p_click"], log["p_conv"], bid_type="ocpa", pricing="second")
    assert r.shown["row"].tolist() == [1]
    assert r.shown["price"].iloc[0] == pytest.approx(0.1 / (0.05 * 0.2))     # next eCPM / (pCTR x pCVR)
    assert r.summary()["conversions"] == pytest.approx(0.01)
    assert r.summary()["revenue"] == pytest.approx(10.0 * 0.01)               # billed per conversion
    with pytest.raises(ValueError, match="pass pcvr"):
        replay_auction(log, log["p_click"], bid_type="ocpa")


def test_sampled_outcomes_are_reproducible_and_average_to_the_expectation(ad_log):
    big = pd.concat([ad_log.assign(request_id=ad_log["request_id"] + k * 10**6) for k in range(10)],
                    ignore_index=True)
    kw = dict(slots=2, position_bias=[1.0, 0.6])
    exp = replay_auction(big, big["p_click"], **kw).summary()
    a = replay_auction(big, big["p_click"], sample=True, seed=5, **kw)
    b = replay_auction(big, big["p_click"], sample=True, seed=5, **kw)
    pd.testing.assert_frame_equal(a.shown, b.shown)
    s = a.summary()
    assert set(np.unique(a.shown["clicks"])) == {0.0, 1.0}
    assert (a.shown["conversions"] <= a.shown["clicks"]).all()
    sd = np.sqrt(exp["clicks"])                                                 # Poisson-binomial sd <= sqrt(mean)
    assert abs(s["clicks"] - exp["clicks"]) < 4 * sd
    assert abs(s["conversions"] - exp["conversions"]) < 4 * np.sqrt(exp["conversions"])


def test_compare_replays_reports_fractions_of_the_reference(ad_log):
    truth = {"pctr": ad_log["p_click"]}
    t = compare_replays(ad_log, {"oracle": truth, "bid only": {"score": ad_log["bid"]}},
                        slots=2, pricing="first")
    assert list(t.index) == ["oracle", "bid only"]
    assert (t.loc["oracle", [c for c in t.columns if c.endswith("_vs_oracle")]] == 1.0).all()
    assert 0.0 < t.loc["bid only", "revenue_vs_oracle"] < 1.0
    assert t.loc["bid only", "clicks"] == pytest.approx(
        replay_auction(ad_log, score=ad_log["bid"], slots=2, pricing="first").summary()["clicks"])
    with pytest.raises(ValueError, match="reference policy 'truth'"):
        compare_replays(ad_log, {"oracle": truth}, reference="truth")


def test_replay_errors_name_the_problem():
    log = _log([1.0, 2.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="got 3 scores for a log of 2 rows"):
        replay_auction(log, score=[1.0, 2.0, 3.0])
    with pytest.raises(KeyError, match="no request column 'req'"):
        replay_auction(log, log["p_click"], request="req")
    with pytest.raises(ValueError, match="pricing must be one of"):
        replay_auction(log, log["p_click"], pricing="vickrey")
    with pytest.raises(ValueError, match="NaN"):
        replay_auction(log, [0.1, np.nan])


@pytest.mark.parametrize("pricing", ["first", "second"])
def test_the_truth_maximises_advertiser_value_in_every_slot_layout(ad_log, pricing):
    """Bid x true events is maximised by sorting on the true eCPM when slot factors decrease (rearrangement)."""
    rng = np.random.default_rng(2)
    kw = dict(slots=3, position_bias=[1.0, 0.7, 0.5], pricing=pricing)
    best = replay_auction(ad_log, ad_log["p_click"], **kw).summary()["advertiser_value"]
    for score in (rng.random(len(ad_log)), ad_log["bid"].to_numpy(),
                  ad_log["bid"] * np.clip(ad_log["p_click"] * rng.lognormal(0, 0.3, len(ad_log)), 0, 1)):
        assert replay_auction(ad_log, score=score, **kw).summary()["advertiser_value"] < best
