"""The comparison validates and keeps each deep model's averaged weights by default (CompareConfig.weight_averaging),
says so in its report, and turns it off on request."""
import pytest

from ctrkit.cli import main
from ctrkit.compare import CompareConfig
from ctrkit.compare.tabular import _model_specs, _train_one


@pytest.fixture(scope="module")
def data(census_head):
    return census_head


def _run(data, cfg):
    model, tasks = _model_specs(data, cfg)["MMoE"](0)[0]
    out, curve, _ = _train_one(model, tasks, data, cfg, seed=0)
    val = model.evaluate(*[p[tasks] if i else p for i, p in enumerate(data.val)])
    return out, curve, val


def test_averaged_weights_are_kept_by_default_and_off_on_request(data):
    assert CompareConfig().weight_averaging == 0.995
    cfg = CompareConfig(max_epochs=4, patience=1, batch_size=256)
    out, curve, val = _run(data, cfg)
    # the kept weights are the best validated ones, and those were averages (not the last step's weights)
    assert val["income_auc"] == pytest.approx(max(curve["val_income_auc"]), abs=1e-7)
    off, off_curve, _ = _run(data, CompareConfig(max_epochs=4, patience=1, batch_size=256, weight_averaging=None))
    assert off_curve["val_income_auc"] != curve["val_income_auc"]
    assert off["income_auc"] != out["income_auc"]


def test_cli_flag(capsys, tmp_path):
    assert main(["compare", "--weight-averaging", "1.5", "--out", str(tmp_path / "r")]) == 2
    assert "--weight-averaging must be a decay in [0, 1)" in capsys.readouterr().err
