"""The CLI fails early and in one line: bad outputs, missing files, unreadable configs, non-numeric labels.

Every failure here exits 2 with one line on stderr naming the path or column, before any training (checked by
timing out the training: ``model.fit`` is patched to fail the test if it is ever reached).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctrkit.cli import main


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """A small CSV: two categorical, one numeric feature, two binary labels."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"c1": rng.choice(list("abcd"), n), "c2": rng.choice(["x", "y"], n),
                       "num": rng.normal(size=n), "click": rng.integers(0, 2, n), "buy": rng.integers(0, 2, n)})
    df.to_csv(d / "data.csv", index=False)
    bad = df.copy()
    bad["buy"] = bad["buy"].astype(object)
    bad.loc[7, "buy"] = "yes"
    bad.to_csv(d / "bad_labels.csv", index=False)
    return d


def config(d: Path, train="data.csv", model="MMoE", extra="", name="cfg.toml", out=None) -> str:
    out = out or str(d / "run")
    return write(d / name, f"""
[data]
train = {json.dumps(train)}
split = [0.8, 0.2]
[features]
sparse = ["c1", "c2"]
dense = ["num"]
embedding_dim = 2
[tasks]
click = "binary"
buy = "binary"
[model]
name = "{model}"
{extra}
[training]
epochs = 1
verbose = 0
[output]
dir = {json.dumps(out)}
plots = false
""")


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any model starts training: the errors must come first."""
    from ctrkit.models.facade import KerasFacade

    def fit(*a, **k):
        raise AssertionError("training started before the error")
    monkeypatch.setattr(KerasFacade, "fit", fit)


def one_line_exit_2(rc, capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def trained(frame):
    """One real `ctrkit train` run, for the commands on a saved model."""
    rc = main(["train", config(frame, name="ok.toml", out=str(frame / "ok-run")), "--no-plots"])
    assert rc == 0
    return frame / "ok-run"


# ------------------------------------------------------------------------------------------------ train
def test_train_out_that_is_an_existing_file(frame, tmp_path, capsys, no_training):
    f = tmp_path / "taken"
    f.write_text("x")
    rc = main(["train", config(frame), "--out", str(f)])
    one_line_exit_2(rc, capsys, "--out", str(f), "existing file")
    assert f.read_text() == "x"


def test_train_output_dir_of_the_config_that_is_a_file(frame, tmp_path, capsys, no_training):
    f = tmp_path / "taken"
    f.write_text("x")
    rc = main(["train", config(frame, out=str(f), name="cfgfile.toml")])
    one_line_exit_2(rc, capsys, "[output].dir", str(f))


def test_train_out_under_a_file(frame, tmp_path, capsys, no_training):
    f = tmp_path / "afile"
    f.write_text("x")
    rc = main(["train", config(frame), "--out", str(f / "sub" / "run")])
    one_line_exit_2(rc, capsys, "is a file, not a folder")


@pytest.mark.parametrize("labels", ["bad_labels.csv"])
def test_train_non_numeric_label_column(frame, capsys, no_training, labels):
    rc = main(["train", config(frame, train=labels, name="badlab.toml")])
    one_line_exit_2(rc, capsys, "label column 'buy'", "'yes'")


@pytest.mark.parametrize("key", ["train", "validation", "test"])
def test_train_missing_data_file(frame, capsys, no_training, key):
    extra_data = "" if key == "train" else f'{key} = "nope.csv"\n'
    text = Path(config(frame, train="nope.csv" if key == "train" else "data.csv")).read_text()
    text = text.replace("[data]\n", "[data]\n" + extra_data)
    rc = main(["train", write(frame / f"missing-{key}.toml", text)])
    one_line_exit_2(rc, capsys, f"[data].{key}", "nope.csv", "does not exist")


def test_train_unknown_model_name(frame, capsys, no_training):
    rc = main(["train", config(frame, model="MMOE", name="unknown.toml")])
    one_line_exit_2(rc, capsys, "[model].name", "MMoE")


def test_train_single_task_model_with_two_tasks(frame, capsys, no_training):
    rc = main(["train", config(frame, model="DNN", name="single.toml")])
    one_line_exit_2(rc, capsys, "single-task")


def test_train_unknown_model_argument(frame, capsys, no_training):
    rc = main(["train", config(frame, extra="args = { num_expert = 2 }", name="badarg.toml")])
    one_line_exit_2(rc, capsys, "num_expert", "num_experts")


@pytest.mark.parametrize("content, needle", [
    ("[data\ntrain = 1", ""),                      # broken TOML
    ("[data]\ntrain = 'x.csv'\n[nonsense]\na = 1", "nonsense"),
    ("", ""),                                      # empty
], ids=["syntax", "unknown-section", "empty"])
def test_train_unreadable_config(tmp_path, capsys, no_training, content, needle):
    rc = main(["train", write(tmp_path / "c.toml", content)])
    one_line_exit_2(rc, capsys, needle)


@pytest.mark.parametrize("name", ["missing.toml", "missing.yaml", "missing.json"])
def test_train_missing_config(tmp_path, capsys, no_training, name):
    rc = main(["train", str(tmp_path / name)])
    one_line_exit_2(rc, capsys, name)


def test_train_config_is_a_directory(tmp_path, capsys, no_training):
    rc = main(["train", str(tmp_path)])
    one_line_exit_2(rc, capsys)


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--max-rows", "3")])
def test_train_bad_overrides(frame, capsys, no_training, flag, value):
    rc = main(["train", config(frame), flag, value])
    one_line_exit_2(rc, capsys, flag)


# ------------------------------------------------------------------------------------ saved-model commands
def test_predict_output_that_is_a_directory(trained, frame, tmp_path, capsys):
    d = tmp_path / "out.csv"
    d.mkdir()
    rc = main(["predict", str(trained), str(frame / "data.csv"), "-o", str(d)])
    one_line_exit_2(rc, capsys, "-o/--output", str(d), "directory")


def test_predict_output_under_a_file(trained, frame, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    rc = main(["predict", str(trained), str(frame / "data.csv"), "-o", str(f / "p.csv")])
    one_line_exit_2(rc, capsys, "is a file, not a folder")


@pytest.mark.parametrize("out", ["p.txt", "p"])
def test_predict_output_with_an_unknown_extension(trained, frame, tmp_path, capsys, out):
    rc = main(["predict", str(trained), str(frame / "data.csv"), "-o", str(tmp_path / out)])
    one_line_exit_2(rc, capsys, ".csv")


@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect", "export"])
def test_missing_model_directory(frame, tmp_path, capsys, command):
    argv = {"predict": [str(frame / "data.csv"), "-o", str(tmp_path / "p.csv")], "evaluate": [str(frame / "data.csv")],
            "inspect": [], "export": ["-o", str(tmp_path / "m.onnx")]}[command]
    rc = main([command, str(tmp_path / "no-model"), *argv])
    one_line_exit_2(rc, capsys, "MODEL", "no-model")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_missing_data_file(trained, tmp_path, capsys, command):
    argv = ["-o", str(tmp_path / "p.csv")] if command == "predict" else []
    rc = main([command, str(trained), str(tmp_path / "nope.csv"), *argv])
    one_line_exit_2(rc, capsys, "DATA", "nope.csv")
    assert not (tmp_path / "p.csv").exists()


def test_evaluate_non_numeric_label_column(trained, frame, capsys):
    rc = main(["evaluate", str(trained), str(frame / "bad_labels.csv")])
    one_line_exit_2(rc, capsys, "label column 'buy'", "'yes'")


def test_export_output_that_is_a_directory(trained, tmp_path, capsys):
    d = tmp_path / "m.onnx"
    d.mkdir()
    rc = main(["export", str(trained), "-o", str(d)])
    one_line_exit_2(rc, capsys, "-o/--output", "directory")


def test_model_directory_that_is_not_a_model(tmp_path, capsys):
    rc = main(["inspect", str(tmp_path)])
    one_line_exit_2(rc, capsys, "not a saved model")


def test_predict_after_the_checks_still_works(trained, frame, tmp_path):
    out = tmp_path / "p.csv"
    assert main(["predict", str(trained), str(frame / "data.csv"), "-o", str(out)]) == 0
    p = pd.read_csv(out)
    assert len(p) == 300 and np.isfinite(p.to_numpy()).all()


# ---------------------------------------------------------------------------------------------- compare
def test_compare_out_that_is_an_existing_file(tmp_path, capsys):
    f = tmp_path / "report"
    f.write_text("x")
    rc = main(["compare", "--quick", "--out", str(f)])
    one_line_exit_2(rc, capsys, "--out", str(f))


def test_compare_missing_data_file(tmp_path, capsys):
    rc = main(["compare", "--data", str(tmp_path / "nope.csv"), "--tasks", "a", "--out", str(tmp_path / "r")])
    one_line_exit_2(rc, capsys, "--data", "nope.csv")
