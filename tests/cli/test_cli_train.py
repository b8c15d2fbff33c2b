"""`ctrkit train | evaluate | predict | export | inspect` end to end on the bundled census data, and config errors."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctrkit import load_model
from ctrkit.cli import main
from ctrkit.cli.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census_mmoe.toml"
ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def quick_config(d: Path, max_rows: int, training: str = "", output: str = "") -> str:
    """A config extending the shipped census example: ``max_rows`` rows, 1 epoch, run folder ``d / "run"``."""
    return write(d / "quick.toml", f"""
extends = {json.dumps(str(EXAMPLE))}
[data]
max_rows = {max_rows}
[training]
epochs = 1
verbose = 0
{training}
[output]
dir = {json.dumps(str(d / "run"))}
{output}
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`ctrkit train` on a small config that extends the shipped census example: 3,000 rows, 1 epoch."""
    d = tmp_path_factory.mktemp("train")
    cfg = quick_config(d, 3000)
    rc = main(["train", cfg])
    assert rc == 0
    from ctrkit.datasets import load_census_income
    X, y = load_census_income(group=1)
    score = pd.concat([X, y], axis=1).iloc[3000:3600].reset_index(drop=True)   # rows the model never saw
    score.insert(0, "row_id", np.arange(100, 100 + len(score)))
    score.to_csv(d / "score.csv", index=False)
    score.to_parquet(d / "score.parquet")
    return d


def test_train_writes_model_history_config_metrics_and_plots(run):
    out = run / "run"
    model = load_model(str(out / "model"))
    assert type(model).__name__ == "MMoE" and model.task_names == ["income", "marital"]
    assert model.get_config()["num_experts"] == 8                       # [model].args of the example
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 1 and {"loss", "val_income_auc", "val_marital_auc"} <= set(hist.columns)
    used = json.loads((out / "train_config.json").read_text())
    assert used["data"]["max_rows"] == 3000 and used["training"]["epochs"] == 1        # the override ...
    assert used["training"]["learning_rate"] == 0.003 and used["model"]["name"] == "MMoE"   # ... on the base
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["marital_auc"] > 0.8 and metrics["test"]["income_auc"] > 0.7     # 2,400 rows, 1 epoch
    if importlib.util.find_spec("matplotlib") is not None:
        for f in ("learning_curves.png", "gate_weights.png", "calibration.png", "roc.png"):
            assert (out / f).stat().st_size > 1000, f


def test_train_writes_reference_baselines_scored_on_the_same_test_rows(run):
    from ctrkit.compare.baselines import BASELINE_NAMES
    metrics = json.loads((run / "run" / "metrics.json").read_text())
    ref = metrics["baselines"]
    assert set(ref) == {BASELINE_NAMES["lr"], BASELINE_NAMES["gbdt"]}        # the default [training].baselines
    for name, row in ref.items():
        assert set(row) == {"income_auc", "income_logloss", "marital_auc", "marital_logloss"}, name
        assert 0.5 < row["marital_auc"] <= 1 and row["income_logloss"] > 0    # fitted, not a constant
    # the trees were fitted on the model's training rows: their test AUC differs from the model's own
    assert ref[BASELINE_NAMES["gbdt"]]["marital_auc"] != metrics["test"]["marital_auc"]


def test_train_without_baselines(tmp_path):
    cfg = quick_config(tmp_path, 600, training="baselines = []", output="plots = false")
    assert main(["train", cfg]) == 0
    assert "baselines" not in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_evaluate_reads_in_chunks_and_matches_model_evaluate(run, capsys):
    capsys.readouterr()
    rc = main(["evaluate", str(run / "run"), str(run / "score.csv"), "--chunk-size", "170", "--json"])
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    model = load_model(str(run / "run" / "model"))
    df = pd.read_parquet(run / "score.parquet")
    want = model.evaluate(df[list(model.encoder.feature_names_in_)], df[["income", "marital"]])
    assert got["rows"] == 600
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-5), k


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_predict_is_chunked_and_passes_id_columns(run, fmt, capsys):
    out = run / f"preds.{fmt}"
    rc = main(["predict", str(run / "run"), str(run / f"score.{fmt}"), "-o", str(out), "--id-column", "row_id",
               "--chunk-size", "250"])
    assert rc == 0
    preds = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert list(preds.columns) == ["row_id", "income", "marital"] and len(preds) == 600
    assert preds["row_id"].tolist() == list(range(100, 700))
    model = load_model(str(run / "run" / "model"))
    want = model.predict(pd.read_parquet(run / "score.parquet"))     # the frame itself ("NA" is a category)
    np.testing.assert_allclose(preds[["income", "marital"]].to_numpy(), want, atol=1e-6)


def test_inspect_reports_vocabularies_parameters_and_memory(run, capsys):
    capsys.readouterr()
    assert main(["inspect", str(run / "run"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    model = load_model(str(run / "run" / "model"))
    feats = {f["name"]: f for f in s["features"]}
    assert len(feats) == 38 and feats["age"]["kind"] == "dense"
    assert feats["education" if "education" in feats else "race"]["vocabulary_size"] == \
        model.encoder.vocabulary_size("race")
    assert sum(s["parameters"]["by_module"].values()) == s["parameters"]["total"] == model.count_params()
    emb = model.embedding.weights[0]
    assert s["embedding"]["bytes"] == emb.numel() * 4 and s["embedding"]["rows"] == emb.shape[0]
    assert main(["inspect", str(run / "run" / "model")]) == 0               # the model folder itself works too
    text = capsys.readouterr().out
    assert "embedding:" in text and "vocabulary" in text and "moe" in text


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"export needs the 'export' extra; missing {ONNX_MISSING}")
def test_export_onnx_from_the_cli(run, capsys):
    out = run / "m.onnx"
    assert main(["export", str(run / "run"), "--format", "onnx", "-o", str(out)]) == 0
    assert out.stat().st_size > 0 and json.loads((run / "m.onnx.json").read_text())["model_class"] == "MMoE"
    from ctrkit.export import parity
    model = load_model(str(run / "run" / "model"))
    assert parity(model, str(out), pd.read_parquet(run / "score.parquet")) <= 1e-5


def test_export_torch_from_the_cli(run):
    out = run / "m.pt2"
    assert main(["export", str(run / "run"), "--format", "torch-export", "-o", str(out)]) == 0
    from ctrkit.export import parity
    model = load_model(str(run / "run" / "model"))
    assert parity(model, str(out), pd.read_parquet(run / "score.parquet").iloc[:50]) <= 1e-5


# ------------------------------------------------------------------------------------------ errors
def test_help_on_each_command(capsys):
    for cmd in ("train", "evaluate", "predict", "export", "inspect"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert f"usage: ctrkit {cmd}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:           # argparse usage errors exit with 2
        main(["predict", "somewhere"])
    assert e.value.code == 2


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_unknown_key_with_suggestion_exits_2(tmp_path, capsys):
    cfg = write(tmp_path / "c.toml", '[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n'
                                     '[training]\nlerning_rate = 0.1\n')
    assert main(["train", cfg]) == 2
    err = _one_line_error(capsys)
    assert "Unknown key 'lerning_rate' in [training]. Did you mean 'learning_rate'?" in err
    cfg = write(tmp_path / "m.toml", '[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n'
                                     'args = { dnn_hiden_units = [8] }\n')
    assert main(["train", cfg]) == 2
    assert "Did you mean 'dnn_hidden_units'?" in _one_line_error(capsys)
    cfg = write(tmp_path / "n.toml", '[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "MMOe"\n')
    assert main(["train", cfg]) == 2
    assert "Did you mean 'MMoE'?" in _one_line_error(capsys)


@pytest.mark.parametrize("text, message", [
    ('[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n[training]\nepochs = "ten"\n',
     "training.epochs must be an integer, got 'ten'"),
    ('[data]\ntrain = "census:1"\n[tasks]\nincome = "binomial"\n[model]\nname = "DNN"\n', "[tasks].income must be one"),
    ('[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n', "Missing required key 'model'"),
    ('[data]\ntrain = "census:1"\nsplit = [0.5, 0.1]\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n',
     "sum to 1"),
    ('[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\nargs = { seed = 3 }\n',
     "set by ctrkit train"),
    ('[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n[features]\nsparse = ["income"]\n',
     "also listed as features"),
    ('[data\ntrain = 1\n', "could not be parsed"),
    ('[data]\ntrain = "census:1"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n[training]\nbaselines = ["xgb"]\n',
     "[training].baselines"),
])
def test_config_errors_exit_2_with_one_line(tmp_path, capsys, text, message):
    assert main(["train", write(tmp_path / "c.toml", text)]) == 2
    assert message in _one_line_error(capsys)


def test_data_errors_exit_2(tmp_path, capsys, run):
    cfg = write(tmp_path / "c.toml", '[data]\ntrain = "census:1"\nmax_rows = 100\n[tasks]\nincme = "binary"\n'
                                     '[model]\nname = "DNN"\n')
    assert main(["train", cfg]) == 2
    assert "label column(s) ['incme'] are not in 'census:1'. Did you mean 'income'?" in _one_line_error(capsys)
    cfg = write(tmp_path / "d.toml",
                '[data]\ntrain = "missing.csv"\n[tasks]\nincome = "binary"\n[model]\nname = "DNN"\n')
    assert main(["train", cfg]) == 2
    assert "missing.csv' does not exist" in _one_line_error(capsys)
    cfg = write(tmp_path / "e.toml", '[data]\ntrain = "census:1"\nmax_rows = 200\n[tasks]\nincome = "binary"\n'
                                     'marital = "binary"\n[model]\nname = "DNN"\n')
    assert main(["train", cfg]) == 2
    assert "DNN is a single-task model but [tasks] names 2 tasks" in _one_line_error(capsys)
    assert main(["evaluate", str(run / "run"), str(tmp_path / "nope.csv")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    pd.DataFrame({"age": [1.0]}).to_csv(tmp_path / "few.csv", index=False)
    assert main(["predict", str(run / "run"), str(tmp_path / "few.csv"), "-o", str(tmp_path / "p.csv")]) == 2
    assert "lacks column(s)" in _one_line_error(capsys) and not (tmp_path / "p.csv").exists()
    assert main(["inspect", str(tmp_path)]) == 2
    assert "is not a saved model" in _one_line_error(capsys)


def test_runtime_failure_exits_1(run, tmp_path, capsys, monkeypatch):
    import ctrkit.cli.model_commands as ct

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(ct, "_load", boom)
    assert main(["inspect", str(run / "run")]) == 1
    assert "failed: RuntimeError: disk on fire" in _one_line_error(capsys)


def test_extends_merges_tables_and_yaml(tmp_path, monkeypatch):
    write(tmp_path / "base.toml", '[data]\ntrain = "d.csv"\nseed = 1\n[tasks]\nclick = "binary"\n'
                                  '[model]\nname = "MMoE"\n'
                                  'args = { num_experts = 3, tower_dnn_hidden_units = [4] }\n[training]\nepochs = 5\n')
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub" / "child.yaml",
                  'extends: ../base.toml\nmodel:\n  args:\n    num_experts: 6\ntraining:\n  batch_size: 64\n')
    if importlib.util.find_spec("yaml") is not None:
        cfg = load_config(child)
        assert cfg.model.args == {"num_experts": 6, "tower_dnn_hidden_units": [4]}     # tables merge key by key
        assert cfg.training.epochs == 5 and cfg.training.batch_size == 64 and cfg.data.seed == 1
        assert cfg.base_dir == str(tmp_path / "sub")
    monkeypatch.setitem(sys.modules, "yaml", None)                       # PyYAML absent: a clear error
    with pytest.raises(ConfigError, match="needs PyYAML: pip install pyyaml"):
        load_config(child)
    loop = write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="cycle: a.toml -> b.toml -> a.toml"):
        load_config(loop)


def test_shipped_example_config_is_valid():
    cfg = load_config(str(EXAMPLE))
    assert cfg.data.train == "census:1" and cfg.model.name == "MMoE" and list(cfg.tasks) == ["income", "marital"]
    quick = load_config(str(EXAMPLE.with_name("census_mmoe_quick.toml")))
    assert quick.data.max_rows == 5000 and quick.model.args == cfg.model.args


def test_train_with_varlen_json_config_and_explicit_files(tmp_path, capsys):
    """Column roles with a var-length column (sep, maxlen), a regression task, separate validation / test files."""
    from ctrkit.datasets import load_sample
    df = load_sample("movielens")
    df.iloc[:140].to_csv(tmp_path / "tr.csv", index=False)
    df.iloc[140:170].to_csv(tmp_path / "va.csv", index=False)
    df.iloc[170:].to_parquet(tmp_path / "te.parquet")
    cfg = {"data": {"train": "tr.csv", "validation": "va.csv", "test": "te.parquet"},
           "features": {"sparse": ["user_id", "movie_id", "gender"], "dense": ["age"],
                        "varlen": {"genres": {"sep": "|", "maxlen": 3}}, "embedding_dim": 4},
           "tasks": {"rating": "regression"},
           "model": {"name": "DeepFM", "args": {"dnn_hidden_units": [8]}},
           "training": {"epochs": 2, "batch_size": 32, "verbose": 0, "learning_rate": 0.01},
           "output": {"dir": str(tmp_path / "run"), "plots": False}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "c.json")]) == 0
    model = load_model(str(tmp_path / "run" / "model"))
    genres = next(f for f in model.feature_columns if f.name == "genres")
    assert genres.maxlen == 3 and model.encoder.varlen_columns_ == {"genres": "|"}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test", "baselines"} and "mse" in metrics["test"]   # one task: Keras' key
    assert all(set(r) == {"mse"} for r in metrics["baselines"].values())   # regression references: Ridge, trees
    assert not list((tmp_path / "run").glob("*.png"))                      # plots = false


def test_train_reports_grouped_and_calibration_metrics(tmp_path, capsys, monkeypatch):
    """`group_by` in [training]: gAUC per group in the validation history and the test report; the group column
    reaches evaluate although the config's features are those the example infers. `weight_averaging` validates
    the averaged weights."""
    from ctrkit.callbacks import WeightAveraging
    swapped = []
    swap_in = WeightAveraging._swap_in
    monkeypatch.setattr(WeightAveraging, "_swap_in", lambda self: (swapped.append(self.decay), swap_in(self)))
    cfg = write(tmp_path / "g.toml", f"""
extends = {json.dumps(str(EXAMPLE))}
[data]
max_rows = 3000
[training]
epochs = 1
verbose = 0
metrics = ["auc", "gauc", "ne", "calibration_ratio", "ece"]
group_by = "region_of_previous_residence"
early_stopping = {{ monitor = "val_income_auc", patience = 3 }}
weight_averaging = 0.99
[output]
dir = {json.dumps(str(tmp_path / "run"))}
plots = false
""")
    assert main(["train", cfg]) == 0
    assert swapped and set(swapped) == {0.99}   # the config's decay, swapped in for validation
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    assert {"val_marital_gauc", "val_marital_gauc_skipped", "val_income_ne"} <= set(hist.columns)
    test = metrics["test"]
    assert 0.5 < test["marital_gauc"] <= 1 and 0 <= test["marital_gauc_skipped"] < 1
    assert 0 < test["income_ne"] < 1.2 and 0.5 < test["income_calibration_ratio"] < 2 and test["income_ece"] < 0.2
    # `ctrkit evaluate` of the saved run reads the group column of the file too
    from ctrkit.datasets import load_census_income
    X, y = load_census_income(group=1)
    pd.concat([X, y], axis=1).iloc[3000:3600].to_csv(tmp_path / "score.csv", index=False)
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "score.csv"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.5 < ev["marital_gauc"] <= 1 and "income_ne" in ev
    bad = write(tmp_path / "b.toml", f"""
extends = {json.dumps(str(EXAMPLE))}
[data]
max_rows = 3000
[training]
epochs = 1
metrics = ["gauc"]
[output]
dir = {json.dumps(str(tmp_path / "bad"))}
""")
    assert main(["train", bad]) == 2     # gauc without group_by: a config error naming the fix
    assert main(["train", write(tmp_path / "w.toml", Path(bad).read_text().replace('metrics = ["gauc"]',
                                                                         "weight_averaging = 1.5"))]) == 2
    assert "[training].weight_averaging must be a decay in (0, 1)" in capsys.readouterr().err
