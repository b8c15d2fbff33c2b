"""The shared conformance suite: every registered tabular model goes through the checks of ``ctrkit.testing``
(the same one call users run on their own models); below them, the tests of the library's folding of the first
layer, and the export parity of the sequential models."""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import os

import numpy as np
import pandas as pd
import pytest
import torch

import ctrkit.models  # noqa: F401  (registers every model)
from ctrkit import DenseFeat, FeatureEncoder, SparseFeat, VarLenSparseFeat
from ctrkit.data import to_tensor_data
from ctrkit.registry import MODELS, build_model, model_arguments
from ctrkit.testing import parametrize_with_checks

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
    "DIN": dict(dnn_hidden_units=(32, 16), att_hidden_size=(16, 8), history_feature_list=["item_id"]),
    "NFM": dict(dnn_hidden_units=(32, 16)),
    "PNN": dict(dnn_hidden_units=(32, 16), use_inner=True, use_outter=True, kernel_type="mat"),
    "AFM": dict(attention_factor=8),
    "AFN": dict(ltl_hidden_size=16, afn_dnn_hidden_units=(32, 16)),
    "CCPM": dict(conv_kernel_width=(3, 2), conv_filters=(4, 4), dnn_hidden_units=(32,)),
    "DIFM": dict(att_head_num=2, dnn_hidden_units=(32, 16)),
    "FiBiNET": dict(dnn_hidden_units=(32, 16), reduction_ratio=3),
    "IFM": dict(dnn_hidden_units=(32, 16)),
    "MLR": dict(region_num=3),
    "ONN": dict(dnn_hidden_units=(32, 16)),
    "DIEN": dict(dnn_hidden_units=(32, 16), att_hidden_units=(16, 8), gru_type="AUGRU",
                 history_feature_list=["item_id"]),
    "FinalMLP": dict(mlp1_hidden_units=(32, 16), mlp2_hidden_units=(16, 16), fs_hidden_units=(16,), num_heads=2),
    "GDCN": dict(cross_num=2, dnn_hidden_units=(32, 16)),
    "MaskNet": dict(dnn_hidden_units=(32, 16)),
    # sequential (next-item) models read item sequences, not tabular rows: their own conformance suite is in
    # tests/models/test_sequential.py (these sizes are used there)
    "SASRec": dict(embedding_dim=16, max_len=20, num_blocks=1, num_heads=2),
    "FAME": dict(embedding_dim=16, max_len=20, num_blocks=2, num_heads=2, num_experts=2),
}
def build(name, cols, tasks=("finish", "like"), types=("binary", "binary"), **extra):
    kw = dict(SMALL[name], **extra)
    kw.setdefault("device", DEVICE)
    if "dnn_dropout" not in model_arguments(name)[0]:      # LR and FM have no MLP to drop out of
        kw.pop("dnn_dropout", None)
    if not getattr(MODELS[name], "multitask", False):      # single-task models: the first task
        tasks, types = tasks[:1], types[:1]
    return build_model(name, cols, list(tasks), list(types), **kw)


def factory_for(name):
    """``factory(feature_columns, task_names, task_types) -> model`` for registered model ``name`` (small)."""
    def factory(cols, tasks, types):
        return build(name, cols, tasks, types)      # a single-task model takes the first task
    factory.__name__ = name
    return factory


def tasks_of(model):
    return model.task_names


ALL = sorted(n for n, c in MODELS.items() if not getattr(c, "sequential", False))  # see test_sequential.py
# models whose first layer reads [embeddings | dense] through one GEMM: predict folds it into the tables
FOLDED = {"DNN", "SharedBottom", "MMoE", "OMoE"}


def test_every_model_has_a_config():
    built_in = {n for n, c in MODELS.items() if c.__module__.startswith("ctrkit.")}  # not docs' own models
    assert built_in <= set(SMALL), f"add conformance sizes for {built_in - set(SMALL)}"


def _mmoe_fm(cols, tasks, types):
    return build("MMoE", cols, tasks, types, use_fm=True)


def _mmoe_cross(cols, tasks, types):
    return build("MMoE", cols, tasks, types, cross_layers=2)


_mmoe_fm.__name__ = "MMoE_use_fm"
_mmoe_cross.__name__ = "MMoE_cross"
# options that change a model's forward pass get the whole suite too (export, save / load, determinism, ...)
VARIANTS = {"MMoE_use_fm": _mmoe_fm, "MMoE_cross": _mmoe_cross}


@parametrize_with_checks({**{name: factory_for(name) for name in ALL}, **VARIANTS})
def test_conformance(factory, check):
    """Every registered tabular model passes every check of ``ctrkit.testing`` (what users run on theirs)."""
    check(factory)


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
# The tabular models' ONNX / torch.export parity is a check of ctrkit.testing (above); the sequential
# next-item models read item sequences, so theirs is here: on random valid item sequences, within 1e-5.
PARITY_ATOL = 1e-5
_ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
SEQUENTIAL = sorted(n for n, c in MODELS.items() if getattr(c, "sequential", False))


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


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_sequential_export_parity(name, fmt, tmp_path):
    if fmt == "onnx" and _ONNX_MISSING:
        pytest.skip(f"ONNX export needs the 'export' extra (pip install 'ctrkit[export]'); missing: {_ONNX_MISSING}")
    from ctrkit.export import example_inputs, export_onnx, export_torch, parity
    model = MODELS[name](num_items=60, **SMALL[name], device=DEVICE)
    inputs = example_inputs(model, n=300, seed=5)
    n = len(next(iter(inputs.values())))
    one = {k: v[n // 2:n // 2 + 1] for k, v in inputs.items()}                      # dynamic batch: one row
    if fmt == "onnx":
        path = export_onnx(model, str(tmp_path / "m.onnx"), verify=False)
    else:
        path = export_torch(model, str(tmp_path / "m.pt2"), verify=False)
    d_all, d_one = parity(model, path, inputs), parity(model, path, one)
    assert d_all <= PARITY_ATOL and d_one <= PARITY_ATOL, \
        f"{name} {fmt}: max abs diff {d_all:.3g} on {n} rows of random item sequences, {d_one:.3g} on one row"


TABULAR = [n for n in ALL if not MODELS[n].conformance_tags.get("needs_sequence")]   # census: no sequences


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
    """``predict`` folds the first layer into the embedding tables exactly for the FOLDED models, and (as the
    generic check_predict_equals_forward, here on the census split) gives the plain forward pass's
    probabilities; the folded tables are rebuilt after the weights change (fused Adam leaves tensor version
    counters alone, so a cache keyed on them would serve stale tables)."""
    built = _count_inference_folds(monkeypatch)
    enc, x_tr, y_tr, x_te = census_parity_data
    model = build(name, enc.feature_columns, tasks=("income", "marital"))
    model.compile("adam", lr=0.01)
    data = to_tensor_data(x_te, model.feature_columns, model.encoder).to(model.device)
    y = y_tr[tasks_of(model)]
    if getattr(model, "conformance_tags", {}).get("nested_tasks"):   # ESMM: the second label within the first
        y = y.assign(**{y.columns[1]: y.iloc[:, 0] * y.iloc[:, 1]})
    for _ in range(2):   # predict, train on, predict again
        model.fit(x_tr, y, batch_size=256, epochs=1, verbose=0)
        model.eval()
        with torch.inference_mode():
            ref = model.logits_to_predictions(model.stack_outputs(model(data))).cpu().numpy()
        np.testing.assert_allclose(model.predict(x_te), ref, rtol=0, atol=1e-5)
    assert (len(built) > 0) == (name in FOLDED), built


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
