"""gAUC, normalized entropy, calibration ratio and ECE: against brute-force references, and in compile/evaluate."""
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ctrkit.metrics import (
    calibration_ratio,
    expected_calibration_error,
    gauc,
    gauc_details,
    get_metric,
    metric_direction,
    normalized_entropy,
)


def brute_gauc(y, p, g, w=None):
    """Per-group scikit-learn AUC, weighted by the group's impressions; groups with one class skipped."""
    w = np.ones_like(y) if w is None else w
    g = np.array([str(v) for v in g])   # a missing id ("nan") is a group of its own, as in gauc
    num = den = skipped = 0.0
    for key in pd.unique(g):
        m = g == key
        if len(np.unique(y[m])) < 2:
            skipped += w[m].sum()
            continue
        num += w[m].sum() * skm.roc_auc_score(y[m], p[m], sample_weight=w[m])
        den += w[m].sum()
    return num / den, skipped / w.sum()


@pytest.mark.parametrize("seed", range(4))
def test_gauc_equals_per_group_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    g = rng.integers(0, 150, n)
    y = (rng.random(n) < 0.1 + 0.6 * (g % 3 == 0)).astype(float)
    p = np.round(rng.random(n), 2)   # ties inside groups
    w = rng.random(n) + 0.1
    for weights in (None, w):
        ref, ref_skip = brute_gauc(y, p, g, weights)
        res = gauc_details(y, p, g, weights)
        assert res.value == pytest.approx(ref, abs=1e-9)
        assert res.skipped_share == pytest.approx(ref_skip, abs=1e-12)
        assert 0 < res.skipped_share < 1 and res.groups == len(np.unique(g))
    # string group ids, in another order: the same value
    assert gauc(y, p, np.array([f"u{k}" for k in g])) == pytest.approx(brute_gauc(y, p, g)[0], abs=1e-9)


def test_gauc_edge_cases():
    assert np.isnan(gauc([1, 1, 0, 0], [.1, .2, .3, .4], [1, 1, 2, 2]))      # every group one class
    assert gauc_details([1, 1, 0, 0], [.1, .2, .3, .4], [1, 1, 2, 2]).skipped_share == 1.0
    with pytest.raises(ValueError, match="3 group ids for 4 predictions"):
        gauc([1, 0, 1, 0], [.1, .2, .3, .4], [1, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        gauc([1, 0], [.1, .2], [1.0, np.nan])


@pytest.mark.parametrize("seed", range(3))
def test_ne_calibration_ratio_ece_equal_references(seed):
    rng = np.random.default_rng(seed)
    n = 5000
    y = (rng.random(n) < 0.2).astype(float)
    p = np.clip(rng.beta(2, 7, n), 1e-4, 1 - 1e-4)
    w = rng.random(n) + 0.5
    for weights in (None, w):
        ww = np.ones(n) if weights is None else weights
        b = np.average(y, weights=ww)
        ll = -np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=ww)
        assert normalized_entropy(y, p, weights) == pytest.approx(ll / -(b * np.log(b) + (1 - b) * np.log(1 - b)),
                                                                  abs=1e-9)
        assert calibration_ratio(y, p, weights) == pytest.approx((ww * p).sum() / (ww * y).sum(), rel=1e-12)
        ece = 0.0
        for k in range(10):  # naive loop over the 10 bins
            m = (p >= k / 10) & ((p < (k + 1) / 10) if k < 9 else (p <= 1))
            if m.any():
                ece += ww[m].sum() / ww.sum() * abs(np.average(p[m], weights=ww[m]) - np.average(y[m], weights=ww[m]))
        assert expected_calibration_error(y, p, weights) == pytest.approx(ece, abs=1e-12)
    # the base rate itself: NE 1, ratio 1
    assert normalized_entropy(y, np.full(n, y.mean())) == pytest.approx(1.0, abs=1e-6)
    assert calibration_ratio(y, np.full(n, y.mean())) == pytest.approx(1.0)
    assert np.isnan(normalized_entropy([0, 0], [.1, .2])) and np.isnan(calibration_ratio([0, 0], [.1, .2]))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(y, p, n_bins=0)


def test_registry_names_and_directions():
    assert get_metric("gauc").grouped and not get_metric("ne").grouped
    assert metric_direction("val_ctr_gauc") == "max" and metric_direction("val_gauc") == "max"
    assert metric_direction("val_ne") == "min" and metric_direction("val_ctr_ece") == "min"
    assert metric_direction("val_calibration_ratio") is None     # neither up nor down: 1 is best
    from ctrkit import EarlyStopping
    with pytest.raises(ValueError, match="cannot infer"):
        EarlyStopping("val_calibration_ratio")


@pytest.fixture(scope="module")
def census():
    from ctrkit import FeatureEncoder
    from ctrkit.datasets import census_feature_types, load_census_income
    X, y = load_census_income(group=1)
    X, y = X.iloc[:6000].reset_index(drop=True), y.iloc[:6000].reset_index(drop=True)
    sparse, dense = census_feature_types()
    sparse = [c for c in sparse if c != "country_of_birth_self"]   # the group column is not a feature
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4, ignore=["country_of_birth_self"]).fit(X)
    return enc, X, y


def test_compile_group_by_evaluate_and_validation_on_census(census):
    from ctrkit import MMoE
    enc, X, y = census
    tr, te = slice(0, 5000), slice(5000, 6000)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(16,), task_names=["income", "marital"],
             seed=3)
    with pytest.raises(ValueError, match="group_by='user_id'"):
        m.compile("adam", metrics=["gauc"])
    m.compile("adam", lr=3e-3, metrics=["auc", "gauc", "ne", "calibration_ratio", "ece"],
              group_by="country_of_birth_self")
    h = m.fit(X.iloc[tr], y.iloc[tr], batch_size=256, epochs=2, verbose=0, validation_data=(X.iloc[te], y.iloc[te]))
    assert "income_gauc" not in h.history and "income_ne" in h.history   # training logs: no groups
    res = m.evaluate(X.iloc[te], y.iloc[te])
    p = m.predict(X.iloc[te])
    g = X.iloc[te]["country_of_birth_self"].to_numpy()
    for i, t in enumerate(["income", "marital"]):
        yt = y.iloc[te][t].to_numpy()
        ref, skip = brute_gauc(yt, p[:, i].astype(np.float64), g)
        assert res[f"{t}_gauc"] == pytest.approx(ref, abs=1e-6)   # float32 predictions: ties may differ at 1e-7
        assert res[f"{t}_gauc_skipped"] == pytest.approx(skip, abs=1e-12)
        assert res[f"{t}_ne"] == pytest.approx(normalized_entropy(yt, p[:, i]), rel=1e-6)
        assert res[f"{t}_calibration_ratio"] == pytest.approx(calibration_ratio(yt, p[:, i]), rel=1e-6)
        assert h.history[f"val_{t}_gauc"][-1] == pytest.approx(res[f"{t}_gauc"], abs=1e-9)
    assert 0 < res["income_gauc_skipped"] < 1 and res["marital_gauc"] > 0.7
    # a dict input holds the group column under its key; a frame without it is refused, naming it
    with pytest.raises(Exception, match="country_of_birth_self"):
        m.evaluate(X.iloc[te].drop(columns="country_of_birth_self"), y.iloc[te])


def test_gauc_from_a_store_sparse_feature(census, tmp_path):
    from ctrkit import FeatureEncoder, MMoE
    from ctrkit.data import open_store, write_store
    from ctrkit.datasets import census_feature_types
    _, X, y = census
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X)
    path = str(tmp_path / "test.h5")
    write_store(path, X.join(y), ["income", "marital"], enc.feature_columns)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["income", "marital"],
             seed=1)
    m.compile("adam", metrics=["gauc"], group_by="country_of_birth_self")
    m.fit(X, y, epochs=1, verbose=0)
    a, b = m.evaluate(open_store(path)), m.evaluate(X, y)
    assert a["marital_gauc"] == pytest.approx(b["marital_gauc"], abs=1e-6)
    m.compile("adam", metrics=["gauc"], group_by="not_there")
    with pytest.raises(Exception, match="no sparse feature 'not_there'"):
        m.evaluate(open_store(path))


def test_compare_reports_extra_metrics(census):
    from ctrkit.compare.tabular import CompareConfig, PreparedData, _split_encode, run_comparison
    from ctrkit.datasets import census_feature_types
    _, X, y = census
    sparse, dense = census_feature_types()
    enc, (tr, va, te) = _split_encode(X.iloc[:3000], y.iloc[:3000], sparse, dense, {}, 4)
    data = PreparedData(enc.feature_columns, tr, va, te, ["income", "marital"], ["binary", "binary"], "census 3k")
    cfg = CompareConfig(seeds=1, max_epochs=1, models=("MMoE",), baselines=(), verbose=False,
                        extra_metrics=("gauc", "ne"), group_by="country_of_birth_self")
    res = run_comparison(data, cfg, progress=False)
    row = res.runs.iloc[0]
    assert 0.5 < row["marital_gauc"] <= 1 and 0 < row["income_ne"] < 1.5
    assert "marital gauc" in res.table() and "income ne" in res.table()
