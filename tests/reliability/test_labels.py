"""Labels: alignment by index, missing tasks, out-of-range values, model-impossible labels, leakage."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ctrkit import DNN, ESMM, DataValidationError, FeatureEncoder, MMoE, SchemaError

SPARSE = ["uid", "user_city", "item_id", "author_id", "item_city", "channel", "music_id", "device"]


@pytest.fixture(scope="module")
def mmoe(byterec_encoded):
    enc, df, y = byterec_encoded
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["finish", "like"])
    m.compile("adam", metrics=["auc", "logloss"])
    m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    return m, df, y


@pytest.fixture(scope="module")
def reg(byterec_encoded):
    enc, df, _ = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task="regression", task_names=["watch"])
    m.compile("adam", metrics=["mse"])
    return m, df


def _shuffled(obj, seed=0):
    return obj.sample(frac=1.0, random_state=seed)


@pytest.mark.parametrize("kind", ["dataframe", "dict_of_series", "series_pair"])
def test_reordered_labels_are_aligned_by_index(mmoe, kind):
    m, df, y = mmoe
    ys = _shuffled(y)
    assert not ys.index.equals(df.index)
    arg = {"dataframe": ys, "dict_of_series": {"finish": ys["finish"], "like": ys["like"]},
           "series_pair": {"finish": ys["finish"], "like": _shuffled(y["like"], 1)}}[kind]
    assert m.evaluate(df, arg) == pytest.approx(m.evaluate(df, y))


def test_positional_arrays_stay_positional(mmoe):
    m, df, y = mmoe
    ref = m.evaluate(df, y)
    rev = m.evaluate(df, y.to_numpy()[::-1].copy())
    assert rev["finish_logloss"] != pytest.approx(ref["finish_logloss"])


def test_reordered_sample_weight_is_aligned(mmoe, byterec):
    m, df, y = mmoe
    w = pd.Series(np.linspace(0.1, 2.0, len(df)), index=df.index)
    assert m.evaluate(df, y, sample_weight=_shuffled(w)) == pytest.approx(m.evaluate(df, y, sample_weight=w))


def test_reordered_validation_labels_are_aligned(byterec_encoded):
    enc, df, y = byterec_encoded
    losses = []
    for yv in (y, _shuffled(y)):
        m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["finish", "like"],
                 seed=3)
        m.compile("adam")
        h = m.fit(df.iloc[:150], y.iloc[:150], batch_size=64, epochs=1, verbose=0, shuffle=False,
                  validation_data=(df.iloc[150:], yv.loc[df.index[150:]].sample(frac=1, random_state=2)))
        losses.append(h.history["val_loss"][0])
    assert losses[0] == pytest.approx(losses[1])


@pytest.mark.parametrize("make, hint", [
    (lambda y: y.set_axis(y.index + 1000), "lacks"),
    (lambda y: y.iloc[:-1], "199 labels vs 200"),
    (lambda y: y.set_axis(np.zeros(len(y), dtype=int)), "duplicated"),
])
@pytest.mark.parametrize("where", ["fit", "evaluate"])
def test_labels_with_another_index_are_refused(mmoe, make, hint, where, clean_error):
    m, df, y = mmoe
    call = (lambda yy: m.fit(df, yy, epochs=1, verbose=0)) if where == "fit" else (lambda yy: m.evaluate(df, yy))
    with pytest.raises(DataValidationError, match="y is a pandas object whose index does not match") as e:
        call(make(y))
    assert hint in str(e.value) and "to_numpy()" in str(e.value)
    clean_error(e)


def test_sample_weight_with_another_index_is_refused(mmoe, clean_error):
    m, df, y = mmoe
    w = pd.Series(1.0, index=df.index + 5)
    with pytest.raises(DataValidationError, match="sample_weight is a pandas object whose index") as e:
        m.evaluate(df, y, sample_weight=w)
    clean_error(e)


def test_validation_labels_with_another_index_are_refused(mmoe):
    m, df, y = mmoe
    with pytest.raises(DataValidationError, match=r"fit\(validation_data\): y is a pandas object"):
        m.fit(df, y, epochs=1, verbose=0, validation_data=(df.iloc[:50], y.iloc[50:100]))


@pytest.mark.parametrize("where", ["fit", "evaluate"])
def test_task_without_any_label_gives_nan_metrics_and_a_warning(mmoe, where):
    m, df, y = mmoe
    yy = y.assign(like=np.nan)
    with pytest.warns(UserWarning, match=r"task\(s\) \['like'\] have no labels"):
        logs = (m.evaluate(df, yy) if where == "evaluate"
                else {k: v[-1] for k, v in m.fit(df, yy, epochs=1, verbose=0).history.items()})
    assert np.isnan(logs["like_auc"]) and np.isfinite(logs["finish_auc"]) and np.isfinite(logs["loss"])


def test_single_task_all_missing_evaluates_to_nan(byterec_encoded):
    enc, df, _ = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.compile("adam", metrics=["auc", "accuracy"])
    with pytest.warns(UserWarning, match=r"\['finish'\] have no labels"):
        logs = m.evaluate(df, pd.Series(np.nan, index=df.index))
    assert np.isnan(logs["auc"]) and np.isnan(logs["accuracy"])   # a single task's keys carry no prefix


@pytest.mark.parametrize("value", [1e39, -1e39, 1e300])
def test_labels_beyond_float32_are_refused(reg, value, clean_error):
    m, df = reg
    y = np.arange(len(df), dtype=np.float64)
    y[7] = value
    with pytest.raises(DataValidationError, match=r"task 'watch' has 1 labels beyond float32's range") as e:
        m.evaluate(df, y)
    clean_error(e)


def test_infinite_labels_are_counted(reg):
    m, df = reg
    y = np.zeros(len(df))
    y[:3] = np.inf
    with pytest.raises(DataValidationError, match="task 'watch' has 3 infinite labels"):
        m.fit(df, y, verbose=0)


@pytest.mark.parametrize("y", ["finish", b"finish", 1, 0.5, None])
def test_label_of_the_wrong_type_names_y(mmoe, y, clean_error):
    m, df, _ = mmoe
    with pytest.raises(DataValidationError, match="y") as e:
        m.fit(df, y, verbose=0)
    assert "y is None" in str(e.value) if y is None else f"got the {type(y).__name__}" in str(e.value)
    clean_error(e)


def test_label_frame_with_duplicate_task_columns_is_refused(mmoe, clean_error):
    m, df, y = mmoe
    yy = pd.concat([y, y[["like"]]], axis=1)
    with pytest.raises(DataValidationError, match=r"y has duplicated column names \['like'\]") as e:
        m.evaluate(df, yy)
    clean_error(e)


@pytest.fixture(scope="module")
def esmm(byterec_encoded):
    enc, df, _ = byterec_encoded
    m = ESMM(enc.feature_columns, tower_dnn_hidden_units=(8,))
    m.compile("adam", metrics=["auc"])
    return m, df


@pytest.mark.parametrize("n_bad", [1, 7])
@pytest.mark.parametrize("where", ["fit", "evaluate"])
def test_esmm_conversions_without_clicks_are_counted_in_a_warning(esmm, n_bad, where):
    m, df = esmm
    click = df["finish"].to_numpy(dtype=float)
    conv = click * df["like"].to_numpy(dtype=float)
    idx = np.flatnonzero(click == 0)[:n_bad]
    conv[idx] = 1.0
    y = {"ctr": click, "ctcvr": conv}
    call = m.evaluate if where == "evaluate" else (lambda x, yy: m.fit(x, yy, verbose=0))
    with pytest.warns(UserWarning, match=rf"{n_bad} rows have 'ctcvr' = 1 but 'ctr' = 0"):
        call(df, y)


def test_esmm_consistent_labels_train(esmm):
    m, df = esmm
    click = df["finish"].to_numpy(dtype=float)
    h = m.fit(df, {"ctr": click, "ctcvr": click * df["like"].to_numpy(dtype=float)}, verbose=0)
    assert np.isfinite(h.history["loss"][-1])


# ------------------------------------------------------------------ leakage
@pytest.mark.parametrize("y_of", [lambda df: df[["finish", "like"]], lambda df: df["finish"],
                                  lambda df: {"finish": df["finish"], "like": df["like"]}])
def test_inferred_encoder_never_uses_the_labels_passed_to_fit(byterec, y_of):
    y = y_of(byterec)
    enc = FeatureEncoder().fit(byterec, y)
    names = [y.name] if isinstance(y, pd.Series) else list(y.keys())
    assert not set(names) & set(enc.feature_names_in_)
    assert "uid" in enc.feature_names_in_


@pytest.mark.parametrize("ignore", ["finish", ["finish", "like"]])
def test_ignore_accepts_a_name_or_a_list(byterec, ignore):
    enc = FeatureEncoder(ignore=ignore).fit(byterec)
    assert "finish" not in enc.feature_names_in_


@pytest.mark.parametrize("how", ["ignore", "y"])
def test_a_declared_label_listed_as_a_feature_is_refused(byterec, how):
    kw = {"ignore": ["finish"]} if how == "ignore" else {}
    y = byterec["finish"] if how == "y" else None
    with pytest.raises(SchemaError, match="column 'finish' is listed as a feature"):
        FeatureEncoder(sparse=["uid", "finish"], **kw).fit(byterec, y)


def test_encoder_warns_about_a_feature_that_copies_the_label(byterec):
    y = byterec["finish"].to_numpy()             # an unnamed array: the column cannot be excluded by name
    with pytest.warns(UserWarning, match="feature column 'finish' equals the label 'y'"):
        FeatureEncoder().fit(byterec, y)


def test_model_fit_warns_about_a_leaked_label(byterec):
    enc = FeatureEncoder(embedding_dim=4).fit(byterec)   # inferred from a frame that still holds the labels
    assert "finish" in enc.feature_names_in_
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.compile("adam")
    with pytest.warns(UserWarning, match="feature column 'finish' equals the labels of task 'finish'"):
        m.fit(byterec, byterec["finish"], verbose=0)


def test_clean_encoder_gives_no_leak_warning(byterec):
    enc = FeatureEncoder(embedding_dim=4).fit(byterec, byterec[["finish", "like"]])
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.compile("adam")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.fit(byterec, byterec["finish"], verbose=0)
