"""The example scripts in examples/ run on the bundled data and print sensible metrics.

Each script is loaded with runpy (so torch and pandas are imported once for the whole file) and its
``main(argv)`` is called with small settings; the printed report and the returned metrics are checked.
``examples/deepctr_torch_mmoe.py`` is run by tests/test_deepctr_compat.py.
"""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, argv: list[str], capsys) -> tuple[dict, str]:
    main = runpy.run_path(str(EXAMPLES / name), run_name="__example__")["main"]
    res = main(argv)
    return res, capsys.readouterr().out


def _metric(out: str, task: str, metric: str) -> float:
    m = re.search(rf"^{task}: .*test {metric} ([0-9.]+|nan)", out, flags=re.M)
    assert m, f"no '{task}: ... test {metric}' line in:\n{out[-1500:]}"
    return float(m.group(1))


def test_census_mmoe_learns_both_tasks(capsys, tmp_path):
    res, out = run_example("census_mmoe.py", ["--rows", "6000", "--epochs", "2", "--batch-size", "256",
                                              "--experts", "4", "--plots", str(tmp_path)], capsys)
    assert out.count("Epoch ") == 2
    income, marital = _metric(out, "income", "AUC"), _metric(out, "marital", "AUC")
    assert income == pytest.approx(res["income_auc"], abs=1e-4)
    assert income > 0.85 and marital > 0.9, out[-600:]          # far above chance after 2 short epochs
    assert {p.name for p in tmp_path.iterdir()} == {"learning_curves.png", "gate_weights.png", "calibration.png",
                                                   "roc.png"}


def test_criteo_deepfm_runs_on_the_sample(capsys):
    res, out = run_example("criteo_deepfm.py", ["--epochs", "2"], capsys)
    assert "DeepFM on the bundled Criteo sample" in out and out.count("Epoch ") == 2
    auc, ll = _metric(out, "click", "AUC"), _metric(out, "click", "logloss")
    assert 0.0 <= auc <= 1.0 and 0.0 < ll < 2.0
    assert ll == pytest.approx(res["logloss"], abs=1e-4)   # one task: Keras' key


def test_aliccp_esmm_reports_ctr_ctcvr_and_pcvr(capsys):
    res, out = run_example("aliccp_esmm.py", ["--epochs", "2"], capsys)
    assert "ESMM on the bundled Ali-CCP samples: 100 training rows" in out
    assert set(res) >= {"ctr_auc", "ctcvr_auc"}
    for task in ("ctr", "ctcvr"):
        assert 0.0 <= _metric(out, task, "AUC") <= 1.0
    m = re.search(r"mean pCVR: clicked rows ([0-9.]+), other rows ([0-9.]+)", out)
    assert m and all(0.0 < float(v) < 1.0 for v in m.groups())


def test_movielens_genres_are_a_varlen_feature_and_it_learns(capsys):
    res, out = run_example("movielens.py", ["--epochs", "1"], capsys)
    assert "VarLenSparseFeat(sparsefeat=SparseFeat(name='genres'" in out
    assert "80,000 training ratings, 20,000 later test ratings" in out
    assert _metric(out, "like", "AUC") > 0.6                     # liking is predictable from user and movie


def test_movielens_rating_regression_beats_the_mean(capsys):
    res, out = run_example("movielens.py", ["--task", "rating", "--epochs", "1"], capsys)
    rmse = _metric(out, "rating", "RMSE")
    base = float(re.search(r"predicting the training mean: RMSE ([0-9.]+)", out).group(1))
    assert rmse < base, out[-400:]


def test_ad_ranking_walks_from_the_log_to_the_auction(capsys, tmp_path):
    res, out = run_example("ad_ranking.py", ["--requests", "3000", "--epochs", "3", "--out", str(tmp_path)], capsys)
    assert "ad log: 30,000 candidate impressions of 3,000 requests" in out
    # negative downsampling kept every click of the 24,000 training rows and about a quarter of the rest
    m = re.search(r"([0-9,]+) training rows after keeping 0.25 of the non-clicks \(of 24,000; ([0-9,]+) clicks", out)
    kept, clicks = (int(g.replace(",", "")) for g in m.groups())
    assert 0.2 < (kept - clicks) / (24_000 - clicks) < 0.3
    ctr_ratio = float(re.search(r"^ctr: .*test calibration ([0-9.]+)", out, flags=re.M).group(1))
    assert 0.7 < ctr_ratio < 1.4                     # corrected for the downsampling (uncorrected: ~3.5)
    for task in ("ctr", "cvr"):
        auc = _metric(out, task, "AUC")
        oracle = float(re.search(rf"^{task}: .*oracle: AUC ([0-9.]+)", out, flags=re.M).group(1))
        assert auc == pytest.approx(res[f"{task}_auc"], abs=1e-4)
        assert oracle == pytest.approx(res[f"oracle_{task}_auc"], abs=1e-4)
        assert 0.55 < auc < oracle + 0.02, out[-1500:]           # learns something; the truth is the ceiling
        gauc_model = float(re.search(rf"^{task}: .*test gAUC ([0-9.]+)", out, flags=re.M).group(1))
        gauc_oracle = float(re.search(rf"^{task}: .*oracle: .*gAUC ([0-9.]+)", out, flags=re.M).group(1))
        assert gauc_model == pytest.approx(res[f"{task}_gauc"], abs=1e-4) and 0.5 < gauc_model < gauc_oracle + 0.02
    m = re.search(r"^model: revenue ([0-9.]+) of the oracle's, clicks ([0-9.]+), advertiser value ([0-9.]+)",
                  out, flags=re.M)
    assert m, out[-1500:]
    assert float(m.group(1)) == pytest.approx(res["revenue_vs_oracle"], abs=1e-3)
    assert 0.0 < float(m.group(2)) and 0.0 < float(m.group(3)) <= 1.0 + 1e-9    # the oracle maximises the value
    assert (tmp_path / "config.json").exists() and "served one request's 10 candidates" in out
