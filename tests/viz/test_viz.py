"""ctrkit.viz: every plot is drawn from a real model trained on a census slice and is a non-blank PNG."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="ctrkit.viz needs matplotlib (the viz / dev extra)")

from matplotlib.image import imread  # noqa: E402

import ctrkit  # noqa: E402
from ctrkit import DNN, PLE, FeatureEncoder, MMoE  # noqa: E402
from ctrkit.datasets import census_feature_types, load_census_income, split_indices  # noqa: E402
from ctrkit.viz import plot_calibration, plot_gate_weights, plot_learning_curves, plot_roc, save_training_plots  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    """A small MMoE trained for one epoch on 6,000 census rows; 1,500 held-out rows to plot on."""
    X, y = load_census_income(group=1)
    tr, va, te = split_indices(len(X), (0.8, 0.1, 0.1), seed=2024)
    tr, va, te = tr[:6000], va[:1500], te[:1500]
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X.iloc[tr])
    m = MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
             task_names=["income", "marital"], seed=0)
    m.compile("adam", lr=3e-3, metrics=["auc", "logloss"])
    h = m.fit(X.iloc[tr], y.iloc[tr], batch_size=256, epochs=1, verbose=0,
              validation_data=(X.iloc[va], y.iloc[va]))
    return m, h, enc, X.iloc[te], y.iloc[te]


def _check_png(path) -> np.ndarray:
    assert path.stat().st_size > 1000, path
    img = imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, img.shape
    assert float(img[..., :3].var()) > 0, f"{path} is blank"
    return img


def test_learning_curves_from_history_and_dict(trained, tmp_path):
    m, h, *_ = trained
    fig = plot_learning_curves(h, tmp_path / "lc.png")
    _check_png(tmp_path / "lc.png")
    titles = {ax.get_title() for ax in fig.axes if ax.get_visible()}
    assert {"loss", "income auc", "marital auc", "income loss", "marital logloss"} <= titles, titles
    assert not any("lr" in t or "seconds" in t for t in titles)
    panel = next(ax for ax in fig.axes if ax.get_title() == "income auc")
    lines = {ln.get_label(): ln.get_ydata() for ln in panel.get_lines()}
    assert set(lines) == {"train", "validation"}
    assert np.allclose(lines["validation"], h.history["val_income_auc"])
    # the same from the plain dict and from History.to_frame()
    assert len(plot_learning_curves(h.history).axes) == len(fig.axes)
    assert len(plot_learning_curves(h.to_frame()).axes) == len(fig.axes)
    with pytest.raises(ValueError, match="no epochs"):
        plot_learning_curves({"loss": []})
    with pytest.raises(TypeError, match="History"):
        plot_learning_curves([0.5, 0.4])


def test_gate_weights_heatmap_mmoe_and_ple(trained, tmp_path):
    m, _, enc, Xte, _ = trained
    fig = plot_gate_weights(m, Xte, tmp_path / "gates.png")
    _check_png(tmp_path / "gates.png")
    ax = fig.axes[0]
    g = ax.get_images()[0].get_array()
    assert g.shape == (2, 4)
    assert np.allclose(np.asarray(g).sum(axis=1), 1.0, atol=1e-5)   # each task's mean gate: a distribution
    expected = np.stack([v.mean(0) for v in m.gate_weights(Xte).values()])
    assert np.allclose(g, expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["income", "marital"]
    ple = PLE(enc.feature_columns, shared_expert_num=2, specific_expert_num=1, num_levels=2,
              expert_dnn_hidden_units=(8,), gate_dnn_hidden_units=(), task_names=["income", "marital"])
    fig = plot_gate_weights(ple, Xte.iloc[:300], tmp_path / "ple.png")
    _check_png(tmp_path / "ple.png")
    # one column per expert, the same expert in every row: each task's own experts, then the shared ones
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["income own0", "marital own0", "shared0",
                                                                     "shared1"]
    g = np.ma.getdata(fig.axes[0].get_images()[0].get_array()).astype(float)
    w = ple.gate_weights(Xte.iloc[:300])
    assert np.isnan(g[0, 1]) and np.isnan(g[1, 0])          # income's gate does not read marital's expert
    assert np.allclose(g[0, [0, 2, 3]], w["income"].mean(0)) and np.allclose(g[1, [1, 2, 3]], w["marital"].mean(0))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("-") == 2
    assert "last level" in fig.axes[0].get_title()
    dnn = DNN(enc.feature_columns, dnn_hidden_units=(8,))
    with pytest.raises(TypeError, match="OMoE, MMoE or PLE"):
        plot_gate_weights(dnn, Xte)


def test_calibration_bins_match_the_predictions(trained, tmp_path):
    m, _, _, Xte, yte = trained
    fig = plot_calibration(m, Xte, yte, tmp_path / "cal.png", n_bins=5)
    _check_png(tmp_path / "cal.png")
    p = m.predict(Xte)
    # bottom row: counts per bin add up to the rows; top row: observed rates lie in [0, 1]
    counts_ax = fig.axes[2]
    counts = [r.get_height() for r in counts_ax.patches]
    assert len(counts) == 5 and sum(counts) == len(Xte)
    assert counts[0] == int((p[:, 0] < 0.2).sum())
    rate = fig.axes[0].get_lines()[1].get_ydata()
    assert ((rate >= 0) & (rate <= 1)).all()
    with pytest.raises(ValueError, match="n_bins"):
        plot_calibration(m, Xte, yte, n_bins=1)


def test_roc_auc_in_legend_equals_evaluate(trained, tmp_path):
    m, _, _, Xte, yte = trained
    fig = plot_roc(m, Xte, yte, tmp_path / "roc.png")
    _check_png(tmp_path / "roc.png")
    res = m.evaluate(Xte, yte)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"income: AUC {res['income_auc']:.4f}" in labels
    assert f"marital: AUC {res['marital_auc']:.4f}" in labels
    curve = next(ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("income"))
    fpr, tpr = curve.get_xdata(), curve.get_ydata()
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.isclose(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr),
                      res["income_auc"], atol=1e-6)


def test_save_training_plots_writes_what_applies(trained, tmp_path):
    m, h, enc, Xte, yte = trained
    paths = save_training_plots(tmp_path / "all", m, h, Xte, yte)
    assert [os.path.basename(p) for p in paths] == ["learning_curves.png", "gate_weights.png",
                                                    "calibration.png", "roc.png"]
    for p in paths:
        _check_png(tmp_path / "all" / os.path.basename(p))
    # no data: only the learning curves; a gate-less model: no gate plot
    assert [os.path.basename(p) for p in save_training_plots(tmp_path / "h", m, h)] == ["learning_curves.png"]
    dnn = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_name="income")
    dnn.compile("adam")
    written = save_training_plots(tmp_path / "d", dnn, None, Xte, yte[["income"]])
    assert [os.path.basename(p) for p in written] == ["calibration.png", "roc.png"]


def test_viz_is_a_lazy_submodule():
    assert ctrkit.viz.plot_roc is plot_roc
