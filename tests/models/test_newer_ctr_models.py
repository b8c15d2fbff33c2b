"""FinalMLP, GDCN and MaskNet: their layers against naive references, and the properties that define them (the
shared contract is in test_conformance.py, their Criteo check in test_models_specific.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import constant_logloss

from ctrkit import GDCN, FeatureEncoder, FinalMLP, MaskNet
from ctrkit.data import to_tensor_data
from ctrkit.layers import BilinearFusion, CrossNet, FieldLayerNorm, GatedCrossNet, MaskBlock, ParallelMaskBlocks


def test_gated_cross_net_matches_the_formula_and_halves_dcn_v2_with_closed_gates():
    torch.manual_seed(0)
    net = GatedCrossNet(5, layer_num=3)
    with torch.no_grad():
        net.bias.normal_()
    x0 = torch.randn(7, 5)
    c = x0
    for w, b in zip(net.kernels, net.bias):
        wc, wg = w[:5], w[5:]
        c = x0 * (c @ wc.T + b) * torch.sigmoid(c @ wg.T) + c
    torch.testing.assert_close(net(x0), c)
    gates = net.gates(x0)
    assert gates.shape == (3, 7, 5) and bool(((gates > 0) & (gates < 1)).all())
    # gate matrices at zero: every gate is 1/2, i.e. DCN-V2's cross layer with half its weights and bias
    ref = CrossNet(5, layer_num=3, parameterization="matrix")
    with torch.no_grad():
        net.kernels[:, 5:] = 0
        ref.kernels.copy_(net.kernels[:, :5] / 2)
        ref.bias.copy_(net.bias / 2)
    torch.testing.assert_close(net(x0), ref(x0))


def test_bilinear_fusion_matches_the_loop_over_heads():
    torch.manual_seed(1)
    fusion = BilinearFusion(6, 4, num_heads=2)
    x, y = torch.randn(5, 6), torch.randn(5, 4)
    ref = x @ fusion.w_x.weight[0] + y @ fusion.w_y.weight[0]
    for h in range(2):
        ref = ref + ((x[:, 3 * h:3 * h + 3] @ fusion.w_xy[h]) * y[:, 2 * h:2 * h + 2]).sum(1)
    torch.testing.assert_close(fusion(x, y), ref)
    with pytest.raises(ValueError, match="dividing both stream widths 6 and 4"):
        BilinearFusion(6, 4, num_heads=3)


def test_parallel_mask_blocks_equal_separate_mask_blocks():
    torch.manual_seed(2)
    par = ParallelMaskBlocks(3, 8, 6, 4, reduction_ratio=2)
    with torch.no_grad():
        par.gain.normal_()
        par.shift.normal_()
    v, h = torch.randn(5, 8), torch.randn(5, 6)
    outs = []
    for i in range(3):
        blk = MaskBlock(8, 6, 4, reduction_ratio=2)
        with torch.no_grad():
            blk.mask[0].weight.copy_(par.masks.weights[0][i].T)
            blk.mask[0].bias.copy_(par.masks.biases[0][i, 0])
            blk.mask[2].weight.copy_(par.masks.weights[1][i].T)
            blk.mask[2].bias.copy_(par.masks.biases[1][i, 0])
            blk.hidden.weight.copy_(par.weight[i].T)
            blk.norm.weight.copy_(par.gain[i, 0])
            blk.norm.bias.copy_(par.shift[i, 0])
        outs.append(blk(v, h))
    torch.testing.assert_close(par(v, h), torch.cat(outs, dim=1))
    assert blk.mask[0].out_features == 12                      # the aggregation layer: 2 x the masked width
    norm = FieldLayerNorm(3, 4)(torch.randn(2, 3, 4) * 5 + 3)   # each field of each row normalised on its own
    torch.testing.assert_close(norm.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def small_criteo(criteo):
    enc = FeatureEncoder(sparse=["C1", "C2", "C3", "C4"], dense=["I1", "I2"],
                         embedding_dim={"C1": 8, "C2": 4, "C3": 4, "C4": 4}).fit(criteo)
    return enc, criteo


def test_finalmlp_gates_read_their_context_features(small_criteo):
    enc, df = small_criteo
    cols = enc.feature_columns
    m = FinalMLP([], cols, mlp1_hidden_units=(8,), mlp2_hidden_units=(6,), fs_hidden_units=(8,),
                 fs1_context=["C1"], fs2_context=["C3", "I2"], num_heads=2, seed=3)
    batch = to_tensor_data(df.head(32), m.feature_columns, m.encoder)
    x = m._input(batch)                                        # groups by dim (4: C2 C3 C4, 8: C1), dense I1 I2
    groups = m.embedding(batch)
    torch.testing.assert_close(x[:, m.fs1_index], groups[1][:, 0])                      # C1's 8-dim embedding
    torch.testing.assert_close(x[:, m.fs2_index], torch.cat([groups[0][:, 1], batch.dense[:, 1:]], dim=1))
    # a gate depends on its context only: changing C4 leaves both gates, changing C1 moves gate 1 only
    other = df.head(32).assign(C4=df["C4"].iloc[32:64].to_numpy(), C1=df["C1"].iloc[64:96].to_numpy())
    x2 = m._input(to_tensor_data(other, m.feature_columns, m.encoder))
    with torch.no_grad():
        g1, g2 = m.gate1.gate(x[:, m.fs1_index]), m.gate2.gate(x[:, m.fs2_index])
        h1, h2 = m.gate1.gate(x2[:, m.fs1_index]), m.gate2.gate(x2[:, m.fs2_index])
    assert torch.equal(g2, h2) and not torch.allclose(g1, h1)
    assert bool(((g1 > 0) & (g1 < 2)).all())
    # without context features each gate is one learned vector, the same for every row
    plain = FinalMLP([], cols, mlp1_hidden_units=(8,), mlp2_hidden_units=(6,), fs_hidden_units=(8,))
    assert tuple(plain.gate1.gate().shape) == (1, plain.input_dim)
    with pytest.raises(ValueError, match=r"fs2_context names \['C9'\].*not features of dnn_feature_columns"):
        FinalMLP([], cols, mlp1_hidden_units=(8,), mlp2_hidden_units=(6,), fs2_context=["C9"])


@pytest.mark.parametrize("name,kw", [("GDCN", dict(structure="parallel", cross_num=3, dnn_hidden_units=(32, 16))),
                                     ("MaskNet", dict(model_type="parallel", parallel_num_blocks=3,
                                                      parallel_block_dim=8, dnn_hidden_units=(16,))),
                                     ("MaskNet", dict(dnn_hidden_units=(16, 8), emb_layernorm=False,
                                                      net_layernorm=False, reduction_ratio=2))])
def test_variants_learn_criteo(name, kw, criteo):
    """GDCN-P, ParaMaskNet and a MaskNet without layer norms (the defaults are in test_models_specific.py)."""
    enc = FeatureEncoder(sparse=[f"C{i}" for i in range(1, 27)], dense=[f"I{i}" for i in range(1, 14)],
                         embedding_dim=4).fit(criteo)
    cls = {"GDCN": GDCN, "MaskNet": MaskNet}[name]
    m = cls(enc.feature_columns, enc.feature_columns, **kw)
    m.compile("adam", lr=0.01)
    y = criteo["label"].astype("float32")
    h = m.fit(criteo, y, batch_size=32, epochs=8, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    p = np.clip(m.predict(criteo)[:, 0], 1e-7, 1 - 1e-7)
    yv = y.to_numpy()
    assert -np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)) < constant_logloss(yv)


def test_gdcn_structures_and_argument_errors(small_criteo):
    enc, _ = small_criteo
    cols = enc.feature_columns
    d = 8 + 3 * 4 + 2
    assert GDCN([], cols, dnn_hidden_units=(16, 4)).dnn_linear.in_features == 4                  # MLP(GCN(x0))
    assert GDCN([], cols, structure="parallel", dnn_hidden_units=(16, 4)).dnn_linear.in_features == d + 4
    assert GDCN([], cols, dnn_hidden_units=()).dnn_linear.in_features == d                       # GCN alone
    with pytest.raises(ValueError, match="'stacked' \\(GDCN-S\\) or 'parallel'"):
        GDCN([], cols, structure="serial")
    with pytest.raises(ValueError, match="serial model needs dnn_hidden_units"):
        MaskNet([], cols, dnn_hidden_units=())
