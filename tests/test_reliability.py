"""Bad input gets a clear error (or a documented default) — never an unexplained traceback.

Each case here is a row of docs/reliability.md.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctrkit import (
    DNN,
    DataValidationError,
    DenseFeat,
    FeatureEncoder,
    MMoE,
    SchemaError,
    SparseFeat,
    VarLenSparseFeat,
    load_model,
)


@pytest.fixture(scope="module")
def trained(byterec_encoded):
    enc, df, y = byterec_encoded
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["finish", "like"])
    m.compile("adam", metrics=["auc"])
    m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    return m, df, y


def test_missing_feature_column_is_named(trained):
    m, df, y = trained
    with pytest.raises(DataValidationError, match=r"missing columns \['item_id'\]"):
        m.predict(df.drop(columns=["item_id"]))
    with pytest.raises(DataValidationError, match="missing columns"):
        m.evaluate(df.drop(columns=["uid"]), y)


def test_extra_and_reordered_columns_work(trained):
    m, df, y = trained
    ref = m.predict(df)
    np.testing.assert_array_equal(m.predict(df[df.columns[::-1]].assign(extra=1)), ref)


def test_unseen_values_and_new_types_go_to_oov(trained):
    m, df, y = trained
    new = df.head(5).copy()
    new["uid"] = ["never-seen", None, 3.5, -1, "x"]          # strings where ints were seen, None, floats
    new["duration_time"] = [np.nan, np.inf, -np.inf, "abc", 1e30]
    p = m.predict(new)
    assert p.shape == (5, 2) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_hand_built_ids_out_of_range_fail_before_lookup():
    cols = [SparseFeat("item", 10, 4), DenseFeat("d")]
    m = DNN(cols, dnn_hidden_units=(4,))
    m.compile("adam")
    with pytest.raises(DataValidationError, match=r"column 'item' has id 12 outside \[0, 10\)"):
        m.predict({"item": np.array([1, 12]), "d": np.array([0.1, 0.2])})
    with pytest.raises(DataValidationError, match="has id -1"):
        m.predict({"item": np.array([-1, 2]), "d": np.array([0.1, 0.2])})
    with pytest.raises(DataValidationError, match="must hold integer ids"):
        m.predict({"item": np.array(["a", "b"]), "d": np.array([0.1, 0.2])})
    with pytest.raises(DataValidationError, match="NaN/inf"):
        m.predict({"item": np.array([1, 2]), "d": np.array([np.nan, 0.2])})


def test_use_hash_accepts_raw_values():
    cols = [SparseFeat("city", 16, 4, use_hash=True), DenseFeat("d")]
    m = DNN(cols, dnn_hidden_units=(4,))
    m.compile("adam")
    x = {"city": np.array(["paris", "rome", 7, None], dtype=object), "d": np.zeros(4)}
    m.fit(x, np.array([0, 1, 0, 1]), batch_size=2, epochs=1, verbose=0)
    assert m.predict(x).shape == (4, 1)


def test_label_problems(trained):
    m, df, y = trained
    with pytest.raises(DataValidationError, match=r"labels must be 0 or 1, got values \[-1.0, 1.0\]"):
        m.fit(df, y * 2 - 1, verbose=0)
    with pytest.raises(DataValidationError, match="must be numbers"):
        m.fit(df, pd.DataFrame({"finish": ["a"] * len(df), "like": y["like"]}), verbose=0)
    with pytest.raises(DataValidationError, match="missing task"):
        m.fit(df, {"finish": y["finish"]}, verbose=0)
    single = DNN(list(m.feature_columns), dnn_hidden_units=(4,))
    single.compile("adam")
    with pytest.raises(DataValidationError, match=r"expected targets of shape \(n, 1\)"):
        single.fit(m.encoder.transform(df), y.to_numpy(), verbose=0)


def test_shapes_and_sizes(byterec):
    enc = FeatureEncoder(sparse=["uid"], dense=["duration_time"]).fit(byterec)
    m = DNN(enc.feature_columns, dnn_hidden_units=(4,))
    m.compile("adam")
    with pytest.raises(DataValidationError, match="no rows"):
        m.fit(byterec.iloc[:0], byterec["like"].iloc[:0], verbose=0)
    m.fit(byterec.iloc[:1], byterec["like"].iloc[:1], verbose=0)                # one row
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got -5"):
        m.predict(byterec, batch_size=-5)


def test_varlen_longer_than_maxlen_and_empty_lists():
    cols = [VarLenSparseFeat(SparseFeat("tags", 10, 4), maxlen=3), DenseFeat("v", 2)]
    m = DNN(cols, dnn_hidden_units=(4,))
    m.compile("adam")
    x = {"tags": [[1, 2, 3, 4, 5], [], [7]], "v": np.ones((3, 2))}      # ragged, truncated to maxlen
    m.fit(x, np.array([1, 0, 1]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(m.predict(x)).all()
    with pytest.raises(DataValidationError, match="has 3 values per row"):
        m.predict({"tags": [[1]], "v": np.ones((1, 3))})


@pytest.mark.parametrize("build, text", [
    (lambda c: MMoE(c, num_experts=0), "num_experts must be an int >= 1, got 0"),
    (lambda c: MMoE(c, task_names=["a"], task_types=["binary", "binary"]), "does not match"),
    (lambda c: MMoE(c, task_types=["binary", "poisson"]), "task_types entries must be one of"),
    (lambda c: MMoE(c, dnn_activation="relux"), "Did you mean 'relu'"),
    (lambda c: MMoE([]), "feature_columns is empty"),
])
def test_bad_constructor_arguments(build, text):
    with pytest.raises((ValueError, SchemaError), match=text):
        build([SparseFeat("a", 5, 4)])


def test_bad_compile_arguments():
    m = MMoE([SparseFeat("a", 5, 4)], num_experts=2, expert_dnn_hidden_units=(4,), task_names=["x", "y"])
    with pytest.raises(ValueError, match="Unknown loss 'bce2'"):
        m.compile("adam", loss="bce2")
    with pytest.raises(ValueError, match="Unknown metric 'aucc'.*Did you mean 'auc'"):
        m.compile("adam", metrics=["aucc"])
    with pytest.raises(ValueError, match=r"loss_weights names unknown task\(s\) \['z'\]"):
        m.compile("adam", loss_weights={"z": 1.0})


# ---------------------------------------------------------------- property-based
_values = st.one_of(st.none(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=6), st.booleans())


@st.composite
def frames(draw):
    n = draw(st.integers(1, 12))
    cat = draw(st.lists(_values, min_size=n, max_size=n))
    num = draw(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64),
                                  st.integers(-10**15, 10**15)), min_size=n, max_size=n))
    tags = draw(st.lists(st.one_of(st.none(), st.text(alphabet="ab|é中 ", max_size=8)), min_size=n, max_size=n))
    return pd.DataFrame({"cat": pd.Series(cat, dtype=object), "num": pd.Series(num, dtype=object),
                         "tags": pd.Series(tags, dtype=object)})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=frames(), test=frames())
def test_property_encoder_and_model_never_break(train, test, tmp_path_factory):
    enc = FeatureEncoder(sparse=["cat"], dense=["num"], varlen={"tags": "|"}).fit(train)
    out = enc.transform(test)
    for c, f in zip(["cat", "tags"], [enc.feature_columns[0], enc.feature_columns[2]]):
        assert out[c].min() >= 0 and out[c].max() < f.vocabulary_size
    assert np.isfinite(out["num"]).all()
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(4,), tower_dnn_hidden_units=(),
             task_names=["a", "b"])
    p = m.predict(test)
    assert p.shape == (len(test), 2) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    path = tmp_path_factory.mktemp("m") / "model"
    m.save(str(path))
    np.testing.assert_array_equal(load_model(str(path)).predict(test), p)
