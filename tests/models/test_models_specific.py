"""Behaviour specific to one model (the shared contract is in test_conformance.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import constant_logloss

import ctrkit.models  # noqa: F401  (registers every model)
from ctrkit import (
    AFM,
    AFN,
    CCPM,
    DCN,
    DIEN,
    DIFM,
    DIN,
    ESMM,
    FM,
    IFM,
    MLR,
    NFM,
    ONN,
    PLE,
    PNN,
    WDL,
    AutoInt,
    DeepFM,
    DenseFeat,
    FeatureEncoder,
    FiBiNET,
    SparseFeat,
    VarLenSparseFeat,
    xDeepFM,
)
from ctrkit.data import to_tensor_data
from ctrkit.datasets import load_sample
from ctrkit.layers import (
    AFMLayer,
    BiInteractionPooling,
    ConvLayer,
    InnerProductLayer,
    KMaxPooling,
    LogTransformLayer,
    OuterProductLayer,
)
from ctrkit.layers.fm import FM as FMLayer
from ctrkit.models.multitask.esmm import ctcvr_logit
from ctrkit.registry import MODELS, build_model


def _logloss(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ------------------------------------------------------------------------------------------------ PLE
@pytest.mark.parametrize("shared,specific,levels", [(3, 1, 3), (1, 3, 2), (0, 2, 2), (2, 0, 1)])
def test_ple_unequal_expert_counts(byterec_encoded, shared, specific, levels):
    """DeepCTR-Torch's PLE fails when shared_expert_num != specific_expert_num (and with gate hidden layers
    above level 0); here any counts work, with gate MLPs at every level, and batches of one."""
    enc, df, y = byterec_encoded
    m = PLE(enc.feature_columns, shared_expert_num=shared, specific_expert_num=specific, num_levels=levels,
            expert_dnn_hidden_units=(8,), gate_dnn_hidden_units=(4,), tower_dnn_hidden_units=(4,),
            task_names=["finish", "like"])
    assert [lv.experts.num for lv in m.levels] == [2 * specific + shared] * levels
    m.compile("adam", lr=0.01)
    h = m.fit(df, y, batch_size=32, epochs=3, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    g = m.gate_weights(df.iloc[:7])
    assert set(g) == {"finish", "like"}
    assert g["like"].shape == (7, specific + shared) and np.allclose(g["like"].sum(1), 1, atol=1e-5)
    assert m.predict(df.iloc[[0]]).shape == (1, 2)


def test_cgc_routes_each_task_to_its_own_and_the_shared_experts(byterec_encoded):
    """num_levels=1 is CGC: task 0's output does not depend on task 1's specific experts (nor the reverse),
    but both depend on the shared ones."""
    enc, df, y = byterec_encoded
    m = PLE(enc.feature_columns, shared_expert_num=2, specific_expert_num=3, num_levels=1,
            expert_dnn_hidden_units=(8,), gate_dnn_hidden_units=(), tower_dnn_hidden_units=(4,),
            task_names=["finish", "like"])
    assert m.levels[0].shared_gate is None           # CGC: no shared gate at the (only, last) level
    batch = to_tensor_data(enc.transform(df.iloc[:20]), m.feature_columns)
    m.eval()
    with torch.no_grad():
        before = m(batch)
        w = m.levels[0].experts.biases[-1]
        w[3:6] += 1.0                                # the 3 specific experts of task 1 ("like")
        after = m(batch)
        assert torch.equal(before["finish"], after["finish"])
        assert not torch.allclose(before["like"], after["like"])
        w[6:] += 1.0                                 # the shared experts
        shared = m(batch)
        assert not torch.allclose(after["finish"], shared["finish"])


def test_ple_compare_settings_match_mmoe_size():
    from ctrkit import MMoE
    from ctrkit.compare import MODEL_SETTINGS, CompareConfig
    cfg = CompareConfig()
    cols = [SparseFeat(f"f{i}", 50, 4) for i in range(10)] + [DenseFeat("d", 3)]
    kw = MODEL_SETTINGS["PLE"](cfg)
    ple = PLE(cols, task_names=["a", "b"], **kw)
    mmoe = MMoE(cols, num_experts=cfg.num_experts, expert_dnn_hidden_units=(cfg.expert_units,),
                tower_dnn_hidden_units=(cfg.tower_units,), task_names=["a", "b"])
    assert 2 * kw["specific_expert_num"] + kw["shared_expert_num"] == cfg.num_experts
    assert abs(ple.count_params() / mmoe.count_params() - 1) < 0.10


# ------------------------------------------------------------------------------------------------ ESMM
@pytest.fixture(scope="module")
def ali_ccp():
    df = load_sample("ali_ccp_train")
    dense = [c for c in df.columns if c.startswith("D")]
    sparse = [c for c in df.columns if c not in dense + ["click", "purchase"]]
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(df)
    return enc, df, df[["click", "purchase"]].astype("float32")


def test_esmm_ctcvr_is_ctr_times_cvr(ali_ccp):
    enc, df, y = ali_ccp
    m = ESMM(enc.feature_columns, tower_dnn_hidden_units=(16,), task_names=["click", "purchase"])
    m.compile("adam", lr=0.01)
    m.fit(df, y, batch_size=32, epochs=2, verbose=0)
    p, cvr = m.predict(df), m.predict_cvr(df)
    assert p.shape == (len(df), 2) and cvr.shape == (len(df),)
    np.testing.assert_allclose(p[:, 1], p[:, 0] * cvr, rtol=1e-5)
    assert np.all(p[:, 1] <= p[:, 0] + 1e-7)
    # the logit of the product is exact and finite, with finite gradients, far into saturation
    a = torch.tensor([-80.0, -5.0, 0.0, 5.0, 40.0, 80.0], requires_grad=True)
    b = torch.tensor([80.0, 3.0, 0.0, -2.0, 40.0, 80.0], requires_grad=True)
    z = ctcvr_logit(a, b)
    torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor([1.0, 0, 1, 0, 1, 0])).backward()
    assert torch.isfinite(z).all() and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    ref = torch.sigmoid(a.double()) * torch.sigmoid(b.double())
    torch.testing.assert_close(torch.sigmoid(z.double()), ref, rtol=1e-5, atol=0)


def test_esmm_trains_on_ali_ccp_over_the_entire_space(ali_ccp):
    enc, df, y = ali_ccp
    m = ESMM(enc.feature_columns, tower_dnn_hidden_units=(32, 16), task_names=["click", "purchase"])
    m.compile("adam", lr=0.01, metrics=["auc", "logloss"])
    h = m.fit(df, y, batch_size=20, epochs=15, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0] / 2
    p = m.predict(df)
    for i, t in enumerate(["click", "purchase"]):
        assert _logloss(y[t].to_numpy(), p[:, i]) < constant_logloss(y[t].to_numpy()), t
    assert np.isfinite(m.predict(load_sample("ali_ccp_val"))).all()
    # the loss is BCE on pCTR and on pCTCVR = pCTR * pCVR, over every impression; checked after one epoch (after
    # 15 the training rows are fitted to a loss of ~1e-6, which float32 probabilities near 1 cannot carry)
    m = ESMM(enc.feature_columns, tower_dnn_hidden_units=(32, 16), task_names=["click", "purchase"])
    m.compile("adam", lr=0.01, metrics=["auc", "logloss"])
    m.fit(df, y, batch_size=20, epochs=1, verbose=0)
    p = m.predict(df)
    ev = m.evaluate(df, y)
    pc = m.predict_cvr(df).astype(np.float64) * p[:, 0]
    assert ev["click_loss"] == pytest.approx(_logloss(y["click"].to_numpy(), p[:, 0]), rel=1e-3)
    assert ev["purchase_loss"] == pytest.approx(_logloss(y["purchase"].to_numpy(), pc), rel=1e-3)
    assert ev["click_logloss"] == pytest.approx(ev["click_loss"], rel=1e-3)   # metrics read the probabilities
    with pytest.raises(ValueError, match="binary cross-entropy"):
        m.compile("adam", loss="mse")
    with pytest.raises(ValueError, match="binary"):
        ESMM(enc.feature_columns, task_types=["binary", "regression"])


# ------------------------------------------------------------------------------------------------ DIN
@pytest.fixture(scope="module")
def ml_behaviour():
    """MovieLens-100K: for each rating, the user's previously rated movies (most recent first, up to 8)."""
    from ctrkit.datasets.movielens import ML100K_DIR
    r = pd.read_csv(ML100K_DIR / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "ts"])
    r = r[r.user_id <= 150].sort_values(["user_id", "ts", "movie_id"], kind="mergesort").reset_index(drop=True)
    L, rows = 8, []
    for _, g in r.groupby("user_id", sort=False):
        movies = g.movie_id.to_numpy()
        for i in range(max(0, len(movies) - 15), len(movies)):        # each user's last 15 ratings
            prev = movies[max(0, i - L):i][::-1]
            rows.append((g.user_id.iloc[0], movies[i], list(np.pad(prev, (0, L - len(prev)))), len(prev),
                         float(g.rating.iloc[i] >= 4)))
    x = pd.DataFrame(rows, columns=["user_id", "movie_id", "hist_movie_id", "hist_len", "label"])
    cols = [SparseFeat("user_id", 944, 8), SparseFeat("movie_id", 1683, 8),
            VarLenSparseFeat(SparseFeat("hist_movie_id", 1683, 8, embedding_name="movie_id"), maxlen=L,
                             length_name="hist_len")]
    return cols, x


def test_din_on_behaviour_sequences(ml_behaviour):
    cols, x = ml_behaviour
    m = DIN(cols, ["movie_id"], dnn_hidden_units=(32,), att_hidden_size=(16,), task_name="label")
    assert m.embedding.weights[0].shape[0] == 944 + 1683        # hist_movie_id shares movie_id's table
    m.compile("adam", lr=0.01, metrics=["auc"])
    h = m.fit(x, x.label, batch_size=256, epochs=4, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    p = m.predict(x)[:, 0]
    assert _logloss(x.label.to_numpy(), p) < constant_logloss(x.label.to_numpy())

    data = to_tensor_data(x.iloc[:64], m.feature_columns)
    m.eval()
    with torch.no_grad():
        out, scores = m(data, return_scores=True)
        valid = torch.arange(8).unsqueeze(0) < data.lengths["hist_movie_id"].unsqueeze(1)
        assert torch.all(scores[~valid] == 0) and torch.any(scores[valid] != 0)
        # ids past length_name are ignored
        junk = data.varlen["hist_movie_id"].clone()
        junk[~valid] = 7
        same = m(to_tensor_data({**{c: x.iloc[:64][c] for c in ("user_id", "movie_id", "hist_len")},
                                 "hist_movie_id": junk.numpy()}, m.feature_columns))
        torch.testing.assert_close(same["label"], out["label"])
        # attention pooling is a weighted sum: the order of the history does not matter
        n = data.lengths["hist_movie_id"]
        rev = data.varlen["hist_movie_id"].clone()
        for i in range(len(rev)):
            rev[i, :n[i]] = rev[i, :n[i]].flip(0)
        flipped = m(to_tensor_data({**{c: x.iloc[:64][c] for c in ("user_id", "movie_id", "hist_len")},
                                    "hist_movie_id": rev.numpy()}, m.feature_columns))
        torch.testing.assert_close(flipped["label"], out["label"], rtol=1e-5, atol=1e-6)


def test_din_padding_mask_without_length_and_normalised_weights(ml_behaviour):
    cols, x = ml_behaviour
    cols = cols[:2] + [VarLenSparseFeat(SparseFeat("hist_movie_id", 1683, 8, embedding_name="movie_id"), maxlen=8)]
    m = DIN(cols, ["movie_id"], dnn_hidden_units=(16,), att_hidden_size=(8,), att_weight_normalization=True,
            att_activation="prelu")
    data = to_tensor_data(x.iloc[:50], m.feature_columns)
    with torch.no_grad():
        _, scores = m(data, return_scores=True)
    ids = data.varlen["hist_movie_id"]
    assert torch.all(scores[ids == 0] == 0)
    has = (ids != 0).any(1)
    torch.testing.assert_close(scores[has].sum(1), torch.ones(int(has.sum())))


def test_din_errors_name_the_features(ml_behaviour):
    cols, _ = ml_behaviour
    with pytest.raises(ValueError, match="hist_user_id"):
        DIN(cols, ["user_id"])
    with pytest.raises(ValueError, match="no SparseFeat 'genre'"):
        DIN(cols, ["genre"])
    bad = cols[:2] + [VarLenSparseFeat(SparseFeat("hist_movie_id", 1683, 4), maxlen=8)]
    with pytest.raises(ValueError, match="embedding_dim 8 but 'hist_movie_id' has 4"):
        DIN(bad, ["movie_id"])


# ------------------------------------------------------------------------------------------------ single-task on Criteo
SINGLE_TASK = sorted(n for n, c in MODELS.items() if not getattr(c, "multitask", False) and n not in ("DIN", "DIEN")
                     and not getattr(c, "sequential", False))   # sequential models: tests/models/test_sequential.py
CRITEO_SIZES = {  # DIN and DIEN need behaviour sequences, which Criteo has not: they are covered above
    "DNN": dict(dnn_hidden_units=(32, 16)), "LR": {}, "FM": {}, "WDL": dict(dnn_hidden_units=(32, 16)),
    "DeepFM": dict(dnn_hidden_units=(32, 16)), "DCN": dict(cross_num=2, dnn_hidden_units=(32, 16)),
    "DCNMix": dict(cross_num=2, low_rank=4, num_experts=2, dnn_hidden_units=(32, 16)),
    "xDeepFM": dict(dnn_hidden_units=(32, 16), cin_layer_size=(16, 8)),
    "AutoInt": dict(att_layer_num=2, att_head_num=2, dnn_hidden_units=(32, 16)),
    "NFM": dict(dnn_hidden_units=(32, 16)), "PNN": dict(dnn_hidden_units=(32, 16), use_outter=True),
    "AFM": dict(attention_factor=8), "AFN": dict(ltl_hidden_size=16, afn_dnn_hidden_units=(32, 16)),
    "CCPM": dict(dnn_hidden_units=(32,)), "DIFM": dict(att_head_num=2, dnn_hidden_units=(32, 16)),
    "FiBiNET": dict(dnn_hidden_units=(32, 16)), "IFM": dict(dnn_hidden_units=(32, 16)),
    "ONN": dict(dnn_hidden_units=(32, 16)), "MLR": dict(region_num=4),
    "FinalMLP": dict(mlp1_hidden_units=(32, 16), mlp2_hidden_units=(32, 16), fs_hidden_units=(16,)),
    "GDCN": dict(cross_num=3, dnn_hidden_units=(32, 16)), "MaskNet": dict(dnn_hidden_units=(32, 16)),
}


@pytest.fixture(scope="module")
def criteo_encoded(criteo):
    enc = FeatureEncoder(sparse=[f"C{i}" for i in range(1, 27)], dense=[f"I{i}" for i in range(1, 14)],
                         embedding_dim=4).fit(criteo)
    return enc, criteo, criteo["label"].astype("float32")


@pytest.mark.parametrize("name", SINGLE_TASK)
def test_single_task_models_learn_criteo(name, criteo_encoded):
    enc, df, y = criteo_encoded
    cols = enc.feature_columns
    m = build_model(name, cols, ["label"], ["binary"], **CRITEO_SIZES[name])
    m.compile("adam", lr=0.01, metrics=["auc"])
    h = m.fit(df, y, batch_size=32, epochs=8, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert _logloss(y.to_numpy(), m.predict(df)[:, 0]) < constant_logloss(y.to_numpy())
    if name == "DCN":   # DCN-V2 too
        m2 = DCN(cols, cols, cross_parameterization="matrix", **CRITEO_SIZES[name])
        m2.compile("adam", lr=0.01)
        m2.fit(df, y, batch_size=32, epochs=8, verbose=0)
        assert _logloss(y.to_numpy(), m2.predict(df)[:, 0]) < constant_logloss(y.to_numpy())


@pytest.mark.parametrize("cls", [FM, DeepFM, xDeepFM, AutoInt, NFM, AFM, AFN, CCPM, DIFM, PNN, FiBiNET,
                                 IFM, ONN])
def test_field_interactions_need_one_embedding_dim(cls, criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3"], dense=["I1"], embedding_dim={"C1": 8, "C2": 4, "C3": 4}).fit(criteo)
    with pytest.raises(ValueError, match=r"\{4: \['C2', 'C3'\], 8: \['C1'\]\}"):
        cls(enc.feature_columns) if cls is PNN else cls(enc.feature_columns, enc.feature_columns)
    DCN(enc.feature_columns, enc.feature_columns, cross_parameterization="matrix", dnn_hidden_units=(8,))  # fine


def test_wide_only_features_stay_out_of_the_deep_part(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3"], dense=["I1", "I2"], embedding_dim=4).fit(criteo)
    cols = enc.feature_columns
    wide, deep = cols, [c for c in cols if c.name in ("C1", "C2", "I1")]
    m = WDL(wide, deep, dnn_hidden_units=(8,), l2_reg_linear=1e-3, l2_reg_dnn=1e-4)
    assert set(m.embedding.table_offsets) == {"C1", "C2"} and m.input_dim == 2 * 4 + 1
    assert m.encoder is enc
    m.compile("adam", lr=0.01)
    m.fit(criteo, criteo["label"], batch_size=64, epochs=2, verbose=0)
    assert m.regularization_loss() > 0
    # the wide part reads C3 and I2: changing them changes the prediction through the linear weights only
    other = criteo.assign(C3=criteo["C3"].iloc[::-1].to_numpy(), I2=criteo["I2"].iloc[::-1].to_numpy())
    assert not np.allclose(m.predict(criteo), m.predict(other))
    assert not any(p is q for p in m._dnn_weights for q in m.linear.parameters())
    a, b = (WDL(wide, deep, dnn_hidden_units=(8,), seed=3).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fm_layer_is_the_sum_over_pairs():
    e = torch.randn(5, 6, 3)
    brute = sum((e[:, i] * e[:, j]).sum(1) for i in range(6) for j in range(i + 1, 6))
    torch.testing.assert_close(FMLayer()(e), brute, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- NFM, PNN, AFM, AFN, CCPM, DIFM
def _pairs(F):
    return [(i, j) for i in range(F) for j in range(i + 1, F)]


def test_nfm_bi_interaction_is_the_elementwise_sum_over_pairs():
    e = torch.randn(5, 6, 3)
    naive = sum(e[:, i] * e[:, j] for i, j in _pairs(6))
    torch.testing.assert_close(BiInteractionPooling()(e), naive, rtol=1e-5, atol=1e-5)
    sq = 0.5 * (e.sum(1) ** 2 - (e ** 2).sum(1))
    torch.testing.assert_close(BiInteractionPooling()(e), sq)


@pytest.mark.parametrize("kernel_type", ["mat", "vec", "num"])
def test_pnn_products_match_naive_pairs(kernel_type):
    e = torch.randn(4, 5, 3)
    torch.testing.assert_close(InnerProductLayer(5)(e),
                               torch.stack([(e[:, i] * e[:, j]).sum(1) for i, j in _pairs(5)], 1))
    outer = OuterProductLayer(5, 3, kernel_type)
    K = outer.kernel.detach()
    naive = []
    for p, (i, j) in enumerate(_pairs(5)):
        if kernel_type == "mat":   # e_i^T K_p e_j: the outer product e_i e_j^T weighted by K_p, summed
            naive.append((torch.einsum("bd,be->bde", e[:, i], e[:, j]) * K[p]).sum((1, 2)))
        elif kernel_type == "vec":
            naive.append((e[:, i] * e[:, j] * K[p]).sum(1))
        else:
            naive.append((e[:, i] * e[:, j]).sum(1) * K[p, 0])
    torch.testing.assert_close(outer(e), torch.stack(naive, 1), rtol=1e-5, atol=1e-5)


def test_pnn_input_width_and_kernel_type(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3", "C4"], dense=["I1"], embedding_dim=4).fit(criteo)
    cols = enc.feature_columns
    for inner, outer, width in [(True, False, 16 + 6 + 1), (False, True, 16 + 6 + 1), (True, True, 16 + 12 + 1),
                                (False, False, 16 + 1)]:
        m = PNN(cols, dnn_hidden_units=(8,), use_inner=inner, use_outter=outer)
        assert m.dnn.net[0].in_features == width
    with pytest.raises(ValueError, match="kernel_type"):
        PNN(cols, kernel_type="matrix")


def test_afm_attention_weights_pool_the_pairs():
    e = torch.randn(4, 5, 3)
    layer = AFMLayer(5, 3, attention_factor=6).eval()
    a = layer(e, return_score=True)
    assert a.shape == (4, 10)
    torch.testing.assert_close(a.sum(1), torch.ones(4))
    inter = torch.stack([e[:, i] * e[:, j] for i, j in _pairs(5)], 1)
    naive = layer.projection((a.unsqueeze(-1) * inter).sum(1))[:, 0]
    torch.testing.assert_close(layer(e), naive, rtol=1e-5, atol=1e-6)
    with torch.no_grad():                     # uniform attention: p · (bi-interaction / number of pairs)
        layer.score.weight.zero_()
    torch.testing.assert_close(layer(e), layer.projection(BiInteractionPooling()(e) / 10)[:, 0], rtol=1e-5,
                               atol=1e-6)


def test_afm_without_attention_is_linear_plus_fm(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3"], dense=["I1"], embedding_dim=4).fit(criteo)
    cols = enc.feature_columns
    m = AFM(cols, cols, use_attention=False).eval()
    x = to_tensor_data(enc.transform(criteo.head(16)), m.feature_columns)
    want = m.linear(x) + FMLayer()(m.embedding(x)[0])
    torch.testing.assert_close(m(x)["label"], want)


def test_afn_neurons_are_products_of_powers():
    e = torch.rand(6, 3, 2) + 0.5
    layer = LogTransformLayer(3, 2, ltl_hidden_size=2).eval()   # fresh batch norms: (x - 0) / sqrt(1 + eps)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [1.0, 0.0], [0.0, -1.0]]))
        layer.bias.zero_()
    eps = layer.bn_in.eps
    out = layer(e).view(6, 2, 2) * (1 + eps) ** 0.5                       # (B, D, H)
    s = (1 + eps) ** -0.5                                                 # the input norm scales the powers
    want = torch.stack([(e[:, 0] * e[:, 1]) ** s, (e[:, 0] ** 2 / e[:, 2]) ** s], -1)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)


def test_ccpm_kmax_pooling_keeps_order_and_conv_shapes():
    x = torch.tensor([[3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0]])
    assert KMaxPooling(3, dim=1)(x).tolist() == [[4.0, 5.0, 9.0]]      # the 3 largest, in field order
    # DeepCTR's pooling sizes: k_i = max(1, int((1 - (i/l)^(l-i)) * F)), the last layer 3, capped by its input
    assert ConvLayer(10, (3, 3, 3), (2, 2, 2)).field_shape == 3
    assert [p.k for p in ConvLayer(10, (3, 3, 3), (2, 2, 2)).pools] == [8, 3, 3]   # 8.9, 3.3, then 3
    assert ConvLayer(2, (6, 5), (4, 4)).field_shape == 1


def test_difm_factors_reweight_linear_and_fm(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3"], dense=["I1"], embedding_dim=4).fit(criteo)
    cols = enc.feature_columns
    m = DIFM(cols, cols, att_head_num=2, dnn_hidden_units=(8,)).eval()
    x = to_tensor_data(enc.transform(criteo.head(16)), m.feature_columns)
    emb = m.embedding(x)[0]
    factors = m.p_vec(m.vector_wise(emb).flatten(1)) + m.p_bit(m.bit_wise(emb.flatten(1)))
    w = m.linear.embedding(x)[0][..., 0]                                    # (B, F) linear id weights
    lin = (w * factors).sum(1) + x.dense @ m.linear.dense_weight[:, 0] + m.linear.bias
    naive_fm = sum(((factors[:, i, None] * emb[:, i]) * (factors[:, j, None] * emb[:, j])).sum(1)
                   for i, j in _pairs(3))
    torch.testing.assert_close(m(x)["label"], lin + naive_fm, rtol=1e-5, atol=1e-6)
    ones = torch.ones(16, 3)
    torch.testing.assert_close(m.linear(x, field_weights=ones), m.linear(x))
    with pytest.raises(ValueError, match="same order"):
        DIFM(cols[::-1], cols, att_head_num=2)
    with pytest.raises(ValueError, match="att_head_num"):
        DIFM(cols, cols, att_head_num=3)


# -------------------------------------------------------------------------------------------- FiBiNET, IFM, ONN, MLR
def test_bilinear_and_field_aware_products_match_the_pair_loops():
    from ctrkit.layers import BilinearInteraction, FieldAwareProduct, SENETLayer
    e = torch.randn(3, 4, 5)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    for kind in ("all", "each", "interaction"):
        layer = BilinearInteraction(4, 5, kind)
        W = layer.weight
        brute = torch.stack([(e[:, i] @ W[{"all": 0, "each": i, "interaction": p}[kind]]) * e[:, j]
                             for p, (i, j) in enumerate(pairs)], dim=1)
        torch.testing.assert_close(layer(e), brute, rtol=1e-5, atol=1e-6)
    # ONN: field i's embedding towards j times field j's embedding towards i
    ops = torch.randn(3, 4, 4, 5)                            # (B, field, towards field, D); diagonal unused
    packed = torch.stack([torch.cat([ops[:, i, k] for k in range(4) if k != i], dim=1) for i in range(4)], dim=1)
    brute = torch.stack([ops[:, i, j] * ops[:, j, i] for i, j in pairs], dim=1)
    torch.testing.assert_close(FieldAwareProduct(4, 5)(packed), brute)
    # SENET re-weights whole fields: the output is the input times one non-negative weight per field
    se = SENETLayer(4, 2)
    a = se(e, return_weights=True)
    assert a.shape == (3, 4) and bool((a >= 0).all())
    torch.testing.assert_close(se(e), e * a.unsqueeze(-1))


def test_ifm_factors_are_input_aware_and_refine_the_fm(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3", "C4"], dense=["I1"], embedding_dim=4).fit(criteo)
    cols = enc.feature_columns
    m = IFM(cols, cols, dnn_hidden_units=(16,))
    m.compile("adam", lr=0.01)
    m.fit(criteo, criteo["label"], batch_size=64, epochs=2, verbose=0)
    data = to_tensor_data(criteo.iloc[:32], cols, enc)
    m.eval()
    with torch.no_grad():
        out, factors = m(data, return_factors=True)
        torch.testing.assert_close(factors.sum(1), torch.full((32,), 4.0))   # F · softmax
        assert factors.std(0).max() > 1e-3                                    # they differ between rows
        emb = m.embedding(data)[0]
        lin = m.linear(data, field_weights=factors)
        torch.testing.assert_close(out["label"], lin + FMLayer()(emb * factors.unsqueeze(-1)))
        # with every factor at 1 the model is an FM over the same weights
        torch.testing.assert_close(m.linear(data, field_weights=torch.ones_like(factors)), m.linear(data))
    with pytest.raises(ValueError, match="linear part's id features"):
        IFM(cols[:2], cols, dnn_hidden_units=(8,))


def test_onn_gives_each_field_one_embedding_per_partner(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3"], dense=["I1"], embedding_dim=4).fit(criteo)
    m = ONN(enc.feature_columns, enc.feature_columns, dnn_hidden_units=(8,))
    assert m.embedding.group_dims == [2 * 4]                 # 3 fields: 2 operations each, one table group
    assert m.dnn.net[0].in_features == 3 * 4 + 1             # 3 pairs x D + the dense value
    with pytest.raises(ValueError, match="at least two"):
        ONN(enc.feature_columns[:1], enc.feature_columns[:1])


def test_mlr_is_a_softmax_mixture_of_logistic_regressions(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2"], dense=["I1", "I2"], embedding_dim=4).fit(criteo)
    cols = enc.feature_columns
    m = MLR(cols, region_num=3)
    m.compile("adam", lr=0.05)
    m.fit(criteo, criteo["label"], batch_size=64, epochs=3, verbose=0)
    data = to_tensor_data(criteo.iloc[:50], cols, enc)
    m.eval()
    with torch.no_grad():
        out, regions = m(data, return_regions=True)
        p = (torch.softmax(m.linear(data), 1) * torch.sigmoid(m.base(data))).sum(1)
        torch.testing.assert_close(torch.sigmoid(out["label"]), p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(regions.sum(1), torch.ones(50))
        assert regions.std(0).max() > 1e-4                   # rows are assigned to regions differently
    # a bias model scales p by sigmoid(bias(x))
    mb = MLR(cols, bias_feature_columns=cols[:1], region_num=2)
    with torch.no_grad():
        pb = (torch.softmax(mb.linear(data), 1) * torch.sigmoid(mb.base(data))).sum(1) * \
            torch.sigmoid(mb.bias_model(data))
        torch.testing.assert_close(torch.sigmoid(mb(data)["label"]), pb, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="region_num"):
        MLR(cols, region_num=1)


# ------------------------------------------------------------------------------------------------ DIEN
def _with_negatives(cols, x, seed=0):
    """DeepCTR-Torch's run_dien.py layout: ``neg_hist_movie_id`` (random movies, same length) next to the history."""
    rng = np.random.default_rng(seed)
    hist = np.stack(x.hist_movie_id.to_numpy())
    neg = np.where(hist != 0, rng.integers(1, 1683, hist.shape), 0)
    neg_col = VarLenSparseFeat(SparseFeat("neg_hist_movie_id", 1683, 8, embedding_name="movie_id"), maxlen=8,
                               length_name="hist_len")
    return cols + [neg_col], x.assign(neg_hist_movie_id=list(neg))


@pytest.mark.parametrize("gru_type", ["AUGRU", "GRU"])
def test_dien_learns_behaviour_sequences_with_the_auxiliary_loss(ml_behaviour, gru_type):
    cols, x = _with_negatives(*ml_behaviour)
    m = DIEN(cols, ["movie_id"], gru_type=gru_type, use_negsampling=True, dnn_hidden_units=(32,),
             att_hidden_units=(16,))
    assert m.embedding.weights[0].shape[0] == 944 + 1683     # hist_ and neg_hist_ share movie_id's table
    m.compile("adam", lr=0.01, metrics=["auc"])
    h = m.fit(x, x.label, batch_size=256, epochs=4, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    p = m.predict(x)[:, 0]
    assert _logloss(x.label.to_numpy(), p) < constant_logloss(x.label.to_numpy())

    data = to_tensor_data(x.iloc[:64], m.feature_columns)
    m.eval()
    with torch.no_grad():
        out, aux = m(data, return_aux_loss=True)
        assert aux.dim() == 0 and float(aux) > 0
        # the training step adds alpha x the auxiliary loss to the task loss
        y = torch.tensor(x.label.iloc[:64].to_numpy(), dtype=torch.float32).unsqueeze(1)
        total, per_task, _ = m.train_step(m, data, y, None, m.trainer.loss)
        torch.testing.assert_close(total, m.compute_loss(out, y)[0] + m.alpha * aux)
        # ids past the length (history and negatives) are ignored
        valid = torch.arange(8).unsqueeze(0) < data.lengths["hist_movie_id"].unsqueeze(1)
        junk = {k: x.iloc[:64][k] for k in ("user_id", "movie_id", "hist_len")}
        for k in ("hist_movie_id", "neg_hist_movie_id"):
            v = data.varlen[k].clone()
            v[~valid] = 7
            junk[k] = v.numpy()
        torch.testing.assert_close(m(to_tensor_data(junk, m.feature_columns))["label"], out["label"])
        # unlike DIN's pooling, the GRUs read the order of the history
        n = data.lengths["hist_movie_id"]
        rev = data.varlen["hist_movie_id"].clone()
        for i in range(len(rev)):
            rev[i, :n[i]] = rev[i, :n[i]].flip(0)
        flipped = m(to_tensor_data({**{k: x.iloc[:64][k] for k in ("user_id", "movie_id", "hist_len")},
                                    "hist_movie_id": rev.numpy(), "neg_hist_movie_id": junk["neg_hist_movie_id"]},
                                   m.feature_columns))
        assert not torch.allclose(flipped["label"], out["label"], atol=1e-6)


def test_augru_update_is_steered_by_attention():
    from ctrkit.layers import AttentionalGRU
    torch.manual_seed(0)
    gru = AttentionalGRU(4, 4, "AUGRU")
    x = torch.randn(2, 5, 4)
    scores = torch.rand(2, 5)
    h = gru(x, scores)
    # a step with attention 0 leaves the state unchanged: zero scores after step 2 == a 3-step sequence
    cut = scores.clone()
    cut[:, 3:] = 0
    torch.testing.assert_close(gru(x, cut), gru(x[:, :3], scores[:, :3]))
    assert not torch.allclose(h, gru(x, cut))


def test_dien_errors_name_the_features(ml_behaviour):
    cols, _ = ml_behaviour
    with pytest.raises(ValueError, match="neg_hist_movie_id"):
        DIEN(cols, ["movie_id"], use_negsampling=True)
    with pytest.raises(ValueError, match="hist_user_id"):
        DIEN(cols, ["user_id"])
    with pytest.raises(ValueError, match="gru_type"):
        DIEN(cols, ["movie_id"], gru_type="LSTM")
