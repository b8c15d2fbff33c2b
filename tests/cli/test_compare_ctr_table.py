"""`ctrkit compare --ctr-models`: single-task CTR models trained per task under the comparison's budget, as a
second table in report.md and as marked rows of results.csv."""
import pandas as pd
import pytest

from ctrkit.cli import main
from ctrkit.compare.ctr_table import CTR_MODELS, CTR_TABLE, ctr_model_specs, parse_ctr_models
from ctrkit.exceptions import DataValidationError
from ctrkit.registry import MODELS, build_model


def test_compare_with_ctr_models_on_census(tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["compare", "--quick", "--no-progress", "--models", "MMoE", "--baselines", "lr", "--epochs", "2",
               "--ctr-models", "deepfm,GDCN", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "## Single-task CTR models" in printed and "| DeepFM |" in printed
    runs = pd.read_csv(out / "results.csv")
    assert set(runs["model"]) == {"MMoE", "LR (one-hot)", "DeepFM", "GDCN"}
    ctr = runs[runs["table"] == CTR_TABLE].set_index("model")
    assert set(ctr.index) == {"DeepFM", "GDCN"}
    assert runs[runs["table"] != CTR_TABLE]["model"].tolist() == ["MMoE", "LR (one-hot)"]
    # one network per task, each trained with early stopping under the cap of 2 epochs, learning both tasks
    assert (ctr["epochs"] <= 2).all() and (ctr["epochs"] >= 1).all()
    assert (ctr["income_auc"] > 0.88).all() and (ctr["marital_auc"] > 0.9).all()
    from ctrkit.compare import prepare_census
    cols = prepare_census(1).feature_columns
    for name in ("DeepFM", "GDCN"):
        cls_name, kw = CTR_MODELS[name]
        one = build_model(cls_name, cols, ["income"], ["binary"], **kw).count_params()
        assert ctr.loc[name, "params"] == 2 * one        # two tasks: two networks of the same shape
    # the multi-task table and summary leave the CTR rows out; the report has them in a second table
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["model"]) == {"MMoE", "LR (one-hot)"}
    report = (out / "report.md").read_text()
    first, second = report.split("## Single-task CTR models")
    second = second.split("Published (MMoE paper")[0]
    assert "| MMoE |" in first and "| DeepFM |" not in first
    assert "| DeepFM |" in second and "| GDCN |" in second and "| MMoE |" not in second


def test_parse_ctr_models_names_and_errors():
    assert parse_ctr_models("deepfm, DCN,finalmlp,gdcn-p") == ("DeepFM", "DCN", "FinalMLP", "GDCN-P")
    assert parse_ctr_models("all") == tuple(CTR_MODELS)
    assert parse_ctr_models("none") == () and parse_ctr_models(None) == ()
    with pytest.raises(ValueError, match="'deepfn'.*'DeepFM'"):
        parse_ctr_models("deepfn")
    with pytest.raises(ValueError, match="behaviour sequences"):
        parse_ctr_models("DIN")


def test_every_tabular_single_task_model_has_comparison_sizes():
    tabular = {n for n, c in MODELS.items() if c.__module__.startswith("ctrkit.") and not c.multitask
               and not getattr(c, "sequential", False) and not c.conformance_tags.get("needs_sequence")}
    assert tabular <= {cls for cls, _ in CTR_MODELS.values()}, tabular - {cls for cls, _ in CTR_MODELS.values()}


def test_a_model_the_data_does_not_suit_fails_before_training(tmp_path, capsys):
    from ctrkit.compare import prepare_frame_data
    from ctrkit.datasets import load_sample
    data = prepare_frame_data(load_sample("byterec"), ["finish"], sparse=[], dense=["duration_time", "time"])
    with pytest.raises(DataValidationError, match="DeepFM cannot be built on this data.*SparseFeat"):
        ctr_model_specs(data, ["GDCN", "DeepFM"])
    assert set(ctr_model_specs(data, ["GDCN", "FinalMLP"])) == {"GDCN", "FinalMLP"}   # no sparse features needed
    rc = main(["compare", "--data", "synthetic", "--ctr-models", "deepfm", "--out", str(tmp_path / "x")])
    assert rc == 2 and "--ctr-models" in capsys.readouterr().err
    rc = main(["compare", "--ctr-models", "nope", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown single-task model 'nope'" in err and err.count("\n") == 1
