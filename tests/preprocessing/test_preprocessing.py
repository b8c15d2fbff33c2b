import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from ctrkit import DataValidationError, DenseFeat, FeatureEncoder, NotFittedError, SparseFeat, VarLenSparseFeat
from ctrkit.preprocessing import OOV_ID


@pytest.fixture()
def frame():
    return pd.DataFrame({
        "city": ["a", "b", "a", None, "c", "a"],
        "code": [7, 8, 7, 7, 9, 8],
        "age": [20.0, 30.0, np.nan, 40.0, np.inf, 50.0],
        "const": [3.0] * 6,
        "empty": [np.nan] * 6,
        "genres": ["x|y", "y", "", None, "z|x|y|w", "x"],
    })


def test_sklearn_contract(frame):
    enc = FeatureEncoder(sparse=["city"], dense=["age"])
    assert not hasattr(enc, "vocabularies_")
    assert enc.fit(frame) is enc
    assert clone(enc).get_params() == enc.get_params()
    assert list(enc.feature_names_in_) == ["city", "age"] and enc.n_features_in_ == 2
    with pytest.raises(NotFittedError, match="not fitted yet"):
        FeatureEncoder(sparse=["city"]).transform(frame)
    # usable as a step of an sklearn Pipeline
    out = Pipeline([("enc", FeatureEncoder(sparse=["city"], dense=["age"]))]).fit(frame).transform(frame)
    assert set(out) == {"city", "age"}


def test_unseen_missing_and_min_freq(frame):
    enc = FeatureEncoder(sparse=["city", "code"], min_freq={"city": 2}).fit(frame)
    out = enc.transform(pd.DataFrame({"city": ["a", "zzz", None, "b"], "code": ["7", 7.0, 99, 8]}))
    assert out["city"][0] >= 2 and out["city"][1] == OOV_ID          # unseen -> OOV
    assert out["city"][2] == OOV_ID                                  # None seen once < min_freq -> OOV
    assert out["city"][3] == OOV_ID                                  # 'b' seen once < min_freq
    # an int column matched by value whatever the type at transform time
    assert out["code"][0] == out["code"][1] == enc.transform(frame)["code"][0]
    assert out["code"][2] == OOV_ID
    assert out["city"].dtype == np.int64
    fc = enc.feature_columns
    assert fc[0] == SparseFeat("city", 2 + 1, 8, dtype="int64")       # only 'a' survives min_freq=2
    assert max(out["code"]) < fc[1].vocabulary_size


def test_handle_unknown_error(frame):
    enc = FeatureEncoder(sparse=["city"], handle_unknown="error").fit(frame)
    with pytest.raises(DataValidationError, match="column 'city' has values not seen at fit"):
        enc.transform(pd.DataFrame({"city": ["nope"]}))


def test_dense_policy(frame):
    enc = FeatureEncoder(dense=["age", "const", "empty"]).fit(frame)
    out = enc.transform(frame)
    st = enc.dense_stats_["age"]
    finite = np.array([20.0, 30.0, 40.0, 50.0])
    assert st["fill"] == pytest.approx(finite.mean()) and st["hi"] == 50.0
    assert out["age"][2] == pytest.approx(0.0, abs=1e-6)        # NaN -> mean -> 0 after z-score
    assert out["age"][4] == pytest.approx((50 - finite.mean()) / finite.std(), rel=1e-5)  # inf -> max
    assert np.all(out["const"] == 0) and np.all(np.isfinite(out["const"]))   # no division by zero
    assert np.all(out["empty"] == 0)
    mm = FeatureEncoder(dense=["age"], scaling="minmax").fit(frame).transform(frame)["age"]
    assert mm.min() == pytest.approx(0.0) and mm.max() == pytest.approx(1.0)
    # strings in a dense column at predict time become NaN -> fill, never a crash
    assert np.isfinite(enc.transform(frame.assign(age=["x"] * 6))["age"]).all()


def test_varlen_split_pad_truncate(frame):
    enc = FeatureEncoder(varlen={"genres": "|"}, maxlen=3).fit(frame)
    out = enc.transform(frame)["genres"]
    assert out.shape == (6, 3) and out.dtype == np.int64
    assert (out[2] == 0).all() and (out[3] == 0).all()           # empty and missing -> all padding
    voc = {k: i + 2 for i, k in enumerate(enc.vocabularies_["genres"])}
    assert out[0].tolist() == [voc["x"], voc["y"], 0]
    assert out[4].tolist() == [voc["x"], voc["y"], voc["w"]]     # 'pre' truncation keeps the last 3
    post = FeatureEncoder(varlen={"genres": "|"}, maxlen=3, truncating="post").fit(frame).transform(frame)["genres"]
    assert post[4].tolist() == [voc["z"], voc["x"], voc["y"]]
    lists = enc.transform(pd.DataFrame({"genres": [["y", "new"]]}))["genres"]
    assert lists[0].tolist() == [voc["y"], OOV_ID, 0]
    f = enc.feature_columns[0]
    assert isinstance(f, VarLenSparseFeat) and f.maxlen == 3 and f.vocabulary_size == 2 + 4


def test_hashing_is_stable_and_bounded(frame):
    enc = FeatureEncoder(sparse=["city"], hash_buckets=16).fit(frame)
    a = enc.transform(frame)["city"]
    assert ((a >= 2) & (a < 18)).all() and enc.feature_columns[0].vocabulary_size == 18
    one = FeatureEncoder(sparse=["city"], hash_buckets=16).fit(frame.iloc[:1])
    assert np.array_equal(a, one.transform(frame)["city"])


def test_inferred_types_and_json_round_trip(frame):
    enc = FeatureEncoder(ignore=["genres"]).fit(frame)
    assert enc.sparse_columns_ == ["city", "code"] and enc.dense_columns_ == ["age", "const", "empty"]
    back = FeatureEncoder.from_json(json.dumps(enc.to_dict()))
    for k, v in enc.transform(frame).items():
        np.testing.assert_array_equal(v, back.transform(frame)[k])
    assert back.feature_columns == enc.feature_columns


def test_missing_column_message(frame):
    enc = FeatureEncoder(sparse=["city"], dense=["age"]).fit(frame)
    with pytest.raises(DataValidationError, match=r"missing columns \['age'\]"):
        enc.transform(frame.drop(columns=["age"]))
    # extra columns ignored, order irrelevant
    out = enc.transform(frame[["genres", "age", "city"]])
    assert set(out) == {"city", "age"}


def test_partial_fit_equals_fit(byterec):
    kw = dict(sparse=["uid", "item_id", "channel"], dense=["duration_time", "time"], min_freq=2)
    whole = FeatureEncoder(**kw).fit(byterec)
    parts = FeatureEncoder(**kw)
    for chunk in np.array_split(np.arange(len(byterec)), 7):
        parts.partial_fit(byterec.iloc[chunk])
    parts.finish_partial_fit()
    assert parts.vocabularies_ == whole.vocabularies_
    for c in kw["dense"]:
        for k in ("fill", "center", "scale", "lo", "hi"):
            assert parts.dense_stats_[c][k] == pytest.approx(whole.dense_stats_[c][k], rel=1e-9)


def test_empty_frame_is_an_error():
    with pytest.raises(DataValidationError, match="no rows"):
        FeatureEncoder(sparse=["a"]).fit(pd.DataFrame({"a": []}))


def test_dense_feature_columns_for_dense(frame):
    assert FeatureEncoder(dense=["age"]).fit(frame).feature_columns == [DenseFeat("age", 1)]
