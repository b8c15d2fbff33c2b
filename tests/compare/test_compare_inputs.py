"""A comparison chooses its inputs (numeric embedding, embedding width, batch size) on the validation split: it trains
its MMoE once per preset and keeps the better; fixed inputs skip the pilot; the CLI and the report say which."""
import dataclasses

import pandas as pd
import pytest

from ctrkit.cli import main
from ctrkit.compare import INPUT_PRESETS, CompareConfig, choose_inputs, input_candidates, prepare_frame_data


@pytest.fixture(scope="module")
def frame():
    from ctrkit.datasets import census_feature_types, load_census_income
    X, y = load_census_income(group=1)
    sparse, dense = census_feature_types()
    return pd.concat([X, y], axis=1).iloc[:4000].reset_index(drop=True), sparse, dense


def _prepare(frame, spoil=None, calls=None):
    """prepare(cfg) for census[:4000]; the preset named ``spoil`` gets inverted training labels, so its pilot
    learns the opposite of what validation measures."""
    df, sparse, dense = frame

    def prepare(c):
        if calls is not None:
            calls.append(c)
        data = prepare_frame_data(df, ["income", "marital"], sparse=sparse, dense=dense, name="census[:4000]",
                                  embedding_dim=c.embedding_dim, numeric_embedding=c.numeric_embedding,
                                  n_bins=c.n_bins)
        if c.inputs == spoil:
            x, y = data.train
            data.train = (x, 1 - y)
        return data
    return prepare


def test_candidates_are_the_presets_unless_the_inputs_are_fixed():
    auto = input_candidates(CompareConfig())
    assert list(auto) == list(INPUT_PRESETS) == ["compact", "wide"]
    for name, c in auto.items():
        assert {k: getattr(c, k) for k in INPUT_PRESETS[name]} == INPUT_PRESETS[name]
        assert c.inputs == name
    assert INPUT_PRESETS["wide"]["cross_layers"] > 0 == INPUT_PRESETS["compact"]["cross_layers"]
    # the defaults of the preset fields are the compact preset, so a config built without a choice is consistent
    d = CompareConfig()
    assert {k: getattr(d, k) for k in INPUT_PRESETS["compact"]} == INPUT_PRESETS["compact"]
    assert {k: c.batch_size for k, c in input_candidates(CompareConfig(inputs="wide")).items()} == {"wide": 512}
    # a field the user set is never overridden by a preset
    mine = input_candidates(CompareConfig(batch_size=64))
    assert list(mine) == ["as set"] and mine["as set"].batch_size == 64 and mine["as set"].embedding_dim == 4
    assert list(input_candidates(CompareConfig(inputs=None, embedding_dim=4))) == ["as set"]
    assert list(input_candidates(CompareConfig(cross_layers=1))) == ["as set"]
    with pytest.raises(ValueError, match=r"inputs: expected 'auto', None or one of \['compact', 'wide'\], got 'big'"):
        input_candidates(CompareConfig(inputs="big"))


@pytest.mark.parametrize("spoil", ["compact", "wide"])
def test_the_preset_whose_mmoe_validates_better_is_kept(frame, spoil):
    cfg = CompareConfig(max_epochs=3, workers=1, seeds=1, weight_averaging=None)   # 3,200 rows: few steps
    data, chosen = choose_inputs(_prepare(frame, spoil=spoil), cfg, progress=False)
    info = data.extra["inputs"]
    good = "wide" if spoil == "compact" else "compact"
    vals = {p["inputs"]: p["val"] for p in info["pilots"]}
    assert set(vals) == {"compact", "wide"} and vals[spoil] < 0.5 < 0.8 < vals[good], vals
    assert info["chosen"] == good and chosen.inputs == good
    assert all(p["task"] == "income" and p["metric"] == "auc" and p["epochs"] >= 1 for p in info["pilots"])
    # the data handed on is encoded with the chosen preset, and the settings carry its batch size
    emb = {f.embedding_dim for f in data.feature_columns if type(f).__name__ == "SparseFeat"}
    assert emb == {INPUT_PRESETS[good]["embedding_dim"]} and chosen.batch_size == INPUT_PRESETS[good]["batch_size"]
    kinds = {f.embedding.kind for f in data.feature_columns if type(f).__name__ == "DenseFeat"}
    assert kinds == {INPUT_PRESETS[good]["numeric_embedding"]}
    from ctrkit.compare import inputs_line
    line = inputs_line(data)
    assert f"Inputs chosen on the validation split: {good!r}" in line and f"{spoil} {vals[spoil]:.4f} (" in line


def test_fixed_inputs_prepare_once_and_train_no_pilot(frame):
    calls = []
    data, chosen = choose_inputs(_prepare(frame, calls=calls), CompareConfig(inputs="wide", workers=1),
                                 progress=False)
    assert len(calls) == 1 and calls[0].embedding_dim == 16 and chosen.batch_size == 512
    assert data.extra["inputs"] == {"chosen": "wide", "pilots": []}
    from ctrkit.compare import inputs_line
    assert "the 'wide' preset" in inputs_line(data)


def test_cli_inputs_flag(tmp_path, capsys):
    from ctrkit.datasets import load_sample
    path = tmp_path / "b.csv"
    load_sample("byterec").to_csv(path, index=False)
    base = ["compare", "--no-progress", "--data", str(path), "--tasks", "finish,like", "--sparse",
            "uid,item_id,channel", "--dense", "duration_time", "--models", "MMoE", "--seeds", "1", "--epochs", "2",
            "--baselines", "none", "--workers", "1"]
    rc = main([*base, "--inputs", "wide", "--embedding-dim", "8", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "--inputs wide sets --numeric-embedding, --embedding-dim, --cross-layers and" in err
    rc = main([*base, "--out", str(tmp_path / "r")])   # auto: two pilots, the choice printed and reported
    out = capsys.readouterr().out
    assert rc == 0 and "Inputs chosen on the validation split:" in out
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Inputs chosen on the validation split:" in report and "compact " in report and "wide " in report
    rc = main([*base, "--embedding-dim", "8", "--out", str(tmp_path / "s")])   # the user's own inputs: no pilot
    out = capsys.readouterr().out
    assert rc == 0 and "Inputs chosen" not in out and "embedding dim 8" in (tmp_path / "s" / "report.md").read_text()
    rc = main([*base, "--cross-layers", "1", "--out", str(tmp_path / "c")])   # as set too, and reported
    assert rc == 0 and "gated cross network (GDCN, 1 layer, rank 64)" in (tmp_path / "c" / "report.md").read_text()
    assert "Inputs chosen" not in capsys.readouterr().out
    assert main([*base, "--cross-layers", "-1", "--out", str(tmp_path / "d")]) == 2
    assert "--cross-layers must be >= 0, got -1" in capsys.readouterr().err


def test_the_input_cross_is_every_models_and_in_the_parameter_budget(frame):
    """With cross_layers set every deep model of the comparison gets the same gated cross network on its input,
    and the widths matched to MMoE's parameter count include it (Shared-Bottom stays within a few percent)."""
    from ctrkit.compare.tabular import _model_specs
    from ctrkit.layers.cross import GatedCrossNet
    data = _prepare(frame)(CompareConfig(**INPUT_PRESETS["wide"]))
    specs = _model_specs(data, CompareConfig(**INPUT_PRESETS["wide"]))
    plain = _model_specs(data, CompareConfig(**{**INPUT_PRESETS["wide"], "cross_layers": 0}))
    assert list(specs) == ["Single-Task", "Shared-Bottom", "OMoE", "MMoE", "PLE"]
    built = {name: [m for m, _ in build(0)] for name, build in specs.items()}
    for name, models in built.items():
        for m in models:
            assert isinstance(m.input_cross, GatedCrossNet), name
            assert (m.input_cross.low_rank, len(m.input_cross.bias)) == (64, 2)
    assert all(m.input_cross is None for build in plain.values() for m, _ in build(0))
    mmoe, sb = built["MMoE"][0].count_params(), built["Shared-Bottom"][0].count_params()
    assert abs(sb - mmoe) / mmoe < 0.03
    cross_params = sum(p.numel() for p in built["MMoE"][0].input_cross.parameters())
    assert mmoe - plain["MMoE"](0)[0][0].count_params() == cross_params


def test_the_chosen_pilot_is_the_comparisons_own_mmoe_run(frame):
    """The winner's pilot is reused as the comparison's MMoE seed-0 run (not trained twice), and it is exactly the
    run the comparison would have made."""
    from ctrkit.compare import run_comparison
    cfg = CompareConfig(max_epochs=3, workers=1, seeds=1, models=("MMoE",), baselines=())
    data, chosen = choose_inputs(_prepare(frame), cfg, progress=False)
    assert list(data.extra["trained"]) == [("MMoE", 0)]
    reused = run_comparison(data, chosen, progress=False).runs.iloc[0]
    pilot = data.extra["trained"]["MMoE", 0][0]
    assert reused["seconds"] == pilot["seconds"] and reused["income_auc"] == pilot["income_auc"]
    del data.extra["trained"]
    again = run_comparison(data, chosen, progress=False).runs.iloc[0]
    assert again["seconds"] != pilot["seconds"]   # trained anew this time ...
    assert again["income_auc"] == pytest.approx(pilot["income_auc"], abs=1e-6)   # ... to the same model
    assert again["epochs"] == pilot["epochs"]



def test_runs_made_ahead_while_a_pilot_trains_are_the_comparisons_own(frame):
    """With two workers, the one whose pilot is done first makes the comparison's next runs on that preset while
    the other pilot trains; if that preset wins they are reused, and they equal the runs the comparison makes."""
    from ctrkit.compare import run_comparison
    df, sparse, dense = frame

    def prepare(c):   # wide: more rows, inverted labels (it loses, and its pilot takes longer); compact: fewer
        part = df if c.inputs == "wide" else df.iloc[:1500]
        data = prepare_frame_data(part, ["income", "marital"], sparse=sparse, dense=dense, name="census",
                                  embedding_dim=c.embedding_dim, numeric_embedding=c.numeric_embedding,
                                  n_bins=c.n_bins)
        if c.inputs == "wide":
            x, y = data.train
            data.train = (x, 1 - y)
        return data
    cfg = CompareConfig(max_epochs=4, patience=5, workers=2, seeds=2, models=("Shared-Bottom", "MMoE"), baselines=())
    data, chosen = choose_inputs(prepare, cfg, progress=False)
    assert data.extra["inputs"]["chosen"] == "compact"
    trained = dict(data.extra["trained"])
    assert ("MMoE", 0) in trained and len(trained) > 1   # at least one run made ahead
    assert set(trained) <= {("Shared-Bottom", 0), ("MMoE", 0), ("Shared-Bottom", 1), ("MMoE", 1)}
    reused = run_comparison(data, dataclasses.replace(chosen, workers=1), progress=False).runs
    data.extra["trained"] = {}
    fresh = run_comparison(data, dataclasses.replace(chosen, workers=1), progress=False).runs
    for (model, seed), run in trained.items():
        r = reused[(reused["model"] == model) & (reused["seed"] == seed)].iloc[0]
        f = fresh[(fresh["model"] == model) & (fresh["seed"] == seed)].iloc[0]
        assert r["seconds"] == run[0]["seconds"]                       # the run made ahead, not trained again
        assert r["income_auc"] == pytest.approx(f["income_auc"], abs=1e-6) and r["epochs"] == f["epochs"]
