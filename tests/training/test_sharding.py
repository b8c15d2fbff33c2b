"""Sharded embedding tables (``embedding_backend="torchrec"``) on a real sample (Census-Income).

This file is also the worker script: ``python tests/training/test_sharding.py single OUT`` (one process) and
``python -m torch.distributed.run --nproc_per_node=2 --standalone tests/training/test_sharding.py dist OUT TYPE``
(2 CPU processes, gloo). Every TorchRec run happens in a subprocess, so the test process never joins a process
group. Skipped where TorchRec does not import (install it with ``bash scripts/setup.sh --torchrec``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

TASKS = ["income", "marital"]
N_TRAIN, N_TEST = 16384, 4096


def _torchrec_ok() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torchrec"], capture_output=True, text=True)
    return probe.returncode == 0


# ---------------------------------------------------------------------------------------------- worker side
def _data():
    from ctrkit import FeatureEncoder
    from ctrkit.datasets.census import load_census_income
    X, y = load_census_income(1)
    X, y = X.iloc[: N_TRAIN + N_TEST].reset_index(drop=True), y.iloc[: N_TRAIN + N_TEST].reset_index(drop=True)
    enc = FeatureEncoder(embedding_dim=4).fit(X.iloc[:N_TRAIN])
    Xe = enc.transform(X)
    tr = {k: v[:N_TRAIN] for k, v in Xe.items()}
    te = {k: v[N_TRAIN:] for k, v in Xe.items()}
    return enc, tr, {t: y[t].values[:N_TRAIN] for t in TASKS}, te, {t: y[t].values[N_TRAIN:] for t in TASKS}


def _model(enc, backend="torchrec", seed=7):
    from ctrkit import MMoE
    return MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
                task_names=TASKS, embedding_backend=backend, seed=seed)


def _auc(y, p):
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, p))


def _worker_single(out: str) -> None:
    """One process: train, gather, save / load, the refusals."""
    from ctrkit import load_model
    from ctrkit.export import export_onnx
    from ctrkit.training.sharding import sharding_plan
    enc, xtr, ytr, xte, yte = _data()
    res: dict = {}
    m = _model(enc)
    try:
        m.predict(xte)
    except RuntimeError as e:
        res["predict_before_compile"] = str(e)
    m.compile("adam", lr=5e-3, metrics=["auc"])
    res["plan"] = sharding_plan(m)
    h = m.fit(xtr, ytr, batch_size=512, epochs=2, verbose=0)
    res["loss"] = h.history["loss"]
    p = m.predict(xte, batch_size=1000)
    res["auc"] = [_auc(yte[t], p[:, i]) for i, t in enumerate(TASKS)]
    whole = m.gather()
    res["gathered_backend"] = whole.embedding_backend
    res["gather_max_diff"] = float(np.abs(whole.predict(xte) - p).max())
    whole.embedding.foldable = False    # the native layer's folded inference sums in another order (~1e-6)
    res["gather_unfolded_diff"] = float(np.abs(whole.predict(xte, batch_size=1000) - p).max())
    res["gathered_eval"] = whole.evaluate(xte, yte)
    path = os.path.join(os.path.dirname(out), "saved")
    m.save(path)
    res["loaded_max_diff"] = float(np.abs(load_model(path).predict(xte) - p).max())
    try:
        export_onnx(m, os.path.join(os.path.dirname(out), "m.onnx"))
    except Exception as e:  # noqa: BLE001 - the message is what is checked
        res["export_refused"] = f"{type(e).__name__}: {e}"
    from ctrkit.export import parity
    onnx_path = os.path.join(os.path.dirname(out), "whole.onnx")
    export_onnx(whole, onnx_path)                      # verifies against eager PyTorch itself
    res["onnx_parity"] = float(parity(whole, onnx_path, xte))
    from ctrkit.callbacks import EarlyStopping
    es = _model(enc)
    es.compile("adam", lr=5e-3, metrics=["auc"])
    # mode="min" on an AUC that rises: the best epoch is the first, so its (sharded) weights must come back
    h = es.fit(xtr, ytr, batch_size=512, epochs=4, verbose=0, validation_data=(xte, yte),
               callbacks=[EarlyStopping("val_income_auc", mode="min", patience=1, restore_best_weights=True)])
    res["es_history"] = h.history["val_income_auc"]
    res["es_restored"] = es.evaluate(xte, yte)["income_auc"]
    n = _model(enc)
    try:
        n.compile("adam", sharding={"no_such_feature": "row_wise"})
    except ValueError as e:
        res["bad_sharding"] = str(e)
    native = _model(enc, backend="native")
    native.compile("adam", lr=5e-3)
    native.fit(xtr, ytr, batch_size=512, epochs=2, verbose=0)
    pn = native.predict(xte)
    res["native_auc"] = [_auc(yte[t], pn[:, i]) for i, t in enumerate(TASKS)]
    with open(out, "w") as fh:
        json.dump(res, fh)


def _worker_zoo(out: str) -> None:
    """Every registered tabular model (the conformance suite's small sizes) on the byterec sample with a
    var-length behaviour sequence that shares the item table: train, predict, gather."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
    from test_conformance import ALL, build

    from ctrkit.testing.data import load_check_data, with_sequence
    d = load_check_data()
    res = {}
    for name in ALL:
        try:
            try:
                cols, x = with_sequence(d.encoder, d.byterec)
                m = build(name, cols, embedding_backend="torchrec")
            except (ValueError, TypeError) as e:
                if "torchrec" in str(e):
                    raise
                cols, x = d.encoder.feature_columns, d.byterec   # models without var-length inputs
                m = build(name, cols, embedding_backend="torchrec")
            m.compile("adam", lr=0.01)
            h = m.fit(x, {t: d.labels[t].values for t in m.task_names}, batch_size=64, epochs=2, verbose=0)
            p = m.predict(x)
            whole = m.gather()
            whole.embedding.foldable = False
            res[name] = {"loss": h.history["loss"], "diff": float(np.abs(whole.predict(x) - p).max()),
                         "finite": bool(np.isfinite(p).all())}
        except Exception as e:  # noqa: BLE001 - recorded, asserted on by the test
            res[name] = {"error": f"{type(e).__name__}: {e}"}
    with open(out, "w") as fh:
        json.dump(res, fh)


def _kill_callback(epoch: int, step: int):
    """Ends every process abruptly (no clean-up, like a killed job) after ``step`` steps of ``epoch``."""
    from ctrkit.callbacks import Callback

    class Kill(Callback):
        def on_epoch_begin(self, e, logs=None):
            self.epoch = e

        def on_train_batch_end(self, s, logs=None):
            if self.epoch == epoch and s + 1 == step:
                os._exit(3)

    return Kill()


def _worker_dist(out: str, sharding: str, phase: str) -> None:
    """2 processes. ``first``: an uninterrupted fit (its gathered weights saved), then the same fit with
    BackupAndRestore killed mid-epoch. ``resume``: that fit again, resumed from the checkpoint."""
    from ctrkit import distributed as D
    from ctrkit.callbacks import BackupAndRestore, Callback
    from ctrkit.training.sharding import sharding_plan
    D.init_from_env()
    enc, xtr, ytr, xte, yte = _data()
    rank = D.get_rank()
    folder = os.path.dirname(out)
    res: dict = {"world": D.get_world_size()}
    if phase == "first":
        m = _model(enc)
        m.compile("adam", lr=5e-3, sharding=sharding, metrics=["auc"])
        res["plan"] = sharding_plan(m)
        local = {k: [list(s.metadata.shard_sizes) for s in v.local_shards()] for k, v in m.state_dict().items()
                 if hasattr(v, "local_shards")}
        res["local_shards"] = D.all_gather_rows(torch.tensor([[
            sum(sz[0] * sz[1] for shards in local.values() for sz in shards)]])).flatten().tolist()
        from ctrkit.callbacks import ModelCheckpoint
        h = m.fit(xtr, ytr, batch_size=512, epochs=2, verbose=0, seed=3,
                  callbacks=[ModelCheckpoint(os.path.join(folder, "ckpt_model")),
                             ModelCheckpoint(os.path.join(folder, "ckpt_weights.pt"), save_weights_only=True)])
        res["loss"] = h.history["loss"]
        p = m.predict(xte, batch_size=1000)                 # every rank predicts every row (a collective)
        res["auc"] = [_auc(yte[t], p[:, i]) for i, t in enumerate(TASKS)]
        res["ranks_agree"] = float(D.all_reduce_max(float(np.abs(p - D.all_gather_rows(
            torch.from_numpy(p)).numpy()[:len(p)]).max())))
        res["eval"] = m.evaluate(xte, yte, batch_size=700)  # uneven shards: one rank runs one more batch
        whole = m.gather()
        if rank == 0:
            whole.embedding.foldable = False
            res["gather_max_diff"] = float(np.abs(whole.predict(xte, batch_size=1000) - p).max())
            from ctrkit import load_model
            saved = load_model(os.path.join(folder, "ckpt_model"))   # ModelCheckpoint of the last epoch
            saved.embedding.foldable = False
            res["checkpoint_max_diff"] = float(np.abs(saved.predict(xte, batch_size=1000) - p).max())
            weights = torch.load(os.path.join(folder, "ckpt_weights.pt"))
            res["weights_file_diff"] = max(float((weights[k] - v).abs().max()) for k, v in whole.state_dict().items())
            torch.save(whole.state_dict(), os.path.join(folder, "uninterrupted.pt"))
        k = _model(enc)
        k.compile("adam", lr=5e-3, sharding=sharding)
        if rank == 0:
            with open(out, "w") as fh:
                json.dump(res, fh)
        D.barrier()
        k.fit(xtr, ytr, batch_size=512, epochs=2, verbose=0, seed=3,
              callbacks=[BackupAndRestore(os.path.join(folder, "backup.pt"), save_freq=5), _kill_callback(1, 7)])
        raise AssertionError("the kill callback did not stop the run")
    k = _model(enc)
    k.compile("adam", lr=5e-3, sharding=sharding)
    seen = []

    class Start(Callback):
        def on_train_batch_begin(self, step, logs=None):
            if not seen:
                seen.append(step)

    ckpt = os.path.join(folder, "backup.pt")
    res["tables_dirs_before"] = sorted(d for d in os.listdir(folder) if d.startswith("backup.pt.tables-"))
    k.fit(xtr, ytr, batch_size=512, epochs=2, verbose=0, seed=3, callbacks=[BackupAndRestore(ckpt, save_freq=5),
                                                                               Start()])
    res["first_step_after_resume"] = seen[0]
    whole = k.gather()
    if rank == 0:
        ref = torch.load(os.path.join(folder, "uninterrupted.pt"))
        got = whole.state_dict()
        res["max_weight_diff"] = max(float((ref[n] - got[n]).abs().max()) for n in ref)
        res["left_behind"] = sorted(d for d in os.listdir(folder) if d.startswith("backup.pt"))
        with open(out, "w") as fh:
            json.dump(res, fh)
    D.cleanup()


# ---------------------------------------------------------------------------------------------- test side
needs_torchrec = pytest.mark.skipif(not _torchrec_ok(), reason="TorchRec does not import here (optional extra: "
                                    "bash scripts/setup.sh --torchrec)")


def _run(args: list[str], tmp_path, torchrun: bool = False, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("WORLD_SIZE", None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"] if torchrun \
        else [sys.executable]
    proc = subprocess.run(head + [__file__, *args], env=env, capture_output=True, text=True, timeout=600)
    if ok and proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@needs_torchrec
def test_one_process_trains_gathers_saves_and_refuses_what_it_cannot_do(tmp_path):
    out = tmp_path / "single.json"
    _run(["single", str(out)], tmp_path)
    r = json.loads(out.read_text())
    assert "compile" in r["predict_before_compile"]
    assert r["plan"] and all(v["ranks"] == [0] for v in r["plan"].values())   # every table on the one process
    assert r["loss"][1] < r["loss"][0]
    # as good as the native tables on the same data (the tables' optimizer differs: row-wise Adagrad vs Adam)
    for a, b in zip(r["auc"], r["native_auc"]):
        assert a > 0.85 and abs(a - b) < 0.02, (r["auc"], r["native_auc"])
    assert r["gathered_backend"] == "native"
    # the same weights: exactly the same predictions with the same arithmetic; the native layer's folded
    # inference (layers/fold.py) sums in another order, a few 1e-7 apart
    assert r["gather_unfolded_diff"] == 0.0
    assert r["gather_max_diff"] < 1e-5 and r["loaded_max_diff"] < 1e-5
    assert abs(r["gathered_eval"]["income_auc"] - r["auc"][0]) < 1e-6
    assert "gather()" in r["export_refused"]
    assert r["onnx_parity"] < 1e-5                   # the gathered model exports like any ordinary one
    assert len(r["es_history"]) == 2 and r["es_history"][1] > r["es_history"][0]
    assert abs(r["es_restored"] - r["es_history"][0]) < 1e-9   # EarlyStopping restored the first epoch's tables
    assert "no_such_feature" in r["bad_sharding"] and "Tables" in r["bad_sharding"]


@needs_torchrec
def test_the_example_runs_resumes_and_saves_an_ordinary_model(tmp_path):
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "examples", "sharded_census.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, example, "--rows", "8000", "--epochs", "2", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "31 tables over 1 process(es)" in out and out.count("Epoch ") == 2
    aucs = [float(v) for v in __import__("re").findall(r"test AUC ([0-9.]+)", out)]
    assert len(aucs) == 2 and min(aucs) > 0.8, out[-800:]
    assert "embedding_backend='native'" in out
    from ctrkit import load_model
    loaded = load_model(str(tmp_path / "model"))      # no TorchRec involved
    assert loaded.embedding_backend == "native" and type(loaded.embedding).__name__ == "EmbeddingLayer"
    assert not (tmp_path / "backup.pt").exists()     # the finished run removed its checkpoint


@needs_torchrec
def test_ctrkit_train_config_with_torchrec_tables(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = tmp_path / "sharded.toml"
    cfg.write_text(f"""extends = "{os.path.join(root, 'examples', 'census_mmoe_quick.toml')}"

[model.args]
embedding_backend = "torchrec"

[training]
sharding = "row_wise"
embedding_optimizer = "rowwise_adagrad"
baselines = []

[output]
dir = "{tmp_path / 'run'}"
plots = false
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "ctrkit", "train", str(cfg)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert min(v for k, v in metrics["test"].items() if k.endswith("_auc")) > 0.8, metrics["test"]
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["config"]["embedding_backend"] == "native"       # saved gathered: loads without TorchRec
    assert saved["compile"].get("sharding") is None


@needs_torchrec
def test_every_tabular_model_trains_on_torchrec_tables_and_gathers_exactly(tmp_path):
    out = tmp_path / "zoo.json"
    _run(["zoo", str(out)], tmp_path)
    r = json.loads(out.read_text())
    refused = {"DIN", "DIEN"}   # their attention reads the tables directly
    for name in refused:
        assert "embedding_backend='native'" in r[name]["error"], r[name]
    ok = {n: v for n, v in r.items() if n not in refused}
    assert len(ok) >= 25 and all("error" not in v for v in ok.values()), {n: v for n, v in ok.items() if "error" in v}
    for name, v in ok.items():
        assert v["finite"] and v["loss"][-1] < v["loss"][0], (name, v)
        # the gathered ordinary model: the same predictions (var-length bags are pooled by FBGEMM there and by
        # ctrkit here: a few 1e-7 apart)
        assert v["diff"] < 1e-6, (name, v)


@needs_torchrec
@pytest.mark.parametrize("sharding", ["table_wise", "row_wise"])
def test_two_processes_shard_train_and_resume_exactly(tmp_path, sharding):
    out = tmp_path / "dist.json"
    killed = _run(["dist", str(out), sharding, "first"], tmp_path, torchrun=True, ok=False)
    assert killed.returncode != 0   # the second fit was killed mid-epoch
    r = json.loads(out.read_text())
    assert r["world"] == 2
    types = {v["sharding_type"] for v in r["plan"].values()}
    assert types == {sharding}
    total = sum(r["local_shards"])
    assert all(0.25 * total <= s <= 0.75 * total for s in r["local_shards"]), r["local_shards"]  # about half each
    if sharding == "row_wise":
        assert all(v["ranks"] == [0, 1] for v in r["plan"].values())
    assert r["loss"][1] < r["loss"][0] and min(r["auc"]) > 0.85
    assert r["ranks_agree"] == 0.0
    assert abs(r["eval"]["income_auc"] - r["auc"][0]) < 1e-6
    assert r["gather_max_diff"] < 1e-6
    assert r["checkpoint_max_diff"] < 1e-6 and r["weights_file_diff"] == 0.0   # ModelCheckpoint gathers too
    out2 = tmp_path / "resumed.json"
    _run(["dist", str(out2), sharding, "resume"], tmp_path, torchrun=True)
    r2 = json.loads(out2.read_text())
    assert r2["tables_dirs_before"], "the killed run left no sharded tables checkpoint"
    assert r2["first_step_after_resume"] == 4      # saves every 5 steps (counted over epochs: 16 + 4); killed at 7
    assert r2["max_weight_diff"] == 0.0, r2
    assert r2["left_behind"] == []                 # the checkpoint file and its tables directory are removed


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "single":
        _worker_single(sys.argv[2])
    elif sys.argv[1] == "zoo":
        _worker_zoo(sys.argv[2])
    else:
        _worker_dist(sys.argv[2], sys.argv[3], sys.argv[4])
