"""ctrkit.compare.stats against scipy's tests, a Monte Carlo simulation and published sample sizes."""
import numpy as np
import pytest
from scipy import stats

from ctrkit.compare.stats import (
    bootstrap_interval,
    paired_interval,
    paired_t_power,
    seeds_for_power,
    t_interval,
    welch_interval,
)


@pytest.mark.parametrize("seed", range(3))
def test_t_intervals_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.07, 0.02, 31)
    b = a + rng.normal(-0.004, 0.01, 31)
    c = rng.normal(0.05, 0.04, 17)
    for ours, ref, mean in (
        (t_interval(a), stats.ttest_1samp(a, 0).confidence_interval(0.95), a.mean()),
        (paired_interval(b, a), stats.ttest_rel(b, a).confidence_interval(0.95), (b - a).mean()),
        (welch_interval(a, c), stats.ttest_ind(a, c, equal_var=False).confidence_interval(0.95), a.mean() - c.mean()),
        (t_interval(a, 0.9), stats.ttest_1samp(a, 0).confidence_interval(0.9), a.mean()),
    ):
        assert ours.mean == pytest.approx(mean, abs=1e-12)
        assert (ours.lo, ours.hi) == pytest.approx((ref.low, ref.high), rel=1e-9, abs=1e-12)


def test_bootstrap_interval_close_to_scipy_percentile_bootstrap():
    rng = np.random.default_rng(7)
    x = rng.exponential(0.02, 40) - 0.01          # skewed, so the percentile interval is not symmetric
    ours = bootstrap_interval(x, n_resamples=20000, seed=3)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(4)).confidence_interval
    width = ref.high - ref.low
    assert ours.mean == pytest.approx(x.mean())
    assert ours.lo == pytest.approx(ref.low, abs=0.05 * width)
    assert ours.hi == pytest.approx(ref.high, abs=0.05 * width)
    assert bootstrap_interval(x, seed=5) == bootstrap_interval(x, seed=5)   # seeded: reproducible


def test_power_matches_simulation():
    rng = np.random.default_rng(0)
    n, sd, delta, trials = 20, 0.03, 0.015, 8000
    d = rng.normal(delta, sd, size=(trials, n))
    rejected = float((stats.ttest_1samp(d, 0, axis=1).pvalue < 0.05).mean())
    assert paired_t_power(n, sd, delta) == pytest.approx(rejected, abs=0.02)   # MC std ~0.005
    assert paired_t_power(n, sd, 0.0) == pytest.approx(0.05, abs=1e-9)          # no gap: the test's size


@pytest.mark.parametrize("effect, n_ref", [(0.8, 15), (0.5, 34), (0.25, 128)])
def test_seeds_for_power_published_sizes(effect, n_ref):
    # two-sided paired t-test, alpha 0.05, power 0.8: the sample sizes G*Power gives for these effect sizes
    assert seeds_for_power(sd=1.0, delta=effect) == n_ref
    # scale-free, sign-free, and the smallest n that reaches the power
    n = seeds_for_power(sd=0.02, delta=-0.02 * effect)
    assert n == n_ref
    assert paired_t_power(n, 0.02, 0.02 * effect) >= 0.8 > paired_t_power(n - 1, 0.02, 0.02 * effect)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="pair them by seed"):
        paired_interval([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        t_interval([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_interval([1.0])
    with pytest.raises(ValueError, match="non-zero"):
        seeds_for_power(sd=1.0, delta=0.0)
