"""Negative downsampling with exact correction, and post-hoc calibration: the maths, the saved model, the
exported graphs, and real training on a synthetic ad log whose click probabilities are known."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from adlog import make_ad_log

from ctrkit import DNN, LR, FeatureEncoder, MMoE, load_model
from ctrkit.exceptions import ModelFormatError
from ctrkit.metrics import calibration_ratio, expected_calibration_error, log_loss
from ctrkit.preprocessing import downsample_negatives, negative_sampling_mask

FEATS = ["user_id", "ad_id", "slot", "price"]


@pytest.fixture(scope="module")
def logs():
    tr, va, te = make_ad_log(120_000, seed=0), make_ad_log(40_000, seed=2), make_ad_log(150_000, seed=1)
    enc = FeatureEncoder(sparse=["user_id", "ad_id", "slot"], dense=["price"], embedding_dim=4).fit(tr[FEATS])
    return enc, tr, va, te


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------------------------- downsampling
def test_downsample_negatives_keeps_positives_and_a_seeded_share_of_negatives(logs):
    _, tr, _, _ = logs
    out = downsample_negatives(tr, "click", 0.1, seed=3)
    neg = int((tr.click == 0).sum())
    kept_neg = int((out.click == 0).sum())
    assert (out.click == 1).sum() == (tr.click == 1).sum()                 # every positive
    assert abs(kept_neg - 0.1 * neg) < 4 * math.sqrt(neg * 0.1 * 0.9)       # binomial: within 4 sigma
    assert out.index.is_monotonic_increasing and out.index.isin(tr.index).all()
    assert out.index.equals(downsample_negatives(tr, "click", 0.1, seed=3).index)       # seeded
    assert not out.index.equals(downsample_negatives(tr, "click", 0.1, seed=4).index)
    # labels given apart, a dict of arrays, the mask: the same rows
    assert out.index.equals(downsample_negatives(tr[FEATS], tr["click"].to_numpy(), 0.1, seed=3).index)
    d = downsample_negatives({c: tr[c].to_numpy() for c in tr}, "click", 0.1, seed=3)
    assert np.array_equal(d["user_id"], out["user_id"].to_numpy())
    assert negative_sampling_mask(tr.click, 0.1, seed=3).sum() == len(out)
    assert len(downsample_negatives(tr, "click", 1.0)) == len(tr)
    # missing labels are not negatives: kept
    y = np.array([np.nan] * 50 + [0.0] * 50)
    assert np.isnan(downsample_negatives(pd.DataFrame({"y": y}), "y", 0.01).y.to_numpy()[:50]).all()
    for bad in (0, 1.5, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="rate must be a number in"):
            downsample_negatives(tr, "click", bad)
    with pytest.raises(ValueError, match="no label column 'clk'"):
        downsample_negatives(tr, "clk", 0.1)
    with pytest.raises(ValueError, match="labels must be 0 / 1"):
        downsample_negatives(tr.assign(click=tr.click * 2), "click", 0.1)


def test_downsample_store_keeps_the_rows_a_frame_keeps(logs, tmp_path):
    from ctrkit.data import downsample_store, open_store, write_store
    enc, tr, _, _ = logs
    part = tr.iloc[:30_000]
    full = write_store(str(tmp_path / "full.h5"), part[FEATS + ["click"]], ["click"], enc.feature_columns)
    out = open_store(downsample_store(full, str(tmp_path / "s.h5"), "click", 0.2, seed=5, chunk_rows=7_000))
    ref = downsample_negatives(part, "click", 0.2, seed=5)
    assert len(out) == len(ref)
    x, y, _ = out.read()
    assert np.array_equal(y[:, 0].numpy(), ref.click.to_numpy().astype(np.float32))
    ids = enc.transform(ref[FEATS])
    assert np.array_equal(x.sparse[:, 0].numpy(), np.asarray(ids["user_id"]).reshape(-1))
    with pytest.raises(ValueError, match="no task 'buy'"):
        downsample_store(full, str(tmp_path / "t.h5"), "buy", 0.2)


# ---------------------------------------------------------------------------------------------- correction
def test_correction_is_exact_everywhere_and_saved(logs, tmp_path):
    enc, tr, _, te = logs
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_name="click", seed=1)
    m.compile("adam", lr=1e-2, metrics=["logloss", "calibration_ratio"])
    m.fit(tr.iloc[:20_000], tr.iloc[:20_000][["click"]], epochs=1, verbose=0)
    x = te.iloc[:2000]
    q = m.predict(x)[:, 0].astype(np.float64)
    z = m.predict_logits(x)[:, 0].double().numpy()
    m.set_negative_sampling({"click": 0.1})
    p = m.predict(x)[:, 0]
    assert np.allclose(p, q / (q + (1 - q) / 0.1), atol=1e-6, rtol=1e-5)         # p = q / (q + (1 - q) / w)
    assert np.allclose(p, sigmoid(z + math.log(0.1)), atol=1e-6)
    assert (p < q).all()
    recs = x[FEATS].head(5).to_dict("records")
    assert np.allclose(m.predict_records(recs)[:, 0], p[:5], atol=1e-6)
    ev = m.evaluate(x, x[["click"]])                                               # metrics of what predict returns
    assert ev["logloss"] == pytest.approx(log_loss(x.click, p), rel=1e-5)
    assert ev["calibration_ratio"] == pytest.approx(calibration_ratio(x.click, p), rel=1e-5)
    assert m.predict_logits(x)[:, 0].double().numpy() == pytest.approx(z)      # raw logits unchanged
    m.save(str(tmp_path / "m"))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["outputs"] == {"negative_sampling": {"click": 0.1}, "calibration": {}}
    m2 = load_model(str(tmp_path / "m"))
    assert np.array_equal(m2.predict(x), m.predict(x))
    m.set_negative_sampling(None)
    assert np.allclose(m.predict(x)[:, 0], q, atol=1e-7)
    # a corrupted record is refused on load; bad arguments say what is expected
    cfg["outputs"]["negative_sampling"]["click"] = 7
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="outputs"):
        load_model(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="unknown task 'ctr'"):
        m.set_negative_sampling({"ctr": 0.1})
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        m.set_negative_sampling({"click": 0.0})


def test_training_on_downsampled_negatives_is_corrected_to_the_full_log(logs):
    """The behaviour the correction exists for: trained on 10% of the negatives, the corrected model predicts as
    many clicks as the unsampled test log has; the raw one about 1 / w times too many for a rare click."""
    enc, tr, va, te = logs
    sampled = downsample_negatives(tr, "click", 0.1, seed=0)
    m = LR(enc.feature_columns, task_name="click", seed=0)
    m.compile("adam", lr=1e-2, metrics=["logloss", "calibration_ratio"])
    m.set_negative_sampling({"click": 0.1})        # before fit: the validation metrics are on the full log
    h = m.fit(sampled[FEATS], sampled[["click"]], batch_size=512, epochs=6, verbose=0,
              validation_data=(va[FEATS], va[["click"]]))
    p = m.predict(te[FEATS])[:, 0]
    ratio = calibration_ratio(te.click, p)
    assert 0.9 < ratio < 1.1, ratio
    assert h.history["val_calibration_ratio"][-1] == pytest.approx(calibration_ratio(va.click, m.predict(va)[:, 0]),
                                                                   rel=1e-6)
    m.set_negative_sampling(None)
    assert calibration_ratio(te.click, m.predict(te[FEATS])[:, 0]) > 3.0            # uncorrected: far off


# ---------------------------------------------------------------------------------------------- calibration
@pytest.fixture(scope="module")
def miscalibrated(logs):
    """A model trained on downsampled negatives *without* the correction: far off on the full log."""
    enc, tr, va, te = logs
    sampled = downsample_negatives(tr, "click", 0.2, seed=1)
    m = DNN(enc.feature_columns, dnn_hidden_units=(16,), task_name="click", seed=2)
    m.compile("adam", lr=5e-3, metrics=["ece", "ne"])
    m.fit(sampled[FEATS], sampled[["click"]], batch_size=512, epochs=2, verbose=0)
    return m


@pytest.mark.parametrize("method", ["isotonic", "platt", "temperature"])
def test_calibrators_match_their_definition_and_halve_ece(logs, miscalibrated, method, tmp_path):
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    enc, tr, va, te = logs
    m = miscalibrated
    ece_raw = expected_calibration_error(te.click, m.predict(te)[:, 0])
    z_va = m.predict_logits(va)[:, 0].double().numpy()
    z_te = m.predict_logits(te)[:, 0].double().numpy()
    m.calibrate(va, va[["click"]], method=method)
    try:
        p = m.predict(te)[:, 0]
        if method == "isotonic":
            ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(sigmoid(z_va), va.click)
            assert np.abs(p - ref.predict(sigmoid(z_te))).max() < 1e-5
        elif method == "platt":
            ref = LogisticRegression(C=1e10, max_iter=1000).fit(z_va[:, None], va.click)
            assert np.abs(p - ref.predict_proba(z_te[:, None])[:, 1]).max() < 1e-5
        else:
            t = m.output_transform.calibrators["click"]["t"]

            def nll(tt):
                return log_loss(va.click, sigmoid(z_va / tt))
            assert nll(t) < nll(t * 1.05) and nll(t) < nll(t / 1.05)                # the minimum of the NLL
            assert np.allclose(p, sigmoid(z_te / t), atol=1e-6)
        ece = expected_calibration_error(te.click, p)
        # temperature only rescales the logit (no intercept): it cannot undo a shifted base rate, only reduce it
        assert ece <= (0.5 if method != "temperature" else 0.9) * ece_raw, (ece, ece_raw)
        assert m.evaluate(te, te[["click"]])["ece"] == pytest.approx(ece, rel=1e-5)
        assert np.allclose(m.predict_records(te[FEATS].head(7).to_dict("records"))[:, 0], p[:7], atol=1e-6)
        m.save(str(tmp_path / method))
        assert np.array_equal(load_model(str(tmp_path / method)).predict(te.head(500)), m.predict(te.head(500)))
    finally:
        m.calibrate(method=None)
    assert np.allclose(m.predict(te.head(100))[:, 0], sigmoid(z_te[:100]), atol=1e-6)


def test_calibration_after_correction_and_export_parity(logs, miscalibrated, tmp_path):
    pytest.importorskip("onnxruntime")
    from ctrkit.export import export_onnx, export_torch, parity
    enc, tr, va, te = logs
    m = miscalibrated
    z = m.predict_logits(va)[:, 0].double().numpy()
    try:
        m.set_negative_sampling({"click": 0.2})
        m.calibrate(va, va[["click"]], method="isotonic")
        from sklearn.isotonic import IsotonicRegression
        ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(sigmoid(z + math.log(0.2)), va.click)
        assert np.abs(m.predict(va)[:, 0] - ref.predict(sigmoid(z + math.log(0.2)))).max() < 1e-5   # order
        with pytest.raises(ValueError, match="invalidate that calibration"):
            m.set_negative_sampling({"click": 0.5})
        for fn, name in ((export_onnx, "m.onnx"), (export_torch, "m.pt2")):
            path = fn(m, str(tmp_path / name))          # verify=True: random-input parity inside
            assert parity(m, path, te[FEATS].head(3000)) <= 1e-5
            side = json.loads((tmp_path / (name + ".json")).read_text())
            assert side["output_transform"]["calibration"]["click"]["method"] == "isotonic"
            assert "isotonic calibration" in side["outputs"][0]["content"]
    finally:
        m.calibrate(method=None)
        m.set_negative_sampling(None)


def test_multitask_calibrates_the_tasks_asked_and_refuses_others():
    from ctrkit.datasets import census_feature_types, load_census_income
    X, y = load_census_income(group=1)
    X, y = X.iloc[:4000], y.iloc[:4000]
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X)
    y = y.assign(age_reg=X.age.astype("float32") / 100)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,),
             task_names=["income", "marital", "age_reg"], task_types=["binary", "binary", "regression"], seed=0)
    m.compile("adam", lr=1e-2)
    m.fit(X.iloc[:3000], y.iloc[:3000], epochs=1, verbose=0)
    before = m.predict(X.iloc[3000:])
    m.calibrate(X.iloc[3000:], y.iloc[3000:], method="platt", tasks=["income"])
    after = m.predict(X.iloc[3000:])
    assert np.array_equal(before[:, 1:], after[:, 1:]) and not np.allclose(before[:, 0], after[:, 0])
    with pytest.raises(ValueError, match="'age_reg' is a 'regression' task"):
        m.calibrate(X.iloc[3000:], y.iloc[3000:], tasks=["age_reg"])
    with pytest.raises(ValueError, match="method must be one of"):
        m.calibrate(X.iloc[3000:], y.iloc[3000:], method="beta")
    with pytest.raises(ValueError, match="one class only"):
        m.calibrate(X.iloc[3000:3005], y.iloc[3000:3005].assign(income=0.0), tasks=["income"])
