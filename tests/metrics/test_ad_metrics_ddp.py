"""gAUC and NE under torchrun (2 CPU processes, gloo): the validation metrics are computed on the predictions of
every rank gathered, not averaged per rank, and equal a brute-force reference (per-group scikit-learn AUC,
numpy entropy) to 1e-9.

This file is also the worker script: ``python -m torch.distributed.run --nproc_per_node=2 --standalone
tests/metrics/test_ad_metrics_ddp.py worker OUT DATA``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ctrkit import distributed as D

TASKS = ["income", "marital"]
GROUP = "country_of_birth_self"


def _worker(out: str, data: str) -> None:
    import pandas as pd

    from ctrkit import FeatureEncoder, MMoE
    from ctrkit.datasets import census_feature_types

    info = D.init_from_env()
    torch.set_num_threads(1)
    tr, te = pd.read_pickle(os.path.join(data, "train.pkl")), pd.read_pickle(os.path.join(data, "test.pkl"))
    sparse, dense = census_feature_types()
    sparse = [c for c in sparse if c != GROUP]     # the group column is not a feature
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4, ignore=[GROUP]).fit(tr)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(16,), task_names=TASKS, seed=5)
    m.compile("adam", lr=3e-3, metrics=["gauc", "ne"], group_by=GROUP)
    # 16,384 validation rows, evaluation batches of 4,096: each rank's shard is cut into the same batches as a
    # single process cuts the whole set, so the gathered predictions are bit-identical to predict()'s
    h = m.fit(tr, tr[TASKS], batch_size=256, epochs=1, verbose=0, validation_data=(te, te[TASKS]))
    p = m.predict(te, batch_size=4096)
    res = {"rank": info.rank, "world": info.world_size,
           "history": {k: v for k, v in h.history.items() if k.startswith("val_")}}
    if info.rank == 0:
        np.save(os.path.join(out, "pred.npy"), p)
    with open(os.path.join(out, f"result{info.rank}.json"), "w") as fh:
        json.dump(res, fh)
    D.cleanup()


def test_gauc_and_ne_under_two_gloo_processes_equal_brute_force(tmp_path):
    from sklearn.metrics import roc_auc_score

    from ctrkit.datasets import load_census_income
    X, y = load_census_income(group=1)
    data = tmp_path / "data"
    data.mkdir()
    X.iloc[:8000].join(y.iloc[:8000]).reset_index(drop=True).to_pickle(data / "train.pkl")
    te = X.iloc[8000:8000 + 16384].join(y.iloc[8000:8000 + 16384]).reset_index(drop=True)
    te.to_pickle(data / "test.pkl")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")])))
    out = tmp_path / "ddp"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           __file__, "worker", str(out), str(data)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    r0, r1 = (json.loads((out / f"result{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["history"] == r1["history"]
    p = np.load(out / "pred.npy").astype(np.float64)
    groups = np.array([str(v) for v in te[GROUP]])
    for i, t in enumerate(TASKS):
        yt = te[t].to_numpy().astype(np.float64)
        num = den = 0.0
        for g in np.unique(groups):                       # brute force: scikit-learn's AUC group by group
            m = groups == g
            if 0 < yt[m].sum() < m.sum():
                num += m.sum() * roc_auc_score(yt[m], p[m, i])
                den += m.sum()
        b = yt.mean()
        pc = np.clip(p[:, i], 1e-7, 1 - 1e-7)
        ne = -np.mean(yt * np.log(pc) + (1 - yt) * np.log(1 - pc)) / -(b * np.log(b) + (1 - b) * np.log(1 - b))
        assert r0["history"][f"val_{t}_gauc"][-1] == pytest.approx(num / den, abs=1e-9)
        assert r0["history"][f"val_{t}_ne"][-1] == pytest.approx(ne, abs=1e-9)
    assert 0.6 < r0["history"]["val_marital_gauc"][-1] < 1 and r0["history"]["val_income_ne"][-1] < 1


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    _worker(sys.argv[2], sys.argv[3])
