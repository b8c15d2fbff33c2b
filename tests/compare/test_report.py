"""The comparison report read as a new user reads it: the figures' axes, reference lines, seeds and gate labels,
and the table's time columns, on a real (small) census comparison."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from ctrkit import MMoE  # noqa: E402
from ctrkit.compare import CompareConfig, run_comparison, write_report  # noqa: E402
from ctrkit.compare.progress import EpochProgress  # noqa: E402
from ctrkit.compare.report import plot_metrics, plot_validation_curves  # noqa: E402


@pytest.fixture(scope="module")
def result(census_head):
    cfg = CompareConfig(seeds=2, max_epochs=3, patience=1, batch_size=256, models=("MMoE", "PLE"),
                        baselines=("lr",))
    return run_comparison(census_head, cfg, progress=False)


def test_runs_record_wall_and_cpu_seconds_and_the_table_shows_their_spread(result):
    runs = result.runs
    deep = runs[runs["model"].isin(["MMoE", "PLE"])]
    assert len(deep) == 4 and (deep["seconds"] > 0).all() and (deep["cpu_seconds"] > 0).all()
    table = result.table().splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    assert head[-4:] == ["params", "train s", "CPU s", "epochs"]
    mmoe = [c.strip() for c in next(r for r in table if r.startswith("| MMoE |")).strip("|").split("|")]
    s = result.summary.set_index("model").loc["MMoE"]
    assert mmoe[head.index("train s")] == f"{s['seconds']:.1f} ± {s['seconds_std']:.1f}"   # two seeds: a spread
    assert mmoe[head.index("CPU s")] == f"{s['cpu_seconds']:.1f}"


def test_metric_chart_has_points_with_error_bars_labelled_axes_and_baseline_lines(result):
    fig = plot_metrics(result)
    s = result.summary.set_index("model")
    for ax, task in zip(fig.axes, ["income", "marital"]):
        assert "AUC" in ax.get_ylabel() and ax.get_xlabel() == "model"
        assert not ax.patches                                  # no bars to cut off
        assert [t.get_text() for t in ax.get_xticklabels()] == ["MMoE", "PLE"]
        points = ax.get_lines()[0].get_ydata()
        assert np.allclose(points, [s.loc["MMoE", f"{task}_auc_mean"], s.loc["PLE", f"{task}_auc_mean"]])
        lr = s.loc["LR (one-hot)", f"{task}_auc_mean"]
        flat = [ln for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1 and ln.get_linestyle() == "--"]
        assert len(flat) == 1 and flat[0].get_ydata()[0] == pytest.approx(lr)   # the baseline, a reference line
        assert any("LR (one-hot)" in t.get_text() for t in ax.get_legend().get_texts())
        lo, hi = ax.get_ylim()
        assert lo <= min(points.min(), lr) and hi >= max(points.max(), lr)


def test_validation_curves_cover_every_seed_with_a_band_and_integer_epochs(result):
    assert [len(v) for v in result.curves.values()] == [2, 2]          # every seed's history is kept
    fig = plot_validation_curves(result)
    for ax, task in zip(fig.axes, ["income", "marital"]):
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "validation AUC"
        assert "2 seed(s)" in ax.get_title()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert len(ax.collections) == 2                                # one ± std band per model
        mmoe = result.curves["MMoE"]
        first = np.mean([run[f"val_{task}_auc"][0] for run in mmoe])  # epoch 1: every seed ran it
        line = next(ln for ln in ax.get_lines() if ln.get_label() == "MMoE")
        assert line.get_ydata()[0] == pytest.approx(first)
        assert len(line.get_xdata()) == max(len(run[f"val_{task}_auc"]) for run in mmoe)


def test_ple_gate_columns_name_each_experts_owner(result):
    g = result.gates["PLE"]
    own = ["income own0", "income own1", "marital own0", "marital own1"]
    assert list(g.columns) == own + ["shared0", "shared1", "shared2", "shared3"]
    assert g.loc["income", ["marital own0", "marital own1"]].isna().all()   # not read by income's gate
    assert g.loc["marital", ["income own0", "income own1"]].isna().all()
    assert np.allclose(g.sum(axis=1, skipna=True), 1.0, atol=1e-5)           # each gate is a softmax
    assert list(result.gates["MMoE"].columns) == [f"e{i}" for i in range(8)]


def test_write_report_writes_the_plots_and_explains_the_time_columns(result, tmp_path):
    paths = write_report(result, str(tmp_path))
    names = {p.rsplit("/", 1)[-1] for p in paths}
    assert {"report.md", "results.csv", "metrics.png", "validation_curves.png", "gates_PLE.png",
            "gates_MMoE.png"} <= names
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
    text = (tmp_path / "report.md").read_text()
    assert "CPU s" in text and "mean ± std over seeds" in text
    assert "moving average (WeightAveraging, decay 0.995)" in text   # the default, said in the settings


def test_progress_counts_epochs_and_its_total_becomes_the_epochs_trained():
    from ctrkit.datasets import load_sample
    df = load_sample("byterec")
    from ctrkit import FeatureEncoder
    enc = FeatureEncoder(sparse=["uid", "item_id", "channel"], dense=["duration_time"], embedding_dim=4).fit(df)
    bar = EpochProgress(networks=2, max_epochs=5, disable=True)
    assert bar.total == 10                                   # known before the first epoch: an ETA from the start
    for epochs in (2, 3):
        m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(4,), task_names=["finish", "like"])
        m.compile("adam", metrics=["auc"])
        m.fit(df, df[["finish", "like"]], epochs=epochs, verbose=0, callbacks=[bar.callback()])
        bar.finished(epochs)
    assert bar.done == 5 and bar.total == 5
    bar.close()
