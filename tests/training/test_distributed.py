"""Data-parallel training with torchrun: 2 CPU processes (gloo) on a real sample (Census-Income).

This file is also the training script: ``python -m torch.distributed.run --nproc_per_node=2 --standalone
tests/training/test_distributed.py worker OUT DATA``; the single-process reference runs the same function, unchanged,
in the test process (no torchrun environment: no process group).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from ctrkit import distributed as D

TASKS = ["income", "marital"]


# ---------------------------------------------------------------------------------------------- helpers
def test_shard_helpers_are_disjoint_and_cover():
    for n, world in ((10, 3), (7, 2), (5, 5), (100, 7)):
        idx = [D.shard_indices(n, r, world, seed=4).tolist() for r in range(world)]
        assert sorted(sum(idx, [])) == list(range(n))
        assert max(map(len, idx)) - min(map(len, idx)) <= 1
        assert idx == [D.shard_indices(n, r, world, seed=4).tolist() for r in range(world)]
        ranges = [D.shard_range(n, r, world) for r in range(world)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError, match="rank < world_size"):
        D.shard_range(10, 2, 2)


def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_from_env() == D.DistInfo(0, 1, 0)
    assert D.is_main_process() and not D.is_distributed() and D.get_world_size() == 1
    t = torch.arange(6.0).reshape(3, 2)
    assert D.all_gather_rows(t) is t and D.all_reduce_sum(t) is t and D.all_reduce_max(2.5) == 2.5
    D.barrier()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        D.init_from_env()


def test_sparse_embeddings_with_ddp_are_refused(monkeypatch, byterec_encoded):
    from ctrkit import MMoE
    enc, df, y = byterec_encoded
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["finish", "like"],
             sparse=True)
    m.compile("adagrad")
    monkeypatch.setattr(D, "is_distributed", lambda: True)
    monkeypatch.setattr(D, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="sparse embedding gradients .* not supported with DistributedDataParallel"):
        m.fit(df, y, verbose=0)


# ---------------------------------------------------------------------------------------------- the DDP run
def _worker(out: str, data: str) -> None:
    import pandas as pd

    from ctrkit import CSVLogger, EarlyStopping, FeatureEncoder, MMoE
    from ctrkit.data import open_store, write_store
    from ctrkit.datasets import census_feature_types

    info = D.init_from_env()  # no-op with plain python; joins the gloo group under torchrun
    torch.set_num_threads(1)
    tr, te = pd.read_pickle(os.path.join(data, "train.pkl")), pd.read_pickle(os.path.join(data, "test.pkl"))
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(tr)

    def model():
        m = MMoE(enc.feature_columns, num_experts=3, expert_dnn_hidden_units=(32,), tower_dnn_hidden_units=(16,),
                 task_names=TASKS, seed=5)
        m.compile("adam", lr=3e-3, metrics=["auc"])
        return m

    # 1. in-memory arrays: each rank trains on its shard; validation metrics over all ranks' predictions
    m = model()
    h = m.fit(tr, tr[TASKS], batch_size=256, epochs=2, verbose=2, validation_data=(te, te[TASKS]),
              callbacks=[CSVLogger(os.path.join(out, "log.csv")), EarlyStopping("val_income_auc", patience=5)])
    full = m.evaluate(te, te[TASKS])  # this rank alone, on the whole test set
    m.save(os.path.join(out, "model"))  # rank 0 only
    res = {"rank": info.rank, "world": info.world_size, "samples": h.params["samples"],
           "shard": D.shard_indices(len(tr), info.rank, info.world_size, seed=m.seed).tolist(),
           "history": {k: v for k, v in h.history.items() if k != "epoch_seconds"}, "test": full}
    torch.save(m.state_dict(), os.path.join(out, f"weights{info.rank}.pt"))

    # 2. the on-disk store: rank 0 writes it, every rank reads its own contiguous shard
    path = os.path.join(out, "train.h5")
    if D.is_main_process():
        write_store(path, tr, TASKS, enc.feature_columns)
    D.barrier()
    store = open_store(path, buffer_rows=4096)
    m2 = model()
    h2 = m2.fit(store, batch_size=256, epochs=1, verbose=0)
    res["store_samples"] = h2.params["samples"]
    res["store_shard"] = list(store.shard_range(info.rank, info.world_size))
    res["store_loss"] = h2.history["loss"]
    torch.save(m2.state_dict(), os.path.join(out, f"store_weights{info.rank}.pt"))
    with open(os.path.join(out, f"result{info.rank}.json"), "w") as fh:
        json.dump(res, fh)
    D.cleanup()




def test_two_gloo_processes_match_one(tmp_path):
    from ctrkit import load_model
    from ctrkit.datasets import load_census_income, split_indices
    X, y = load_census_income(group=1)
    tr_idx, _, te_idx = split_indices(len(X), (0.2, 0.7, 0.1), seed=1)  # 20k train / 10k test rows
    data = tmp_path / "data"
    data.mkdir()
    X.iloc[tr_idx].join(y.iloc[tr_idx]).reset_index(drop=True).to_pickle(data / "train.pkl")
    X.iloc[te_idx].join(y.iloc[te_idx]).reset_index(drop=True).to_pickle(data / "test.pkl")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")])))
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    single.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                             __file__, "worker", str(ddp), str(data)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    threads = torch.get_num_threads()
    try:  # meanwhile, the same script in this (single) process: no process group, plain training
        _worker(str(single), str(data))
    finally:
        torch.set_num_threads(threads)
        log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log[-6000:]

    r0, r1 = (json.loads((ddp / f"result{r}.json").read_text()) for r in (0, 1))
    ref = json.loads((single / "result0.json").read_text())
    n = len(tr_idx)
    # shards: disjoint, covering, and what each rank trained on
    assert r0["world"] == r1["world"] == 2 and ref["world"] == 1
    assert not set(r0["shard"]) & set(r1["shard"]) and sorted(r0["shard"] + r1["shard"]) == list(range(n))
    assert (r0["samples"], r1["samples"]) == (len(r0["shard"]), len(r1["shard"])) and ref["samples"] == n
    assert r0["store_shard"][0] == 0 and r0["store_shard"][1] == r1["store_shard"][0] and r1["store_shard"][1] == n
    assert r0["store_samples"] + r1["store_samples"] == n
    # gradients all-reduced: identical weights on both ranks (in memory and from the store)
    for name in ("weights", "store_weights"):
        w0, w1 = (torch.load(ddp / f"{name}{r}.pt", weights_only=True) for r in (0, 1))
        for k in w0:
            assert torch.equal(w0[k], w1[k]), (name, k)
    # metrics over the whole validation set (all-gathered): the same logs on every rank, equal to a full evaluate
    assert r0["history"] == r1["history"] and r0["store_loss"] == r1["store_loss"]
    for t in TASKS:
        assert r0["history"][f"val_{t}_auc"][-1] == pytest.approx(r0["test"][f"{t}_auc"], abs=1e-6)
        # and the model is as good as the single-process one (global batch 512 vs 256: within noise)
        assert r0["test"][f"{t}_auc"] == pytest.approx(ref["test"][f"{t}_auc"], abs=0.02), t
    assert ref["test"]["income_auc"] > 0.85 and ref["test"]["marital_auc"] > 0.9
    # only rank 0 logs and writes
    assert log.count("Epoch 1/2") == 1 and log.count("Epoch 2/2") == 1
    assert len((ddp / "log.csv").read_text().strip().splitlines()) == 3
    assert load_model(str(ddp / "model")).predict(
        __import__("pandas").read_pickle(data / "test.pkl").head(5)).shape == (5, 2)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    _worker(sys.argv[2], sys.argv[3])
