"""Serving: raw-record prediction (the lean path equals the DataFrame path) and the export API's contract.

Parity of every registered model's ONNX / torch.export files with eager PyTorch is in test_conformance.py.
"""
from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrkit import DNN, FeatureEncoder, MMoE, load_model
from ctrkit.export import (
    DENSE_INPUT,
    SPARSE_INPUT,
    ExportError,
    ServingModule,
    example_inputs,
    export_onnx,
    export_torch,
    input_contract,
    load_exported,
    parity,
    run_onnx,
    serving_inputs,
)

ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(ONNX_MISSING), reason=f"needs the 'export' extra; missing {ONNX_MISSING}")


@pytest.fixture(scope="module")
def ml_model(movielens):
    """MMoE on the MovieLens sample: sparse, dense and a var-length column (genres), two binary tasks."""
    enc = FeatureEncoder(sparse=["user_id", "movie_id", "gender", "occupation"], dense=["age"],
                         varlen={"genres": "|"}, embedding_dim=4).fit(movielens)
    y = pd.DataFrame({"liked": (movielens["rating"] >= 4).astype("float32"),
                      "loved": (movielens["rating"] >= 5).astype("float32")})
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=["liked", "loved"], dnn_dropout=0.3)
    m.compile("adam", lr=0.01)
    m.fit(movielens, y, batch_size=64, epochs=2, verbose=0)
    return m, movielens


# ------------------------------------------------------------------------------------ predict_records
def test_predict_records_equals_dataframe_path_with_unseen_missing_and_absent(ml_model, tmp_path):
    m, df = ml_model
    m.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    recs = df.drop(columns=["rating"]).iloc[:40].to_dict("records")
    recs[0]["movie_id"] = 10 ** 9                 # never seen: OOV
    recs[1]["gender"] = None                      # missing category
    recs[2]["age"] = "not a number"               # unparsable dense: the training mean
    recs[3]["age"] = float("inf")                 # clipped to the training max
    recs[4]["genres"] = "Comedy|NoSuchGenre|Drama|Comedy|Western|Horror|Action"   # unseen token, over maxlen
    recs[5]["genres"] = ["Comedy", "Drama"]       # a list instead of a joined string
    del recs[6]["occupation"]                     # absent from one record: missing
    fast = back.predict_records(recs)
    slow = back.predict(pd.DataFrame.from_records(recs))
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)
    # dropout is off while predicting, and the module's mode is left as it was found (train, then eval)
    assert any(isinstance(mod, torch.nn.Dropout) for mod in back.modules())
    assert back.training and all(mod.training for mod in back.modules())
    back.eval()
    np.testing.assert_allclose(back.predict_records(recs[:3]), slow[:3], rtol=0, atol=1e-6)
    assert not any(mod.training for mod in back.modules())
    enc = back.encoder.transform_records([recs[0]])
    assert enc["movie_id"][0] == 1               # the OOV id
    with pytest.warns(UserWarning, match=r"\['genres'\] are absent from the records"):
        p = back.predict_records([{k: v for k, v in recs[7].items() if k != "genres"}])
    assert p.shape == (1, 2)


def test_predict_records_many_records_take_the_dataframe_path(ml_model):
    m, df = ml_model
    recs = df.drop(columns=["rating"]).to_dict("records") * 6           # > 1,024 records
    assert len(recs) > 1024
    np.testing.assert_allclose(m.predict_records(recs), m.predict(pd.DataFrame.from_records(recs)), atol=1e-6)


def test_predict_records_errors(ml_model):
    m, df = ml_model
    with pytest.raises(ValueError, match="no records"):
        m.predict_records([])
    with pytest.raises(ValueError, match="must be dicts"):
        m.predict_records([["a", 1]])
    bare = DNN([c for c in m.feature_columns], dnn_hidden_units=(4,))   # columns without their encoder
    bare.encoder = None
    with pytest.raises(RuntimeError, match="FeatureEncoder"):
        bare.predict_records([{"user_id": 1}])


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, width=64),
                    st.text(max_size=4), st.sampled_from(["a", "b", "7", "7.0", "x|y", "", "nan"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({"c": _VALUES, "d": _VALUES, "v": _VALUES}), min_size=1, max_size=6))
def test_transform_records_matches_transform_of_the_frame(rows):
    """Any mix of value types in a column: the dict path gives the DataFrame path's ids and values."""
    fit = pd.DataFrame({"c": ["a", "b", "7", None, "x", "a"], "d": [1.0, 2.5, -3.0, None, 8.0, 1.0],
                        "v": ["x|y", "y", "7|a", None, "", "x"]})
    enc = FeatureEncoder(sparse=["c"], dense=["d"], varlen={"v": "|"}).fit(fit)
    frame = pd.DataFrame.from_records(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = enc.transform(frame)
    got = enc.transform_records(rows)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{k}: {rows}")
        assert got[k].dtype == want[k].dtype


# ------------------------------------------------------------------------------------ contract and export
def test_input_contract_and_serving_inputs(ml_model):
    m, df = ml_model
    c = input_contract(m)
    names = [i["name"] for i in c["inputs"]]
    assert names == [SPARSE_INPUT, DENSE_INPUT, "genres"]
    sparse = c["inputs"][0]
    assert sparse["columns"] == ["user_id", "movie_id", "gender", "occupation"]
    assert sparse["vocabulary_sizes"] == [m.encoder.vocabulary_size(col) for col in sparse["columns"]]
    assert c["inputs"][2]["shape"] == ["batch", m.encoder.maxlen_["genres"]]
    assert [o["name"] for o in c["outputs"]] == ["liked", "loved"]
    x = serving_inputs(m, df.iloc[:5])
    assert x[SPARSE_INPUT].dtype == np.int64 and x[DENSE_INPUT].dtype == np.float32 and x["genres"].shape[0] == 5
    recs = serving_inputs(m, df.iloc[:5].to_dict("records"))       # records encode the same way
    for k in x:
        np.testing.assert_array_equal(recs[k], x[k])
    ex = example_inputs(m, n=50)                                    # valid: ids inside every vocabulary
    assert (ex[SPARSE_INPUT] < np.array(sparse["vocabulary_sizes"])).all() and (ex["genres"] != 0).any(1).all()


def test_torch_export_round_trip_and_sidecar(ml_model, tmp_path):
    m, df = ml_model
    path = export_torch(m, str(tmp_path / "m.pt2"))                 # verify=True: random-input parity inside
    side = json.loads((tmp_path / "m.pt2.json").read_text())
    assert side["format"] == "torch.export" and side["input_order"] == [SPARSE_INPUT, DENSE_INPUT, "genres"]
    assert side["encoder"]["state"]["vocabularies_"]["gender"] == m.encoder.vocabularies_["gender"]
    mod = load_exported(path)
    x = serving_inputs(m, df.iloc[:17])
    with torch.no_grad():
        out = mod(*(torch.from_numpy(x[n]) for n in side["input_order"]))
    np.testing.assert_allclose(np.stack([o.numpy() for o in out], 1), m.predict(df.iloc[:17]), atol=1e-5)
    assert parity(m, path, df.iloc[:3]) <= 1e-5 and m.training   # the model's mode is restored


@needs_onnx
def test_onnx_export_dynamic_batch_named_outputs(ml_model, tmp_path):
    m, df = ml_model
    path = export_onnx(m, str(tmp_path / "m.onnx"))
    import onnx
    g = onnx.load(path).graph
    assert [i.name for i in g.input] == [SPARSE_INPUT, DENSE_INPUT, "genres"]
    assert [o.name for o in g.output] == ["liked", "loved"]
    assert not g.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")    # symbolic batch dimension
    for n in (1, 7, len(df)):
        x = serving_inputs(m, df.iloc[:n])
        got = run_onnx(path, x)
        want = m.predict(df.iloc[:n])
        assert got["liked"].shape == (n,)
        np.testing.assert_allclose(np.stack([got["liked"], got["loved"]], 1), want, atol=1e-5)
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["format"] == "onnx" and side["opset"] and side["outputs"][0]["content"].startswith("probability")


def test_export_name_clash_and_missing_extra(ml_model, monkeypatch, tmp_path):
    from ctrkit import SparseFeat
    bad = DNN([SparseFeat("a", 5, 4)], dnn_hidden_units=(4,), task_name="sparse_ids")
    with pytest.raises(ExportError, match="clashes"):
        ServingModule(bad)
    import importlib.util as iu
    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ImportError, match=r"onnxscript.*pip install 'ctrkit\[export\]'"):
        export_onnx(ml_model[0], str(tmp_path / "x.onnx"))
