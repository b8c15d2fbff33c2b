"""``task_types=[..., "multiclass"]`` with ``num_classes``: logits (B, C), cross-entropy, softmax in predict."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctrkit import DNN, PLE, DeepFM, FeatureEncoder, MMoE, OMoE, SharedBottom, load_model
from ctrkit.datasets import load_sample
from ctrkit.exceptions import DataValidationError
from ctrkit.metrics import multiclass_accuracy, multiclass_log_loss, multiclass_roc_auc

SPARSE = ["user_id", "movie_id", "gender", "age", "occupation", "zip"]


@pytest.fixture(scope="module")
def ml():
    """MovieLens sample: the rating (1-5) as 5 classes 0..4, plus a binary 'liked' (rating >= 4)."""
    df = load_sample("movielens")
    enc = FeatureEncoder(sparse=SPARSE, varlen={"genres": "|"}, embedding_dim=4).fit(df)
    y = pd.DataFrame({"rating": (df["rating"] - 1).astype("int64"), "liked": (df["rating"] >= 4).astype("float32")})
    return enc, df, y


def _entropy(y: np.ndarray, C: int) -> float:
    p = np.bincount(y, minlength=C) / len(y)
    return float(-np.mean(np.log(p[y])))


@pytest.mark.parametrize("cls", [MMoE, OMoE, PLE, SharedBottom])
def test_multitask_models_learn_a_multiclass_task(ml, cls):
    enc, df, y = ml
    kw = dict(expert_dnn_hidden_units=(16,)) if cls in (MMoE, OMoE, PLE) else dict(bottom_dnn_hidden_units=(16,))
    m = cls(enc.feature_columns, tower_dnn_hidden_units=(8,), task_names=["rating", "liked"],
            task_types=["multiclass", "binary"], num_classes={"rating": 5}, seed=2, **kw)
    m.compile("adam", lr=0.02, metrics=["accuracy", "logloss", "auc"])
    h = m.fit(df, y, batch_size=32, epochs=15, verbose=0)
    assert {"rating_accuracy", "rating_auc", "liked_auc"} <= set(h.history)
    p = m.predict(df)
    assert p.shape == (len(df), 6)
    assert m.output_columns() == ["rating:0", "rating:1", "rating:2", "rating:3", "rating:4", "liked"]
    np.testing.assert_allclose(p[:, :5].sum(1), 1.0, atol=1e-5)
    assert ((p[:, 5] >= 0) & (p[:, 5] <= 1)).all()
    parts = m.split_outputs(torch.from_numpy(p))
    assert tuple(parts["rating"].shape) == (len(df), 5) and tuple(parts["liked"].shape) == (len(df),)
    # beats the constant predictor (class frequencies) on the training data
    r = y["rating"].to_numpy()
    res = m.evaluate(df, y)
    assert res["rating_logloss"] < _entropy(r, 5) - 0.1
    assert res["rating_accuracy"] > np.bincount(r).max() / len(r) + 0.05
    assert res["rating_logloss"] == pytest.approx(multiclass_log_loss(r, p[:, :5]), abs=1e-4)


def test_dnn_multiclass_save_load_and_records(ml, tmp_path):
    enc, df, y = ml
    m = DNN(enc.feature_columns, dnn_hidden_units=(16,), task="multiclass", num_classes=5, task_name="rating")
    m.compile("adam", lr=0.02, metrics=["accuracy"])
    m.fit(df, y["rating"], batch_size=32, epochs=5, verbose=0)
    p = m.predict(df)
    assert p.shape == (len(df), 5)
    m.save(str(tmp_path / "m"))
    m2 = load_model(str(tmp_path / "m"))
    assert m2.num_classes == {"rating": 5}
    np.testing.assert_allclose(m2.predict(df), p, atol=1e-6)
    rec = m2.predict_records(df.drop(columns=["rating"]).iloc[:3].to_dict("records"))
    np.testing.assert_allclose(rec, p[:3], atol=1e-6)


def test_multiclass_label_and_argument_errors(ml):
    enc, df, y = ml
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task="multiclass", num_classes=5, task_name="rating")
    m.compile("adam")
    with pytest.raises(DataValidationError, match=r"y\['rating'\].*class ids in \[0, 5\).*\[5\.0\]"):
        m.fit(df, y["rating"] + 1, epochs=1, verbose=0)          # 1..5 instead of 0..4
    with pytest.raises(DataValidationError, match=r"class ids.*\[0\.5\]"):
        m.fit(df, np.where(np.arange(len(df)) == 3, 0.5, 0.0), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="pass num_classes"):
        DNN(enc.feature_columns, task="multiclass")
    with pytest.raises(ValueError, match="int >= 2"):
        DNN(enc.feature_columns, task="multiclass", num_classes=1)
    with pytest.raises(ValueError, match="no task is 'multiclass'"):
        DNN(enc.feature_columns, num_classes=3)
    with pytest.raises(ValueError, match="not supported by this model"):
        DeepFM(enc.feature_columns, enc.feature_columns, task="multiclass")
    with pytest.raises(ValueError, match="for multiclass tasks but task 'liked'"):
        MMoE(enc.feature_columns, task_names=["rating", "liked"], task_types=["multiclass", "binary"],
             num_classes=5).compile("adam", loss="categorical_crossentropy")


def test_missing_multiclass_labels_are_masked(ml):
    enc, df, y = ml
    y = y.copy()
    y["rating"] = y["rating"].astype("float32")
    y.loc[::3, "rating"] = np.nan
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["rating", "liked"],
             task_types=["multiclass", "binary"], num_classes=[5, None])
    m.compile("adam", lr=0.02, metrics=["accuracy"])
    with pytest.warns(UserWarning, match="NaN"):
        h = m.fit(df, y, batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(h.history["loss"]).all() and np.isfinite(h.history["rating_accuracy"]).all()


def test_multiclass_metrics_match_definitions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[y] * rng.random((300, 1))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert multiclass_accuracy(y, p) == pytest.approx(np.mean(p.argmax(1) == y))
    assert multiclass_log_loss(y, p) == pytest.approx(-np.mean(np.log(p[np.arange(300), y])))
    from sklearn.metrics import roc_auc_score
    assert multiclass_roc_auc(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))


def test_multiclass_labels_from_a_store_are_checked_up_front(ml, tmp_path):
    """A store's multiclass labels are range-checked before training starts, with the same message as arrays
    (not a cross-entropy IndexError in the middle of an epoch); valid ones train."""
    from ctrkit.data import open_store, write_store
    enc, df, y = ml
    bad = write_store(str(tmp_path / "bad.h5"), df, y.assign(rating=y["rating"] + 1), enc.feature_columns)
    good = write_store(str(tmp_path / "good.h5"), df, y, enc.feature_columns)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=["rating", "liked"], task_types=["multiclass", "binary"], num_classes=5)
    m.compile("adam", lr=0.01)
    with open_store(bad) as store, pytest.raises(
            DataValidationError, match=r"store's labels for 'rating'.*class ids in \[0, 5\).*\[5\.0\]"):
        m.fit(store, batch_size=64, epochs=1, verbose=0)
    with open_store(good) as store:
        h = m.fit(store, batch_size=64, epochs=2, verbose=0)
        assert np.isfinite(h.history["loss"]).all()
        assert m.evaluate(store)["rating_loss"] < _entropy(y["rating"].to_numpy(), 5)
