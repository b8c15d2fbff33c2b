"""The shared conformance suite: every registered model goes through the same checks on real samples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import constant_logloss
from ctrkit import DenseFeat, FeatureEncoder, SparseFeat, load_model
from ctrkit.registry import MODELS

# Small sizes per model; a registered model missing here fails test_every_model_has_a_config.
SMALL = {
    "DNN": dict(dnn_hidden_units=(32, 16)),
    "SharedBottom": dict(bottom_dnn_hidden_units=(32,), tower_dnn_hidden_units=(8,)),
    "OMoE": dict(num_experts=3, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,)),
    "MMoE": dict(num_experts=3, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,)),
}


def build(name, cols, tasks=("finish", "like"), types=("binary", "binary"), **extra):
    cls = MODELS[name]
    kw = dict(SMALL[name], **extra)
    if getattr(cls, "multitask", False):
        return cls(cols, task_names=list(tasks), task_types=list(types), **kw)
    return cls(cols, task_name=tasks[0], task=types[0], **kw)


def tasks_of(model):
    return model.task_names


ALL = sorted(MODELS)


def test_every_model_has_a_config():
    assert set(MODELS) <= set(SMALL), f"add conformance sizes for {set(MODELS) - set(SMALL)}"


@pytest.mark.parametrize("name", ALL)
def test_learns_real_sample_beats_constant(name, byterec_encoded):
    enc, df, y = byterec_encoded
    model = build(name, enc.feature_columns)
    model.compile("adam", lr=0.01, metrics=["auc", "logloss"])
    hist = model.fit(df, y[tasks_of(model)], batch_size=32, epochs=12, verbose=0)   # raw frame: encoder applied
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    pred = model.predict(df)
    assert pred.shape == (len(df), len(tasks_of(model))) and np.all((pred >= 0) & (pred <= 1))
    for i, t in enumerate(tasks_of(model)):
        yt = y[t].to_numpy()
        ll = -np.mean(yt * np.log(pred[:, i] + 1e-7) + (1 - yt) * np.log(1 - pred[:, i] + 1e-7))
        assert ll < constant_logloss(yt), f"{name}/{t}: train logloss {ll:.4f} not below constant"


@pytest.mark.parametrize("name", ALL)
def test_forward_contract_and_batch_of_one(name, byterec_encoded):
    enc, df, y = byterec_encoded
    model = build(name, enc.feature_columns)
    model.compile("adam", metrics=["auc"])
    from ctrkit.data import to_tensor_data
    batch = to_tensor_data(enc.transform(df.iloc[:1]), model.feature_columns)
    out = model(batch)
    assert isinstance(out, dict) and list(out) == tasks_of(model)
    assert all(v.shape == (1,) and v.dtype == torch.float32 for v in out.values())
    assert model.predict(df.iloc[[3]]).shape == (1, len(tasks_of(model)))
    model.fit(df.iloc[:5], y[tasks_of(model)].iloc[:5], batch_size=1, epochs=1, verbose=0)   # batches of one
    model.fit(df.iloc[:5], y[tasks_of(model)].iloc[:5], batch_size=1000, epochs=1, verbose=0)  # batch > data


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kind", ["sparse_only", "dense_only"])
def test_only_sparse_or_only_dense(name, kind, byterec):
    enc = FeatureEncoder(sparse=["uid", "item_id", "channel"] if kind == "sparse_only" else [],
                         dense=["duration_time", "time"] if kind == "dense_only" else []).fit(byterec)
    model = build(name, enc.feature_columns)
    model.compile("adam", lr=0.01)
    y = byterec[tasks_of(model)].astype("float32")
    h = model.fit(byterec, y, batch_size=50, epochs=3, verbose=0)
    assert np.isfinite(h.history["loss"]).all()
    assert model.predict(byterec).shape == (len(byterec), len(tasks_of(model)))


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name, byterec_encoded, tmp_path):
    enc, df, y = byterec_encoded
    model = build(name, enc.feature_columns)
    model.compile("adam", metrics=["auc"])
    model.fit(df, y[tasks_of(model)], batch_size=64, epochs=1, verbose=0)
    model.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    assert type(back) is type(model) and back.task_names == model.task_names
    np.testing.assert_array_equal(back.predict(df), model.predict(df))     # the encoder travels too
    assert set(back.evaluate(df, y[tasks_of(model)])) == set(model.evaluate(df, y[tasks_of(model)]))


@pytest.mark.parametrize("name", ALL)
def test_seed_determinism(name, byterec_encoded):
    enc, df, y = byterec_encoded
    states = []
    for _ in range(2):
        model = build(name, enc.feature_columns, seed=7, dnn_dropout=0.2)
        model.compile("adam")
        model.fit(df, y[tasks_of(model)], batch_size=32, epochs=2, verbose=0)
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    other = build(name, enc.feature_columns, seed=8)
    assert any(not torch.equal(states[0][k].float(), other.state_dict()[k].float()) for k in states[0]
               if states[0][k].is_floating_point())


@pytest.mark.parametrize("name", ALL)
def test_varlen_and_regression(name, movielens):
    enc = FeatureEncoder(sparse=["user_id", "movie_id", "gender", "occupation"], dense=["age"],
                         varlen={"genres": "|"}).fit(movielens)
    y = pd.DataFrame({"rating": movielens["rating"].astype("float32"),
                      "liked": (movielens["rating"] >= 4).astype("float32")})
    model = build(name, enc.feature_columns, tasks=("rating", "liked"), types=("regression", "binary"))
    model.compile("adam", lr=0.01, metrics=["mse", "auc"])
    h = model.fit(movielens, y[tasks_of(model)], batch_size=32, epochs=15, verbose=0)
    pred = model.predict(movielens)
    base = float(((y["rating"] - y["rating"].mean()) ** 2).mean())
    assert float(((pred[:, 0] - y["rating"]) ** 2).mean()) < base     # beats the constant (mean) predictor
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_mixed_hand_built_columns_with_shared_table():
    rng = np.random.default_rng(0)
    n = 256
    x = {"item": rng.integers(0, 30, n), "hist": rng.integers(0, 30, (n, 5)), "d": rng.random(n)}
    from ctrkit import MMoE, VarLenSparseFeat
    cols = [SparseFeat("item", 30, 8), VarLenSparseFeat(SparseFeat("hist", 30, 8, embedding_name="item"), 5),
            DenseFeat("d")]
    m = MMoE(cols, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["a", "b"])
    assert m.embedding.weights[0].shape == (30, 8)            # one shared table
    m.compile("adam")
    m.fit(x, np.stack([x["item"] % 2, x["d"] > 0.5], 1), batch_size=64, epochs=1, verbose=0)
