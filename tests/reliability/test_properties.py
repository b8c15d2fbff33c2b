"""Property-based: every registered tabular model on random mixed-type frames, through a FeatureEncoder.

Frames mix ints, floats, strings, NaN, None, ±inf, unicode and very large values, in every column. For each model:
the encoder fits and transforms without error, one epoch of fit runs, predictions on another random frame (unseen
values) are finite probabilities of shape ``(n, output_width)``, and a save / load round trip predicts the same.
A few examples per model keep the whole file near a minute.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ctrkit.models  # noqa: F401  (registers every model)
from ctrkit import FeatureEncoder, load_model
from ctrkit.registry import MODELS, build_model, model_arguments
from ctrkit.testing.data import with_sequence

_spec = importlib.util.spec_from_file_location(
    "_conformance_sizes", Path(__file__).resolve().parents[1] / "models" / "test_conformance.py")
assert _spec is not None and _spec.loader is not None
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)
SMALL = _conf.SMALL  # the conformance suite's small sizes: one table for both suites

ALL = sorted(n for n, c in MODELS.items() if not getattr(c, "sequential", False) and n in SMALL)
TASKS, TYPES = ["click", "buy"], ["binary", "binary"]
SPARSE = ["item_id", "s_int", "s_text", "mixed"]
DENSE = ["num", "mixed_num"]

anything = st.one_of(
    st.none(), st.just(float("nan")), st.just(float("inf")), st.just(float("-inf")),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0]), st.text(max_size=8),
    st.sampled_from(["ü", "日本", "🙂", "", " ", "None", "nan", "NA", "\x00"]))
numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([1e308, -1e308, 0.0]), st.integers(-(10 ** 18), 10 ** 18))


@st.composite
def frames(draw, min_rows=1):
    n = draw(st.integers(min_rows, 24))
    col = {
        "item_id": draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)),
        "s_int": draw(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=n, max_size=n)),
        "s_text": draw(st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=n, max_size=n)),
        "mixed": draw(st.lists(anything, min_size=n, max_size=n)),
        "num": draw(st.lists(numbers, min_size=n, max_size=n)),
        "mixed_num": draw(st.lists(anything, min_size=n, max_size=n)),
    }
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in col.items()})


def build(name, cols):
    kw = dict(SMALL[name], seed=0)
    if "dnn_dropout" in model_arguments(name)[0]:
        kw["dnn_dropout"] = 0.0
    multitask = getattr(MODELS[name], "multitask", False)
    tasks, types = (TASKS, TYPES) if multitask else (TASKS[:1], TYPES[:1])
    return build_model(name, cols, tasks, types, **kw)


def inputs(model_name, enc, df):
    if MODELS[model_name].conformance_tags.get("needs_sequence"):
        return with_sequence(enc, df)
    return enc.feature_columns, df


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(train=frames(min_rows=2), score=frames(), labels=st.randoms(use_true_random=False))
def test_every_model_on_random_frames(name, train, score, labels, tmp_path_factory):
    enc = FeatureEncoder(sparse=SPARSE, dense=DENSE, embedding_dim=4).fit(train)
    ids = enc.transform(train)
    for c in SPARSE:                                   # ids within the vocabulary
        v = next(f.vocabulary_size for f in enc.feature_columns if f.name == c)
        assert 0 <= int(np.min(ids[c])) and int(np.max(ids[c])) < v, c
    for c in DENSE:
        assert np.isfinite(np.asarray(ids[c], dtype=float)).all(), c
    cols, x = inputs(name, enc, train)
    model = build(name, cols)
    model.compile("adam", lr=1e-2)
    rng = np.random.default_rng(labels.randint(0, 2 ** 31))
    y = {t: rng.integers(0, 2, len(train)).astype("float32") for t in model.task_names}
    if MODELS[name].conformance_tags.get("nested_tasks"):
        y["buy"] = y["buy"] * y["click"]               # ESMM: the second task within the first
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a NaN loss would warn: fail instead
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    _, xs = inputs(name, enc, score)
    p = model.predict(xs)
    assert p.shape == (len(score), model.output_width)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    d = tmp_path_factory.mktemp(name)
    model.save(str(d / "m"))
    loaded = load_model(str(d / "m"))
    np.testing.assert_array_equal(loaded.predict(xs), p)
