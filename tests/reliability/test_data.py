"""Data: extreme values, dtype changes, duplicated / MultiIndex columns, one-row BatchNorm fits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctrkit import DNN, DataValidationError, FeatureEncoder

SPARSE = ["uid", "user_city", "item_id", "author_id", "item_city", "channel", "music_id", "device"]
DENSE = ["duration_time", "time"]


@pytest.mark.parametrize("value", [1e308, -1e308, 1e200, 1e30])
@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_one_extreme_value_does_not_flatten_a_dense_column(byterec, value, scaling):
    df = byterec.assign(duration_time=byterec["duration_time"].astype(float))
    df.loc[df.index[3], "duration_time"] = value
    with pytest.warns(UserWarning, match="dense column 'duration_time' has 1 extreme value"):
        enc = FeatureEncoder(sparse=SPARSE, dense=DENSE, scaling=scaling).fit(df)
    out = enc.transform(byterec)["duration_time"]
    assert np.isfinite(out).all()
    assert np.unique(out).size == byterec["duration_time"].nunique()   # every ordinary value still distinct
    assert np.isfinite(enc.transform(df)["duration_time"]).all()


def test_extreme_value_gives_the_same_encoder_in_chunks(byterec):
    df = byterec.assign(duration_time=byterec["duration_time"].astype(float))
    df.loc[df.index[150], "duration_time"] = 1e308
    with pytest.warns(UserWarning, match="extreme value"):
        whole = FeatureEncoder(sparse=SPARSE, dense=DENSE).fit(df)
    enc = FeatureEncoder(sparse=SPARSE, dense=DENSE)
    with pytest.warns(UserWarning, match="extreme value"):
        for s in range(0, len(df), 100):
            enc.partial_fit(df.iloc[s:s + 100])
        enc.finish_partial_fit()
    assert enc.dense_stats_["duration_time"] == pytest.approx(whole.dense_stats_["duration_time"])


def test_values_beyond_float64_statistics_are_scaled_by_magnitude(byterec):
    df = byterec.assign(time=np.linspace(-1.0, 1.0, len(byterec)) * 1e308)
    with pytest.warns(UserWarning, match="dense column 'time' spans values"):
        enc = FeatureEncoder(sparse=SPARSE, dense=DENSE).fit(df)
    out = enc.transform(df)["time"]
    assert np.isfinite(out).all() and np.unique(out).size > 100


@pytest.fixture(scope="module")
def model(byterec_encoded):
    enc, df, y = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.compile("adam", metrics=["auc"])
    return m, df, y["finish"]


@pytest.mark.parametrize("convert", [lambda s: pd.to_datetime(s, unit="s"), lambda s: pd.to_timedelta(s, unit="s"),
                                     lambda s: pd.to_datetime(s, unit="s").dt.tz_localize("UTC")])
@pytest.mark.parametrize("where", ["predict", "evaluate"])
def test_dense_column_turned_into_dates_is_refused(model, convert, where, clean_error):
    m, df, y = model
    bad = df.assign(time=convert(df["time"]))
    with pytest.raises(DataValidationError, match="dense column 'time' holds .* not numbers") as e:
        m.predict(bad) if where == "predict" else m.evaluate(bad, y)
    clean_error(e)


def test_dates_at_fit_are_refused(byterec, clean_error):
    df = byterec.assign(time=pd.to_datetime(byterec["time"], unit="s"))
    with pytest.raises(DataValidationError, match="dense column 'time'") as e:
        FeatureEncoder(sparse=SPARSE, dense=DENSE).fit(df)
    clean_error(e)


def test_dense_column_turned_into_text_warns_with_the_count(model):
    m, df, _ = model
    bad = df.assign(time=df["time"].astype(str).where(df.index % 2 == 0, "n/a"))
    with pytest.warns(UserWarning, match=r"dense column 'time' has 100 values that are not numbers \(e.g. 'n/a'\)"):
        p = m.predict(bad)
    assert np.isfinite(p).all()


@pytest.mark.parametrize("where", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("column", ["uid", "time"])
def test_duplicated_feature_columns_are_refused(model, where, column, clean_error):
    m, df, y = model
    bad = pd.concat([df, df[[column]]], axis=1)
    call = {"fit": lambda: m.fit(bad, y, verbose=0), "evaluate": lambda: m.evaluate(bad, y),
            "predict": lambda: m.predict(bad)}[where]
    with pytest.raises(DataValidationError, match=rf"x has duplicated column names \['{column}'\]") as e:
        call()
    clean_error(e)


def test_duplicated_columns_the_model_does_not_read_are_allowed(model):
    m, df, _ = model
    extra = pd.concat([df, df[["finish"]]], axis=1)
    assert np.allclose(m.predict(extra), m.predict(df))


@pytest.mark.parametrize("where", ["fit", "evaluate", "predict"])
def test_multiindex_columns_are_refused(model, where, clean_error):
    m, df, y = model
    bad = df.copy()
    bad.columns = pd.MultiIndex.from_tuples([(c, "raw") for c in df.columns])
    call = {"fit": lambda: m.fit(bad, y, verbose=0), "evaluate": lambda: m.evaluate(bad, y),
            "predict": lambda: m.predict(bad)}[where]
    with pytest.raises(DataValidationError, match="x has MultiIndex columns") as e:
        call()
    clean_error(e)


def test_encoder_refuses_duplicated_columns(byterec, clean_error):
    bad = pd.concat([byterec, byterec[["uid"]]], axis=1)
    with pytest.raises(DataValidationError, match=r"X has duplicated column names \['uid'\]") as e:
        FeatureEncoder(sparse=SPARSE, dense=DENSE).fit(bad)
    clean_error(e)


@pytest.mark.parametrize("kw", [{}, {"validation_split": 0.5}])
def test_one_row_with_batchnorm_is_a_clear_error(byterec_encoded, kw, clean_error):
    enc, df, y = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), dnn_use_bn=True, task_names=["finish"])
    m.compile("adam")
    n = 2 if kw else 1
    with pytest.raises(DataValidationError, match="training data has 1 row, but the model has BatchNorm") as e:
        m.fit(df.iloc[:n], y["finish"].iloc[:n], verbose=0, **kw)
    clean_error(e)


def test_one_row_without_batchnorm_trains(byterec_encoded):
    enc, df, y = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.compile("adam")
    assert np.isfinite(m.fit(df.iloc[:1], y["finish"].iloc[:1], verbose=0).history["loss"][0])
