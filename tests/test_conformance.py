"""The shared conformance suite: every registered model goes through the same checks on real samples."""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import constant_logloss

import ctrkit.models  # noqa: F401  (registers every model)
from ctrkit import DenseFeat, FeatureEncoder, SparseFeat, VarLenSparseFeat, load_model
from ctrkit.data import to_tensor_data
from ctrkit.registry import MODELS, build_model, model_arguments

# CTRKIT_TEST_DEVICE=cuda runs the whole suite on a GPU (the models must run there unchanged); CI uses the CPU.
DEVICE = os.environ.get("CTRKIT_TEST_DEVICE", "cpu")

# Small sizes per model; a registered model missing here fails test_every_model_has_a_config.
SMALL = {
    "DNN": dict(dnn_hidden_units=(32, 16)),
    "SharedBottom": dict(bottom_dnn_hidden_units=(32,), tower_dnn_hidden_units=(8,)),
    "OMoE": dict(num_experts=3, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,)),
    "MMoE": dict(num_experts=3, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,)),
    "PLE": dict(shared_expert_num=1, specific_expert_num=2, num_levels=2, expert_dnn_hidden_units=(16,),
                gate_dnn_hidden_units=(), tower_dnn_hidden_units=(8,)),
    "ESMM": dict(tower_dnn_hidden_units=(16, 8)),
    "LR": dict(),
    "FM": dict(),
    "WDL": dict(dnn_hidden_units=(32, 16)),
    "DeepFM": dict(dnn_hidden_units=(32, 16)),
    "DCN": dict(cross_num=2, cross_parameterization="vector", dnn_hidden_units=(32, 16)),
    "DCNMix": dict(cross_num=2, low_rank=4, num_experts=2, dnn_hidden_units=(32, 16)),
    "xDeepFM": dict(dnn_hidden_units=(32, 16), cin_layer_size=(8, 8)),
    "AutoInt": dict(att_layer_num=2, att_head_num=2, dnn_hidden_units=(32, 16)),
    "DIN": dict(dnn_hidden_units=(32, 16), att_hidden_size=(16, 8)),
    # sequential (next-item) models read item sequences, not tabular rows: their own conformance suite is in
    # tests/test_sequential.py (these sizes are used there)
    "SASRec": dict(embedding_dim=16, max_len=20, num_blocks=1, num_heads=2),
    "FAME": dict(embedding_dim=16, max_len=20, num_blocks=2, num_heads=2, num_experts=2),
}
# Interaction parts over field embeddings: without a SparseFeat / VarLenSparseFeat these must raise a clear error.
NEEDS_SPARSE = {"FM", "DeepFM", "xDeepFM", "AutoInt", "DIN"}
# ESMM's tasks are CTR and CTCVR: binary by definition, so a regression task must raise a clear error.
BINARY_ONLY = {"ESMM"}
# DIN reads behaviour sequences: its inputs get `hist_<item>` (see `inputs_for`).
SEQUENCE_MODELS = {"DIN"}


def build(name, cols, tasks=("finish", "like"), types=("binary", "binary"), **extra):
    kw = dict(SMALL[name], **extra)
    kw.setdefault("device", DEVICE)
    if "dnn_dropout" not in model_arguments(name)[0]:      # LR and FM have no MLP to drop out of
        kw.pop("dnn_dropout", None)
    if not getattr(MODELS[name], "multitask", False):      # single-task models: the first task
        tasks, types = tasks[:1], types[:1]
    return build_model(name, cols, list(tasks), list(types), **kw)


def inputs_for(name, enc, df, item, maxlen=5):
    """``(feature columns, input frame, extra constructor kwargs)`` for model ``name`` on ``df``.

    Every model reads the raw frame through the encoder, except the sequence models: they get the encoded frame
    plus `hist_<item>`, the ids of `item` in the preceding rows (0 to `maxlen` of them, cycling, so histories are
    empty, partly padded and full), declared to share `item`'s table. Without `item` among the encoded features
    (the dense-only encoder) the columns are left as they are: the model must then refuse them.
    """
    if name not in SEQUENCE_MODELS or item not in enc.sparse_columns_:
        return enc.feature_columns, df, ({"history_feature_list": [item]} if name in SEQUENCE_MODELS else {})
    enc_x = enc.transform(df)
    ids = enc_x[item]
    hist = np.zeros((len(df), maxlen), dtype=np.int64)
    for i in range(len(df)):
        prev = ids[max(0, i - i % (maxlen + 1)):i][::-1]
        hist[i, :len(prev)] = prev
    x = pd.DataFrame({k: (list(v) if v.ndim > 1 else v) for k, v in enc_x.items()}, index=df.index)
    x["hist_" + item] = list(hist)
    f = next(c for c in enc.feature_columns if c.name == item)
    cols = list(enc.feature_columns) + [VarLenSparseFeat(
        SparseFeat("hist_" + item, f.vocabulary_size, f.embedding_dim, embedding_name=item), maxlen=maxlen)]
    return cols, x, {"history_feature_list": [item]}


def tasks_of(model):
    return model.task_names


ALL = sorted(n for n, c in MODELS.items() if not getattr(c, "sequential", False))  # see test_sequential.py


def test_every_model_has_a_config():
    assert set(MODELS) <= set(SMALL), f"add conformance sizes for {set(MODELS) - set(SMALL)}"


@pytest.mark.parametrize("name", ALL)
def test_learns_real_sample_beats_constant(name, byterec_encoded):
    enc, df, y = byterec_encoded
    cols, df, kw = inputs_for(name, enc, df, "item_id")
    model = build(name, cols, **kw)
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
    cols, df, kw = inputs_for(name, enc, df, "item_id")
    model = build(name, cols, **kw)
    model.compile("adam", metrics=["auc"])
    batch = to_tensor_data(df.iloc[:1], model.feature_columns, model.encoder).to(model.device)
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
    cols, x, kw = inputs_for(name, enc, byterec, "item_id")
    if kind == "dense_only" and name in NEEDS_SPARSE:
        with pytest.raises(ValueError, match="needs at least one SparseFeat"):
            build(name, cols, **kw)
        return
    model = build(name, cols, **kw)
    model.compile("adam", lr=0.01)
    y = byterec[tasks_of(model)].astype("float32")
    h = model.fit(x, y, batch_size=50, epochs=3, verbose=0)
    assert np.isfinite(h.history["loss"]).all()
    assert model.predict(x).shape == (len(byterec), len(tasks_of(model)))


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip(name, byterec_encoded, tmp_path):
    enc, df, y = byterec_encoded
    cols, df, kw = inputs_for(name, enc, df, "item_id")
    model = build(name, cols, **kw)
    model.compile("adam", metrics=["auc"])
    model.fit(df, y[tasks_of(model)], batch_size=64, epochs=1, verbose=0)
    model.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"), device=DEVICE)
    assert type(back) is type(model) and back.task_names == model.task_names
    np.testing.assert_array_equal(back.predict(df), model.predict(df))     # the encoder travels too
    assert set(back.evaluate(df, y[tasks_of(model)])) == set(model.evaluate(df, y[tasks_of(model)]))


@pytest.mark.parametrize("name", ALL)
def test_seed_determinism(name, byterec_encoded):
    enc, df, y = byterec_encoded
    cols, df, kw = inputs_for(name, enc, df, "item_id")
    states = []
    for _ in range(2):
        model = build(name, cols, seed=7, dnn_dropout=0.2, **kw)
        model.compile("adam")
        model.fit(df, y[tasks_of(model)], batch_size=32, epochs=2, verbose=0)
        states.append(model.state_dict())
    for k in states[0]:
        if DEVICE == "cpu":
            assert torch.equal(states[0][k], states[1][k]), k
        else:  # CUDA's embedding backward adds gradients with atomics: the summation order (not the seed) varies
            torch.testing.assert_close(states[0][k], states[1][k], rtol=1e-4, atol=1e-5, msg=k)
    other = build(name, cols, seed=8, **kw)
    assert any(not torch.equal(states[0][k].float(), other.state_dict()[k].float()) for k in states[0]
               if states[0][k].is_floating_point())


@pytest.mark.parametrize("name", ALL)
def test_varlen_and_regression(name, movielens):
    enc = FeatureEncoder(sparse=["user_id", "movie_id", "gender", "occupation"], dense=["age"],
                         varlen={"genres": "|"}).fit(movielens)
    y = pd.DataFrame({"rating": movielens["rating"].astype("float32"),
                      "liked": (movielens["rating"] >= 4).astype("float32"),
                      "loved": (movielens["rating"] >= 5).astype("float32")})
    cols, x, kw = inputs_for(name, enc, movielens, "movie_id")
    if name in BINARY_ONLY:
        with pytest.raises(ValueError, match="binary"):
            build(name, cols, tasks=("rating", "liked"), types=("regression", "binary"), **kw)
        # the var-length part still applies: two nested binary tasks (liked, then loved), as click / purchase
        model = build(name, cols, tasks=("liked", "loved"), **kw)
        model.compile("adam", lr=0.01, metrics=["auc"])
        h = model.fit(x, y[tasks_of(model)], batch_size=32, epochs=15, verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0] and np.isfinite(model.predict(x)).all()
        return
    model = build(name, cols, tasks=("rating", "liked"), types=("regression", "binary"), **kw)
    model.compile("adam", lr=0.01, metrics=["mse", "auc"])
    h = model.fit(x, y[tasks_of(model)], batch_size=32, epochs=15, verbose=0)
    pred = model.predict(x)
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


# ---------------------------------------------------------------------------------------------- export parity
# Every registered model is exported to ONNX (run in onnxruntime) and with torch.export, and both files must give
# the eager model's probabilities within 1e-5: on the census test split for the models that read tabular
# features, on the conformance sample (DIN: its behaviour sequences) or on random valid item sequences (the
# sequential next-item models) for the others.
PARITY_ATOL = 1e-5
_ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def census_parity_data():
    """Census group 1: an encoder fitted on the train split, 2,000 train rows, and the 9,976-row test split."""
    from ctrkit.datasets import census_feature_types, load_census_income, split_indices
    X, y = load_census_income(group=1)
    sparse, dense = census_feature_types()
    tr, _, te = split_indices(len(X), (0.8, 0.1, 0.1), seed=2024)
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X.iloc[tr])
    rows = tr[:2000]
    return enc, X.iloc[rows], y.iloc[rows].astype("float32"), X.iloc[te]


def _parity_model(name, census_parity_data, byterec_encoded):
    """``(model trained briefly, evaluation input, where)`` for the parity check of model ``name``."""
    cls = MODELS[name]
    if getattr(cls, "sequential", False):
        from ctrkit.export import example_inputs
        model = cls(num_items=60, **SMALL[name], device=DEVICE)
        return model, example_inputs(model, n=300, seed=5), "random valid item sequences"
    if name in SEQUENCE_MODELS:
        enc, df, y = byterec_encoded
        cols, x, kw = inputs_for(name, enc, df, "item_id")
        model = build(name, cols, **kw)
        model.compile("adam", lr=0.01)
        model.fit(x, y[tasks_of(model)], batch_size=64, epochs=1, verbose=0)
        return model, x, "the byterec sample"
    enc, x_tr, y_tr, x_te = census_parity_data
    model = build(name, enc.feature_columns, tasks=("income", "marital"))
    model.compile("adam", lr=0.01)
    model.fit(x_tr, y_tr[tasks_of(model)], batch_size=256, epochs=1, verbose=0)   # move off the initial weights
    return model, x_te, "the census test split"


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_parity(name, fmt, census_parity_data, byterec_encoded, tmp_path):
    if fmt == "onnx" and _ONNX_MISSING:
        pytest.skip(f"ONNX export needs the 'export' extra (pip install 'ctrkit[export]'); missing: {_ONNX_MISSING}")
    from ctrkit.export import export_onnx, export_torch, parity, serving_inputs
    model, x, where = _parity_model(name, census_parity_data, byterec_encoded)
    inputs = x if isinstance(x, dict) else serving_inputs(model, x)
    n = len(next(iter(inputs.values())))
    one = {k: v[n // 2:n // 2 + 1] for k, v in inputs.items()}                      # dynamic batch: one row
    if fmt == "onnx":
        path = export_onnx(model, str(tmp_path / "m.onnx"), verify=False)
    else:
        path = export_torch(model, str(tmp_path / "m.pt2"), verify=False)
    d_all, d_one = parity(model, path, inputs), parity(model, path, one)
    assert d_all <= PARITY_ATOL and d_one <= PARITY_ATOL, \
        f"{name} {fmt}: max abs diff {d_all:.3g} on {n} rows of {where}, {d_one:.3g} on one row"


TABULAR = [n for n in ALL if n not in SEQUENCE_MODELS]   # the census split has no behaviour sequences
# models whose first layer reads [embeddings | dense] through one GEMM: predict folds it into the tables
FOLDED = {"DNN", "SharedBottom", "MMoE", "OMoE"}


def _count_inference_folds(monkeypatch) -> list:
    """Record every forward pass computed through folded tables without autograd (predict / evaluate)."""
    from ctrkit.layers import fold
    calls: list = []
    init = fold.FoldedInputProjection.__init__
    monkeypatch.setattr(fold.FoldedInputProjection, "__init__", lambda self, *a: (calls.append(1), init(self, *a))[1])
    apply = fold._FoldedProjection.apply
    monkeypatch.setattr(fold._FoldedProjection, "apply",
                        lambda *a: (torch.is_grad_enabled() or calls.append(1), apply(*a))[1])
    return calls


@pytest.mark.parametrize("name", TABULAR)
def test_predict_equals_plain_forward(name, census_parity_data, monkeypatch):
    """``predict`` (which may fold the first layer into the embedding tables) gives the plain forward pass's
    probabilities; the folded tables are rebuilt after the weights change (fused Adam leaves tensor version
    counters alone, so a cache keyed on them would serve stale tables)."""
    built = _count_inference_folds(monkeypatch)
    enc, x_tr, y_tr, x_te = census_parity_data
    model = build(name, enc.feature_columns, tasks=("income", "marital"))
    model.compile("adam", lr=0.01)
    data = to_tensor_data(x_te, model.feature_columns, model.encoder).to(model.device)
    for _ in range(2):   # predict, train on, predict again
        model.fit(x_tr, y_tr[tasks_of(model)], batch_size=256, epochs=1, verbose=0)
        model.eval()
        with torch.inference_mode():
            ref = model.logits_to_predictions(model.stack_outputs(model(data))).cpu().numpy()
        np.testing.assert_allclose(model.predict(x_te), ref, rtol=0, atol=1e-5)
    assert (len(built) > 0) == (name in FOLDED), built


@pytest.mark.parametrize("name", TABULAR)
def test_deepcopy_of_a_trained_model(name, census_parity_data):
    """``copy.deepcopy`` (what ensembling, scikit-learn-style cloning and many training scripts do) works on a
    trained model: the copy predicts the same, and training it leaves the original alone."""
    enc, x_tr, y_tr, x_te = census_parity_data
    model = build(name, enc.feature_columns, tasks=("income", "marital"))
    model.compile("adam", lr=0.01)
    model.fit(x_tr, y_tr[tasks_of(model)], batch_size=256, epochs=1, verbose=0)
    before = model.predict(x_te)
    twin = copy.deepcopy(model)
    np.testing.assert_allclose(twin.predict(x_te), before, rtol=0, atol=1e-6)
    twin.fit(x_tr, y_tr[tasks_of(model)], batch_size=256, epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(x_te), before, rtol=0, atol=1e-6)
    assert np.abs(twin.predict(x_te) - before).max() > 1e-4


@pytest.mark.parametrize("name", TABULAR)
def test_output_bias_starts_at_label_prior(name, census_parity_data):
    """The first ``fit`` of a new model starts each task's output at its base rate (log-odds); a second ``fit``
    keeps the trained biases; ``init_output_bias=False`` keeps the constructor's."""
    from ctrkit.models.base import label_prior
    enc, x_tr, y_tr, _ = census_parity_data
    Y = torch.tensor(y_tr[["income", "marital"]].to_numpy())
    model = build(name, enc.feature_columns, tasks=("income", "marital"))
    tasks = tasks_of(model)
    model.compile("sgd", lr=1e-12)            # training does not move the biases measurably
    model.fit(x_tr, y_tr[tasks], batch_size=256, epochs=1, verbose=0)
    slots = {t: b.detach() for t, b in model.output_biases().items()}
    if name in BINARY_ONLY:                   # ESMM: the CVR tower starts at P(marital | income) (nested tasks)
        p = Y.mean(0)
        assert float(slots["ctr"]) == pytest.approx(float(torch.logit(p[0])), abs=1e-4)
        cvr = (p[1] / p[0]).clamp(1e-4, 1 - 1e-4)   # census' tasks are not nested: the ratio is clipped
        assert float(slots["cvr"]) == pytest.approx(float(torch.logit(cvr.double())), abs=1e-3)
    else:
        assert sorted(slots) == sorted(tasks)
        for i, t in enumerate(tasks):
            assert float(slots[t]) == pytest.approx(float(label_prior(Y[:, i], "binary")), abs=1e-4), t
    for s in slots.values():
        s.fill_(0.5)
    model.fit(x_tr, y_tr[tasks], batch_size=256, epochs=1, verbose=0)    # not a new model: left alone
    assert all(float(s.detach()) == pytest.approx(0.5, abs=1e-4) for s in model.output_biases().values())
    off = build(name, enc.feature_columns, tasks=("income", "marital"))
    before = {t: b.detach().clone() for t, b in off.output_biases().items()}
    off.compile("sgd", lr=1e-12, init_output_bias=False)
    off.fit(x_tr, y_tr[tasks], batch_size=256, epochs=1, verbose=0)
    for t, b in off.output_biases().items():
        torch.testing.assert_close(b.detach(), before[t], atol=1e-4, rtol=0)


def test_concurrent_predicts_agree_and_folding_keeps_no_state(census_parity_data):
    """Folded tables are built per batch and never kept: concurrent predicts on one model (a threaded server)
    agree with a sequential one, and the input projection holds no tables afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    enc, x_tr, y_tr, x_te = census_parity_data
    model = build("MMoE", enc.feature_columns, tasks=("income", "marital"))
    model.compile("adam", lr=0.01)
    model.fit(x_tr, y_tr[["income", "marital"]], batch_size=256, epochs=1, verbose=0)
    ref = model.predict(x_te)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: model.predict(x_te, batch_size=1024), range(8)))
    for out in outs:
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    held = [k for k, v in vars(model.input_projection).items() if isinstance(v, torch.Tensor)]
    assert held == [], held


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_folding_with_mixed_dims_shared_tables_and_hashing(name, monkeypatch):
    """The folded layout follows the embedding layer's: two embedding sizes (two table groups, features
    interleaved across them), a table shared by two features with different vocabularies, a hashed column, and a
    2-wide dense feature; predict equals the plain forward pass."""
    rng = np.random.default_rng(3)
    n = 3000
    x = {"a": rng.integers(0, 40, n), "b": rng.integers(0, 25, n), "c": rng.integers(0, 30, n),
         "h": rng.integers(0, 10**6, n), "x": rng.random((n, 2)).astype("float32")}
    cols = [SparseFeat("a", 40, 4), SparseFeat("b", 25, 8), SparseFeat("c", 30, 4, embedding_name="a"),
            SparseFeat("h", 60, 8, use_hash=True), DenseFeat("x", 2)]
    y = pd.DataFrame({"t1": ((x["a"] + x["b"]) % 3 == 0).astype("float32"),
                      "t2": (x["x"][:, 0] > 0.5).astype("float32")})
    model = build(name, cols, tasks=("t1", "t2"))
    assert len(model.embedding.group_dims) == 2
    model.compile("adam", lr=0.01)
    model.fit(x, y[tasks_of(model)], batch_size=256, epochs=2, verbose=0)
    data = to_tensor_data(x, model.feature_columns).to(model.device)
    model.eval()
    with torch.inference_mode():
        ref = model.logits_to_predictions(model.stack_outputs(model(data))).cpu().numpy()
    built = _count_inference_folds(monkeypatch)
    np.testing.assert_allclose(model.predict(x), ref, rtol=0, atol=1e-5)
    assert built, "predict did not fold"


@pytest.fixture(scope="module")
def census_dim8(census_parity_data):
    """The census rows of ``census_parity_data`` with an 8-dim encoder: the training fold's cost model folds 8-dim
    embeddings at batch 1,024 (at 4 dims the GEMM is as fast, and is kept)."""
    from ctrkit.datasets import census_feature_types
    _, x_tr, y_tr, _ = census_parity_data
    sparse, dense = census_feature_types()
    return FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=8).fit(x_tr), x_tr, y_tr


def _count_folded_steps(monkeypatch) -> list:
    """Patch the training fold to append to the returned list on every folded step."""
    from ctrkit.layers import fold
    calls: list = []
    apply = fold._FoldedProjection.apply
    monkeypatch.setattr(fold._FoldedProjection, "apply", lambda *a: (calls.append(1), apply(*a))[1])
    return calls


def _grads_with_and_without_training_fold(model, data, calls):
    """Parameter gradients of one training step's loss computed through folded tables and through the GEMM, and
    how many folded steps each ran."""
    from ctrkit.layers import fold
    out, folded_steps = [], []
    for plain in (False, True):
        model.train()
        model.zero_grad(set_to_none=True)
        n = len(calls)
        with fold.no_training_fold() if plain else contextlib.nullcontext():
            logits = model(data)
        folded_steps.append(len(calls) - n)
        loss = sum(((v - 0.3) ** 2).mean() * (i + 1) for i, v in enumerate(logits.values()))
        loss.backward()
        out.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    return out[0], out[1], folded_steps


@pytest.mark.parametrize("name", sorted(FOLDED))
@pytest.mark.parametrize("where", ["census", "mixed"])
def test_training_through_folded_tables_equals_the_gemm(name, where, census_dim8, monkeypatch):
    """In training, the first layer computed through per-step folded tables (``ctrkit.layers.fold``) gives the
    GEMM's loss gradients for every parameter: on the census split (31 fields of one embedding size) and on a
    layout with two embedding sizes interleaved, a table shared by features with different vocabularies, a hashed
    column and a 2-wide dense feature; and a whole ``fit`` through it predicts like one through the GEMM."""
    from ctrkit.layers import fold
    if where == "census":
        enc, x_tr, y_tr = census_dim8
        cols, x, y = enc.feature_columns, x_tr, y_tr[["income", "marital"]]
        tasks = ("income", "marital")
    else:
        rng = np.random.default_rng(4)
        n = 2048
        x = {"a": rng.integers(0, 40, n), "b": rng.integers(0, 25, n), "c": rng.integers(0, 30, n),
             "h": rng.integers(0, 10**6, n), "x": rng.random((n, 2)).astype("float32")}
        cols = [SparseFeat("a", 40, 16), SparseFeat("b", 25, 32), SparseFeat("c", 30, 16, embedding_name="a"),
                SparseFeat("h", 60, 32, use_hash=True), DenseFeat("x", 2)]   # 32-dim: two buckets (25, 60 ids)
        y = pd.DataFrame({"t1": ((x["a"] + x["b"]) % 3 == 0).astype("float32"),
                          "t2": (x["x"][:, 0] > 0.5).astype("float32")})
        tasks = ("t1", "t2")
    model = build(name, cols, tasks=tasks, seed=7)
    data = to_tensor_data({k: v[:1024] for k, v in x.items()} if isinstance(x, dict) else x.iloc[:1024],
                          model.feature_columns, model.encoder).to(model.device)
    folded, plain, steps = _grads_with_and_without_training_fold(model, data, _count_folded_steps(monkeypatch))
    assert steps == [1, 0], f"{name}: folded steps with the fold on / off: {steps}"
    assert folded.keys() == plain.keys()
    for k in plain:
        torch.testing.assert_close(folded[k], plain[k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{name} {k}: {m}")
    # a whole fit through the folded tables ends where one through the GEMM does (float rounding apart)
    preds = []
    for plain_fit in (False, True):
        m = build(name, cols, tasks=tasks, seed=7)
        m.compile("adam", lr=0.01)
        with fold.no_training_fold() if plain_fit else contextlib.nullcontext():
            m.fit(x, y[list(tasks_of(m))], batch_size=512, epochs=1, verbose=0, shuffle=False)
        preds.append(m.predict(x))
    np.testing.assert_allclose(preds[0], preds[1], rtol=0, atol=2e-3)


@pytest.mark.parametrize("case", ["folds", "sparse", "l2_reg_embedding", "input_dropout", "small batch",
                                  "4-dim embeddings", "varlen"])
def test_training_fold_is_used_only_where_it_applies(case, census_dim8, census_parity_data, monkeypatch):
    """The census MMoE at 8 dims and batch 1,024 trains through the folded tables; sparse gradients, embedding L2
    (it reads the lookups), MMoE input dropout (the GEMM reads the dropped-out input), a batch too small to pay for
    the per-step tables, 4-dim embeddings (the GEMM is as fast) and pooled var-length features train through the
    GEMM."""
    enc, x, y = census_dim8
    if case == "4-dim embeddings":
        enc = census_parity_data[0]
    cols, extra, batch = enc.feature_columns, {}, 1024
    y = y[["income", "marital"]]
    if case in ("sparse", "l2_reg_embedding"):
        extra = {case: True if case == "sparse" else 1e-5}
    elif case == "input_dropout":
        extra = {"input_dropout": 0.1}
    elif case == "small batch":
        batch = 64
    elif case == "varlen":
        f = cols[0]
        cols = list(cols) + [VarLenSparseFeat(SparseFeat("seq", f.vocabulary_size, f.embedding_dim,
                                                         embedding_name=f.name), maxlen=3)]
        x = enc.transform(x)
        x["seq"] = np.stack([x[f.name]] * 3, axis=1)
    model = build("MMoE", cols, tasks=("income", "marital"), **extra)
    model.compile("adagrad" if case == "sparse" else "adam", lr=0.01)
    calls = _count_folded_steps(monkeypatch)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    n_batches = -(-len(y) // batch)
    if case == "folds":
        assert len(calls) == n_batches, f"folded {len(calls)} of {n_batches} batches"
        twin = copy.deepcopy(model)            # the cached fold plan and its buffers do not block copying
        twin.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        assert not np.allclose(twin.predict(x), model.predict(x), atol=1e-4)
    else:
        assert not calls, f"{case}: training folded {len(calls)} batches"
