"""How the comparison's defaults were chosen (issue #18): one census MMoE setting per call, 2+ seeds.

Validation AUC of the first task decides; the test AUC is printed for the record. Each call appends one JSON line
to ``--log``. The settings tried and their results are in benchmarks/RESULTS.md ("Compare defaults").

    OMP_NUM_THREADS=1 python benchmarks/tune_compare_defaults.py --group 1 --num emb:quantile --bins 64 \
        --eu 32 --tu 16 --seeds 0,1

``--num``: raw (scaled values), log (log1p first), qbin (raw + quantile-bucket ids as extra sparse columns),
qbin_only, log+qbin, or emb:<kind> (the encoder's numeric embeddings: emb:quantile, emb:ple, emb:periodic).
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
import torch

from ctrkit.callbacks import EarlyStopping, ReduceLROnPlateau
from ctrkit.datasets import census_feature_types, load_census_income, split_indices
from ctrkit.preprocessing import FeatureEncoder
from ctrkit.registry import build_model
from ctrkit.training import log_key

ap = argparse.ArgumentParser()
ap.add_argument("--group", type=int, default=1)
ap.add_argument("--model", default="MMoE")
ap.add_argument("--num", default="raw")  # raw | log | qbin | log+qbin | qbin_only
ap.add_argument("--bins", type=int, default=16)
ap.add_argument("--emb", type=int, default=4)
ap.add_argument("--experts", type=int, default=8)
ap.add_argument("--eu", default="16")
ap.add_argument("--tu", type=int, default=8)
ap.add_argument("--lr", type=float, default=5e-3)
ap.add_argument("--wd", type=float, default=0.0)
ap.add_argument("--bs", type=int, default=1024)
ap.add_argument("--max-epochs", type=int, default=50)
ap.add_argument("--patience", type=int, default=2)
ap.add_argument("--plateau", type=int, default=0)
ap.add_argument("--dropout", type=float, default=0.0)
ap.add_argument("--l2emb", type=float, default=0.0)
ap.add_argument("--fm", action="store_true", help="MMoE / OMoE with use_fm (DeepFM's wide part per task)")
ap.add_argument("--lw", type=float, default=1.0, help="loss weight of the first task (the second keeps 1)")
ap.add_argument("--seeds", default="0")
ap.add_argument("--tag", default="")
ap.add_argument("--log", default="tune_compare_defaults.jsonl")
a = ap.parse_args()
torch.set_num_threads(1)
X, Y = load_census_income(group=a.group)
sparse, dense = census_feature_types()
tr, va, te = split_indices(len(X), (0.8, 0.1, 0.1), seed=2024)
X = X.copy()
if "log" in a.num:
    for c in dense:
        X[c] = np.log1p(np.clip(X[c].astype(float), 0, None))
sp = list(sparse)
dn = list(dense)
if "qbin" in a.num:
    for c in dense:
        qs = np.unique(np.quantile(X[c].iloc[tr].astype(float), np.linspace(0, 1, a.bins + 1)[1:-1]))
        X[c + "_q"] = np.searchsorted(qs, X[c].astype(float).to_numpy(), side="right").astype(str)
        sp.append(c + "_q")
    if "only" in a.num:
        dn = []
kw = {}
if a.num.startswith("emb:"):
    kw = dict(numeric_embedding=a.num[4:], n_bins=a.bins)
enc = FeatureEncoder(sparse=sp, dense=dn, embedding_dim=a.emb, **kw)
enc.fit(X.iloc[tr])
parts = [(enc.transform(X.iloc[i]), Y.iloc[i].reset_index(drop=True)) for i in (tr, va, te)]
tasks = list(Y.columns)
cols = enc.feature_columns
eu = tuple(int(u) for u in a.eu.split("-"))
res = []
for seed in [int(s) for s in a.seeds.split(",")]:
    if a.model in ("MMoE", "OMoE"):
        m = build_model(a.model, cols, tasks, ["binary"] * 2, num_experts=a.experts, expert_dnn_hidden_units=eu,
                        gate_dnn_hidden_units=(), tower_dnn_hidden_units=(a.tu,), seed=seed, dnn_dropout=a.dropout,
                        l2_reg_embedding=a.l2emb, **({"use_fm": True} if a.fm else {}))
    elif a.model == "PLE":
        m = build_model("PLE", cols, tasks, ["binary"] * 2, seed=seed, dnn_dropout=a.dropout)
    else:
        m = build_model(a.model, cols, tasks, ["binary"] * 2, seed=seed)
    if a.wd:
        m.compile(torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=a.wd), metrics=["auc", "logloss"])
    else:
        m.compile("adam", lr=a.lr, metrics=["auc", "logloss"], loss_weights={tasks[0]: a.lw})
    monitor = log_key(tasks, tasks[0], "auc", "val_")
    cbs = [EarlyStopping(monitor, patience=a.patience, restore_best_weights=True, mode="max")]
    if a.plateau:
        cbs.append(ReduceLROnPlateau(monitor=monitor, mode="max", factor=0.3, patience=a.plateau))
    t0 = time.perf_counter()
    h = m.fit(parts[0][0], parts[0][1], batch_size=a.bs, epochs=a.max_epochs, verbose=0,
              validation_data=parts[1], callbacks=cbs, seed=seed)
    sec = time.perf_counter() - t0
    v = m.evaluate(*parts[1])
    t = m.evaluate(*parts[2])
    r = dict(seed=seed, val1=v[f"{tasks[0]}_auc"], val2=v[f"{tasks[1]}_auc"], test1=t[f"{tasks[0]}_auc"],
             test2=t[f"{tasks[1]}_auc"], epochs=len(h.epoch), sec=sec, params=m.count_params())
    res.append(r)
df = pd.DataFrame(res)
line = dict(vars(a), **{k: round(float(df[k].mean()), 5) for k in ["val1", "val2", "test1", "test2", "epochs", "sec"]},
            params=int(df.params.iloc[0]), n=len(df))
print(json.dumps(line))
with open(a.log, "a") as fh:
    fh.write(json.dumps(line) + "\n")
