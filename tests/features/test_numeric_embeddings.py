"""Numeric feature embeddings: the spec, the layer's three encodings, the encoder's fitted bin edges (in memory and
chunk by chunk), saving, the folded first layer, ONNX and the conformance suite with embedded numeric fields."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from ctrkit import DNN, DeepFM, DenseFeat, FeatureEncoder, MMoE, NumericEmbedding, SparseFeat
from ctrkit.data import TensorData
from ctrkit.datasets import census_feature_types, load_census_income
from ctrkit.exceptions import ModelFormatError, SchemaError
from ctrkit.features import FeatureColumns, feature_from_dict, feature_to_dict
from ctrkit.layers.fold import no_training_fold
from ctrkit.layers.numeric import NumericEmbeddings
from ctrkit.preprocessing import quantiles
from ctrkit.testing import check_model

SPARSE = ["uid", "user_city", "item_id", "author_id", "channel"]
DENSE = ["duration_time", "time"]


@pytest.fixture(scope="module")
def census() -> pd.DataFrame:
    X, _ = load_census_income(group=1)
    return X.iloc[:30000].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ the spec
def test_spec_round_trips_through_json_and_deepctr_denses_are_unchanged():
    for e in (NumericEmbedding("quantile", [-1, 0, 2.5], embedding_dim=3),
              NumericEmbedding("ple", np.array([0.0, 1.0, 4.0]), embedding_dim=4, activation="relu"),
              NumericEmbedding("periodic", embedding_dim=5, n_frequencies=3, sigma=0.5)):
        f = DenseFeat("x", embedding=e)
        back = feature_from_dict(json.loads(json.dumps(feature_to_dict(f))))
        assert back == f and isinstance(back.embedding, NumericEmbedding) and back.embedding.boundaries == e.boundaries
    assert NumericEmbedding("periodic").activation == "relu" and NumericEmbedding("ple", (0, 1)).activation is None
    plain = DenseFeat("age", 1, "float32")          # DeepCTR's positional arguments
    assert plain.embedding is None and "embedding" not in feature_to_dict(plain)
    assert feature_from_dict({"type": "DenseFeat", "name": "age", "dimension": 1, "dtype": "float32"}) == plain


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="bins"), "kind must be one of"),
    (dict(kind="ple"), "at least 2 finite, strictly increasing"),
    (dict(kind="quantile", boundaries=(0, 2, 1)), "strictly increasing"),
    (dict(kind="ple", boundaries=(0, 0)), "strictly increasing"),
    (dict(kind="ple", boundaries=(0, math.inf)), "finite"),
    (dict(kind="periodic", boundaries=(0, 1)), "take no boundaries"),
    (dict(kind="periodic", sigma=0.0), "sigma must be a number > 0"),
    (dict(kind="periodic", embedding_dim=0), "embedding_dim must be an int >= 1"),
    (dict(kind="periodic", activation="tanh"), "activation must be"),
])
def test_spec_rejects_bad_arguments_with_the_fix(kwargs, message):
    with pytest.raises(SchemaError, match=message):
        NumericEmbedding(**kwargs)


def test_an_embedding_needs_a_one_value_dense_feature():
    with pytest.raises(SchemaError, match="needs dimension=1"):
        DenseFeat("v", 3, embedding=NumericEmbedding("periodic"))


# ------------------------------------------------------------------------------------------------ the layer
def test_quantile_bins_values_by_edges_with_a_nan_row():
    e = NumericEmbedding("quantile", (0.0, 1.0, 3.0, 5.0), embedding_dim=2)
    layer = NumericEmbeddings([DenseFeat("a", embedding=e)])
    table = layer.blocks[0].table
    x = torch.tensor([[-7.0], [0.0], [1.0], [1.5], [3.0], [4.0], [99.0], [math.nan]])
    got = layer(x)[2][:, 0]
    # bins (-inf, 1], (1, 3], (3, inf); NaN: the 4th row
    want_rows = [0, 0, 0, 1, 1, 2, 2, 3]
    torch.testing.assert_close(got, table[want_rows])


def test_ple_is_the_papers_piecewise_linear_encoding():
    e = NumericEmbedding("ple", (0.0, 1.0, 3.0), embedding_dim=2)
    layer = NumericEmbeddings([DenseFeat("a", embedding=e)])
    block = layer.blocks[0]
    with torch.no_grad():                    # identity map: the output is the encoding itself
        block.weight.copy_(torch.eye(2).unsqueeze(0))
        block.bias.zero_()
        block.missing.fill_(7.0)
    x = torch.tensor([[-1.0], [0.5], [1.0], [2.0], [5.0], [math.nan]])
    got = layer(x)[2][:, 0]
    want = torch.tensor([[-1.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [1.0, 2.0], [7.0, 7.0]])
    torch.testing.assert_close(got, want)


def test_periodic_is_sin_and_cos_of_trainable_frequencies():
    e = NumericEmbedding("periodic", embedding_dim=4, n_frequencies=2, activation=None)
    layer = NumericEmbeddings([DenseFeat("a", embedding=e), DenseFeat("b")])
    block = layer.blocks[0]
    with torch.no_grad():
        block.frequencies.copy_(torch.tensor([[0.25, 0.1]]))
        block.weight.copy_(torch.eye(4).unsqueeze(0))
        block.bias.zero_()
    x = torch.tensor([[1.0, 5.0], [-2.0, 5.0]])
    v = 2 * math.pi * torch.tensor([[0.25, 0.1], [-0.5, -0.2]])
    torch.testing.assert_close(layer(x)[4][:, 0], torch.cat([v.sin(), v.cos()], dim=1))
    assert block.frequencies.requires_grad


def test_fields_join_the_embedding_group_of_their_width():
    cols = [SparseFeat("u", 10, 4), DenseFeat("d0"),
            DenseFeat("d1", embedding=NumericEmbedding("ple", (0, 1, 2), embedding_dim=4)),
            DenseFeat("d2", embedding=NumericEmbedding("periodic", embedding_dim=6))]
    m = DeepFM(cols[:2] + cols[2:3], cols[:2] + cols[2:3], dnn_hidden_units=(8,))
    assert m.embedding.group_field_names == [["u", "d1"]] and m.input_dim == 2 * 4 + 2
    m2 = MMoE(cols, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
              task_names=["a", "b"], task_types=["binary", "binary"])
    assert m2.embedding.group_dims == [4, 6] and m2.embedding.group_field_names == [["u", "d1"], ["d2"]]
    assert m2.input_dim == 4 + 4 + 6 + 3            # two width-4 fields, one width-6 field, three dense values
    with pytest.raises(ValueError, match="one embedding_dim for every SparseFeat / VarLenSparseFeat / numeric"):
        DeepFM(cols, cols, dnn_hidden_units=(8,))


def test_folded_first_layer_trains_the_numeric_fields_like_the_plain_gemm(monkeypatch):
    from ctrkit.layers.fold import FoldedTrainingProjection
    monkeypatch.setattr(FoldedTrainingProjection, "pays", lambda self, weight, batch: True)
    cols = [SparseFeat("u", 30, 8), SparseFeat("i", 20, 8), DenseFeat("d"),
            DenseFeat("p", embedding=NumericEmbedding("ple", np.linspace(-2, 2, 6), embedding_dim=8)),
            DenseFeat("q", embedding=NumericEmbedding("periodic", embedding_dim=8, n_frequencies=3))]
    g = torch.Generator().manual_seed(0)
    batch = TensorData(torch.randint(0, 20, (300, 2), generator=g), torch.randn(300, 3, generator=g))
    m = MMoE(cols, num_experts=2, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(4,),
             task_names=["a", "b"], task_types=["binary", "binary"])
    grads = []
    for ctx in (torch.enable_grad, no_training_fold):
        m.zero_grad()
        with ctx():
            out = m(batch)
            sum(v.sum() for v in out.values()).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert any("numeric" in n for n in grads[0]) and grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-4, msg=n)


# ------------------------------------------------------------------------------------------------ the encoder
def test_encoder_fits_equal_frequency_edges_in_the_encoded_scale(census):
    _, dense = census_feature_types()
    enc = FeatureEncoder(dense=dense, numeric_embedding="ple", n_bins=8).fit(census)
    out = enc.transform(census)
    cols = {f.name: f for f in enc.feature_columns}
    age = cols["age"].embedding
    assert age.kind == "ple" and age.n_bins == 8 and age.embedding_dim == 8
    shares = [(out["age"] <= b).mean() for b in age.boundaries[1:-1]]
    assert np.allclose(shares, np.arange(1, 8) / 8, atol=0.03), shares
    assert age.boundaries[0] == pytest.approx(out["age"].min(), abs=1e-5)
    assert age.boundaries[-1] == pytest.approx(out["age"].max(), abs=1e-5)
    # 96% zeros: the zero is an edge of its own and the other bins split the non-zero values
    gains = cols["capital_gains"].embedding
    zero = float(out["capital_gains"][census["capital_gains"].to_numpy() == 0][0])
    assert gains.boundaries[0] == pytest.approx(zero) and gains.n_bins >= 6
    nonzero = out["capital_gains"][census["capital_gains"].to_numpy() > 0]
    inner = [(nonzero <= b).mean() for b in gains.boundaries[2:-1]]
    assert max(np.diff([0.0, *inner, 1.0])) < 0.35, inner


def test_chunked_fit_gives_the_in_memory_edges_also_when_sampling(census, monkeypatch):
    _, dense = census_feature_types()
    kw = dict(dense=dense, numeric_embedding={"age": "quantile", "dividends_from_stocks": "ple",
                                              "wage_per_hour": {"kind": "periodic", "sigma": 0.5}}, n_bins=10)
    for size in (quantiles.SAMPLE_SIZE, 3000):       # whole column, then a 3,000-value sample of 30,000 rows
        monkeypatch.setattr(quantiles, "SAMPLE_SIZE", size)
        whole = FeatureEncoder(**kw).fit(census)
        chunked = FeatureEncoder(**kw)
        for lo in range(0, len(census), 7001):
            chunked.partial_fit(census.iloc[lo:lo + 7001])
        chunked.finish_partial_fit()
        assert chunked.feature_columns == whole.feature_columns
    sampled = whole.numeric_embeddings_["age"]
    monkeypatch.setattr(quantiles, "SAMPLE_SIZE", 10 ** 6)
    exact = FeatureEncoder(**kw).fit(census).numeric_embeddings_["age"]
    out = whole.transform(census)["age"]
    ranks = [(out <= b).mean() for b in sampled.boundaries[1:-1]]
    exact_ranks = [(out <= b).mean() for b in exact.boundaries[1:-1]]
    assert len(ranks) == len(exact_ranks) and np.allclose(ranks, exact_ranks, atol=0.03)
    assert whole.numeric_embeddings_["wage_per_hour"] == NumericEmbedding("periodic", sigma=0.5, embedding_dim=8)
    assert "num_persons_worked_for_employer" not in whole.numeric_embeddings_


def test_constant_all_missing_and_out_of_range_columns(census):
    df = pd.DataFrame({"c": 3.0, "n": math.nan, "x": census["age"].astype(float)})
    enc = FeatureEncoder(dense=["c", "n", "x"], numeric_embedding="quantile", embedding_dim=4).fit(df.iloc[:500])
    e = enc.numeric_embeddings_
    assert e["c"].boundaries == (0.0, 1.0) and e["n"].boundaries == (0.0, 1.0)
    cols = list(enc.feature_columns)
    m = MMoE(FeatureColumns(cols + [SparseFeat("u", 5, 4)], encoder=enc), num_experts=2,
             expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,), task_names=["a", "b"],
             task_types=["binary", "binary"])
    test = pd.DataFrame({"c": [3.0, -1e9, math.nan], "n": [1.0, 2.0, math.nan], "x": [1e12, -1e12, math.inf],
                         "u": [0, 1, 2]})
    x = enc.transform(test)
    x["u"] = test["u"].to_numpy()
    assert np.isfinite(m.predict(x)).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(numeric_embedding="bins"), "must be one of"),
    (dict(numeric_embedding={"x": {"kind": "ple", "boundaries": [0, 1]}}), "are fitted by the encoder"),
    (dict(numeric_embedding={"kind": "ple", "width": 3}), "unknown option"),
    (dict(numeric_embedding="ple", n_bins=0), "n_bins for dense column 'x' must be an int >= 1"),
    (dict(numeric_embedding={"y": "ple"}), r"names \['y'\], which are not dense columns"),
])
def test_encoder_option_errors_name_the_column_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureEncoder(dense=["x"], **kwargs).fit(pd.DataFrame({"x": [1.0, 2.0]}))


def test_encoder_saves_its_edges_and_reads_files_written_before_them(census):
    enc = FeatureEncoder(sparse=["race"], dense=["age", "wage_per_hour"],
                         numeric_embedding={"age": "ple", "wage_per_hour": "periodic"}).fit(census.iloc[:2000])
    back = FeatureEncoder.from_json(enc.to_json())
    assert back.feature_columns == enc.feature_columns and back.numeric_embedding == enc.numeric_embedding
    d = enc.to_dict()
    del d["state"]["numeric_embeddings_"]
    d["params"].pop("numeric_embedding"), d["params"].pop("n_bins")
    old = FeatureEncoder.from_dict(d)
    assert [getattr(f, "embedding", None) for f in old.feature_columns] == [None, None, None]
    d = enc.to_dict()
    d["state"]["numeric_embeddings_"]["age"]["boundaries"] = [2, 1]
    with pytest.raises(ModelFormatError, match="wrong type"):
        FeatureEncoder.from_dict(d)


# ------------------------------------------------------------------------------------------------ models
def _embedded(kind: str):
    """A conformance factory's columns with the dense ones embedded (edges fitted on the check data)."""
    from ctrkit.testing.data import load_check_data
    data = load_check_data()
    enc = FeatureEncoder(sparse=data.encoder.sparse_columns_, dense=data.encoder.dense_columns_, embedding_dim=4,
                         numeric_embedding={"kind": kind, "n_frequencies": 4} if kind == "periodic" else kind,
                         n_bins=6).fit(data.byterec)
    by_name = {f.name: f for f in enc.feature_columns}

    def embed(cols):
        return FeatureColumns([by_name.get(f.name, f) if isinstance(f, DenseFeat) else f for f in cols],
                              encoder=getattr(cols, "encoder", None))
    return embed


@pytest.mark.parametrize("model, kind", [("MMoE", "ple"), ("PLE", "quantile"), ("ESMM", "periodic"),
                                         ("DeepFM", "quantile"), ("AutoInt", "periodic"), ("xDeepFM", "ple")])
def test_conformance_with_embedded_numeric_fields(model, kind):
    from ctrkit.registry import build_model
    small = {"MMoE": dict(num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,)),
             "PLE": dict(shared_expert_num=1, specific_expert_num=1, num_levels=2, expert_dnn_hidden_units=(8,),
                         tower_dnn_hidden_units=(4,)),
             "ESMM": dict(tower_dnn_hidden_units=(8,)), "DeepFM": dict(dnn_hidden_units=(8,)),
             "AutoInt": dict(att_layer_num=1, att_head_num=2, dnn_hidden_units=(8,)),
             "xDeepFM": dict(dnn_hidden_units=(8,), cin_layer_size=(4,))}[model]
    embed = _embedded(kind)

    def factory(cols, names, types):
        cols = embed(cols)
        if model in ("MMoE", "PLE", "ESMM"):
            m = build_model(model, cols, names, types, **small)
        else:
            m = build_model(model, cols, names[:1], types[:1], **small)
        if any(isinstance(f, DenseFeat) and f.name in DENSE for f in m.feature_columns):
            assert m.embedding.numeric is not None, "the dense columns were not embedded"
        return m
    factory.__name__ = f"{model}[{kind}]"
    checks = None if model == "MMoE" else ["forward_contract", "learns", "save_load_round_trip"]
    if model in ("ESMM", "DeepFM"):       # with MMoE's full run: ONNX parity for each kind
        checks.append("onnx_parity")
    report = check_model(factory, checks=checks)
    assert all(v == "passed" or v.startswith("skipped") for v in report.values()), report


def test_sparse_tables_keep_sparse_adam_and_the_numeric_fields_train_densely(byterec):
    enc = FeatureEncoder(sparse=SPARSE, dense=DENSE, embedding_dim=4, numeric_embedding="ple", n_bins=6).fit(byterec)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=["finish", "like"], task_types=["binary", "binary"], sparse=True)
    m.compile("adam", "binary_crossentropy")
    before = {n: p.detach().clone() for n, p in m.named_parameters() if n.startswith("embedding.")}
    m.fit(byterec, byterec[["finish", "like"]], batch_size=50, epochs=1, verbose=0)
    opts = [type(o).__name__ for o in getattr(m.trainer.optimizer, "optimizers", [m.trainer.optimizer])]
    assert opts == ["SparseAdam", "Adam"], opts
    moved = [n for n, p in m.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert "embedding.weights.0" in moved and "embedding.numeric.blocks.0.weight" in moved, moved


def test_an_on_disk_store_fitted_chunk_by_chunk_carries_the_in_memory_edges(census, tmp_path):
    pytest.importorskip("h5py")
    from ctrkit.data import H5Store, encode_to_store
    df = census.iloc[:6000].copy()
    df["label"] = (df["age"] > 40).astype("float32")
    df.to_csv(tmp_path / "raw.csv", index=False)
    kw = dict(sparse=["race", "sex"], dense=["age", "capital_gains", "weeks_worked_in_year"], embedding_dim=4,
              numeric_embedding="ple", n_bins=8)
    store = encode_to_store(str(tmp_path / "raw.csv"), FeatureEncoder(**kw), str(tmp_path / "s.h5"), ["label"],
                            chunksize=1700)
    in_memory = FeatureEncoder(**kw).fit(pd.read_csv(tmp_path / "raw.csv"))
    assert list(store.feature_columns) == list(in_memory.feature_columns)
    reopened = H5Store(str(tmp_path / "s.h5"))
    assert list(reopened.feature_columns) == list(in_memory.feature_columns)
    m = DNN(store.feature_columns, dnn_hidden_units=(8,), task_name="label")
    m.compile("adam", "binary_crossentropy", metrics=["auc"], lr=1e-2)
    m.fit(store, batch_size=512, epochs=3, verbose=0)
    res = m.evaluate(store)
    assert res["auc"] > 0.95, res     # the label is a threshold of an embedded column
