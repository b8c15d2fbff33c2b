"""API misuse: arguments of the wrong type or value get an error naming the argument, never a deep traceback."""
from __future__ import annotations

import numpy as np
import pytest

from ctrkit import DNN, DataValidationError


@pytest.fixture(scope="module")
def model(byterec_encoded):
    enc, df, y = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.compile("adam", metrics=["auc"])
    return m, df, y["finish"]


@pytest.mark.parametrize("bs", ["64", 0, -1, 2.5, True, None])
@pytest.mark.parametrize("where", ["fit", "evaluate", "predict"])
def test_bad_batch_size_is_named(model, bs, where, clean_error):
    m, df, y = model
    call = {"fit": lambda: m.fit(df, y, batch_size=bs, verbose=0),
            "evaluate": lambda: m.evaluate(df, y, batch_size=bs), "predict": lambda: m.predict(df, batch_size=bs)}
    with pytest.raises(ValueError, match=rf"{where}: batch_size must be an int >= 1, got {bs!r}") as e:
        call[where]()
    clean_error(e)


@pytest.mark.parametrize("epochs", [2.5, "2", -1, True])
def test_bad_epochs_is_named(model, epochs, clean_error):
    m, df, y = model
    with pytest.raises(ValueError, match=r"fit: epochs must be an int >= 0") as e:
        m.fit(df, y, epochs=epochs, verbose=0)
    clean_error(e)


@pytest.mark.parametrize("split", ["0.1", 1.0, -0.1])
def test_bad_validation_split_is_named(model, split):
    m, df, y = model
    with pytest.raises(ValueError, match=r"validation_split must be a float in \[0, 1\)"):
        m.fit(df, y, validation_split=split, verbose=0)


@pytest.mark.parametrize("x, says", [
    ("rows", "x is a list of 200 rows"),
    ("array", "a bare array cannot be matched"),
    ("uid", "x must be a DataFrame"),
    (5, "x must be a DataFrame"),
    (None, "x is None"),
])
@pytest.mark.parametrize("where", ["fit", "predict"])
def test_x_of_the_wrong_type_is_named(model, x, says, where, clean_error):
    m, df, y = model
    x = {"rows": df.values.tolist(), "array": df.to_numpy()}.get(x, x) if isinstance(x, str) else x
    with pytest.raises(DataValidationError, match=says) as e:
        m.fit(x, y, verbose=0) if where == "fit" else m.predict(x)
    clean_error(e)


@pytest.mark.parametrize("w, says", [
    ("heavy", "sample_weight: expected one number per row"),
    ({"finish": 1.0}, "sample_weight: expected one number per row"),
    (["a"] * 200, "sample_weight: values must be numbers"),
    ([1.0] * 199, "sample_weight: has 199 values but the input has 200 rows"),
    ([-1.0] * 200, "sample_weight: values must be finite and >= 0"),
    ([1e39] * 200, "sample_weight: values beyond float32's range"),
])
def test_bad_sample_weight_is_named(model, w, says, clean_error):
    m, df, y = model
    with pytest.raises(DataValidationError, match=says) as e:
        m.evaluate(df, y, sample_weight=w)
    clean_error(e)


@pytest.mark.parametrize("val", ["df", "one", "four"])
def test_bad_validation_data_is_named(model, val):
    m, df, y = model
    v = {"df": df, "one": (df,), "four": (df, y, None, None)}[val]
    with pytest.raises(ValueError, match="validation_data must be"):
        m.fit(df, y, validation_data=v, verbose=0)


def test_a_valid_call_still_trains(model):
    m, df, y = model
    h = m.fit(df, y, batch_size=np.int64(64), epochs=np.int32(1), verbose=0, sample_weight=np.ones(len(df)))
    assert np.isfinite(h.history["loss"][0])
