"""Single-task models take the multi-task models' ``task_names`` / ``task_types`` (one entry each) as well as
DeepCTR-Torch's ``task`` / ``task_name``; the resolution is ``ctrkit.models._tasks.single_task``."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import ctrkit.models  # noqa: F401  (registers every model)
from ctrkit import DNN, DenseFeat, SparseFeat, VarLenSparseFeat, load_model
from ctrkit.models._tasks import single_task
from ctrkit.registry import MODELS

SINGLE_TASK = sorted(n for n, c in MODELS.items()
                     if not getattr(c, "multitask", False) and not getattr(c, "sequential", False))
COLS = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("age"),
        VarLenSparseFeat(SparseFeat("hist_item", 20, 4, embedding_name="item"), maxlen=3)]
X = {"user": np.array([1, 2, 3, 4]), "item": np.array([3, 4, 5, 6]), "age": np.array([0.1, 0.5, 0.9, 0.3]),
     "hist_item": np.array([[3, 5, 0], [0, 0, 0], [1, 2, 6], [4, 0, 0]])}
SMALL = {"dnn_hidden_units": (8,), "att_hidden_size": (8,), "att_head_num": 1, "cin_layer_size": (4,),
         "ltl_hidden_size": 4, "afn_dnn_hidden_units": (8,), "conv_kernel_width": (2,), "conv_filters": (2,)}


def build(name, **kw):
    cls = MODELS[name]
    params = inspect.signature(cls).parameters
    kw = {**{k: v for k, v in SMALL.items() if k in params}, **kw}
    if cls.conformance_tags.get("needs_sequence"):   # DIN, DIEN: a behaviour sequence of "item"
        return cls(COLS, ["item"], **kw)
    cols = [f for f in COLS if not isinstance(f, VarLenSparseFeat)]   # plain tabular columns
    two = "linear_feature_columns" in params and "dnn_feature_columns" in params
    return cls(cols, cols, **kw) if two else cls(cols, **kw)


def test_the_single_task_models_are_the_ranking_zoo():
    assert SINGLE_TASK == sorted(["AutoInt", "DCN", "DCNMix", "DIN", "DNN", "DeepFM", "FM", "LR", "WDL", "xDeepFM",
                                  "NFM", "PNN", "AFM", "AFN", "CCPM", "DIFM", "FiBiNET", "IFM", "MLR", "ONN",
                                  "DIEN", "FinalMLP", "GDCN", "MaskNet"])


@pytest.mark.parametrize("name", SINGLE_TASK)
def test_task_names_and_types_win_and_match_task_name(name):
    new = build(name, task_names=["click"], task_types=["regression"], task="binary", task_name="ignored")
    assert new.task_names == ["click"] and new.task_types == ["regression"]
    old = build(name, task_name="click", task="regression")
    assert old.task_names == ["click"] and old.task_types == ["regression"]
    a, b = new.state_dict(), old.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)      # same model, same seed
    np.testing.assert_array_equal(new.predict(X), old.predict(X))


@pytest.mark.parametrize("name", SINGLE_TASK)
def test_more_than_one_task_is_refused(name):
    with pytest.raises(ValueError, match=rf"{name} is a single-task model but got 2 tasks.*multi-task model"):
        build(name, task_names=["click", "like"], task_types=["binary", "binary"])
    with pytest.raises(ValueError, match="single-task model but got 2 tasks"):
        build(name, task_types=["binary", "binary"])


@pytest.mark.parametrize("name", ["DNN", "LR", "DeepFM", "DIN"])
@pytest.mark.parametrize("kw", [dict(task_names=["click"], task_types=["regression"]),
                                dict(task_names=["click"]), dict(task_name="click", task="regression"), {}])
def test_config_round_trips_through_save_and_load(name, kw, tmp_path):
    m = build(name, seed=3, **kw)
    cfg = m.get_config()
    assert cfg["task_names"] == kw.get("task_names") and cfg["task_types"] == kw.get("task_types")
    m.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    assert type(back) is type(m) and back.get_config() == cfg
    assert back.task_names == m.task_names and back.task_types == m.task_types
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    again = type(m).from_config(cfg)                      # the config alone rebuilds the same model
    assert again.task_names == m.task_names and again.task_types == m.task_types


def test_single_task_helper():
    assert single_task("M", "binary", "label") == (["label"], ["binary"])
    assert single_task("M", "binary", "label", ("ctr",), None) == (["ctr"], ["binary"])
    assert single_task("M", "binary", "label", None, ["regression"]) == (["label"], ["regression"])
    with pytest.raises(ValueError, match="M is a single-task model but got 2 tasks"):
        single_task("M", "binary", "label", ["a", "b"], ["binary", "binary"])
    with pytest.raises(ValueError, match="one entry each"):
        single_task("M", "binary", "label", [], None)
    with pytest.raises(TypeError, match=r"task_names must be a list with one entry, e.g. task_names=\['ctr'\]"):
        single_task("M", "binary", "label", "ctr", None)


def test_dnn_multiclass_through_task_types():
    m = DNN([SparseFeat("user", 10, 4)], dnn_hidden_units=(8,), task_names=["rating"], task_types=["multiclass"],
            num_classes=5)
    assert m.task_widths == [5] and m.predict({"user": [1, 2]}).shape == (2, 5)
