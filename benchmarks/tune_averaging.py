"""Compare defaults, second round (issue #18, 2026-12-04): weight averaging, numeric-embedding kinds, cross layers.

One census setting per call, validation AUC of the first task decides (test printed for the record), one JSON line
on stdout. Each epoch trains with ``fit(epochs=1)``; with ``--ema`` the validation sees an exponential moving average
of the weights (updated after every step), and the best validated weights are kept, as
``ctrkit.callbacks.WeightAveraging`` with ``EarlyStopping(restore_best_weights=True)`` does (the callback was built
after these runs, from them). Results: ``benchmarks/results/compare_defaults/tuning_2026-12-04.jsonl`` and
benchmarks/RESULTS.md ("Compare defaults, second round"); each line there has the
arguments of its run (``args``).

    OMP_NUM_THREADS=1 python benchmarks/tune_averaging.py --group 2 --ema 0.995 --patience 3 --seeds 0,1

``--num``: quantile | ple | periodic | a JSON dict of NumericEmbedding options (``{"kind": "ple", "activation":
"relu"}``) | raw | both (each numeric column twice: a quantile and a ple field) |
auto[THR] (quantile for a column whose most frequent value holds >= THR of the rows, default 0.5, else ple).
``--cross KIND:N[:R]``: N layers of ctrkit.layers.cross (gated = GDCN, v1 / v2 = DCN vector / matrix, mix = DCN-Mix)
on the MMoE's input, before the experts; R: the gated layers' low rank. ``--single``: the first task only
(e.g. ``--model DCNMix``).
"""
import argparse
import copy
import json
import time

import pandas as pd
import torch

from ctrkit.callbacks import Callback
from ctrkit.datasets import census_feature_types, load_census_income, split_indices
from ctrkit.preprocessing import FeatureEncoder
from ctrkit.registry import build_model

ap = argparse.ArgumentParser()
ap.add_argument("--group", type=int, default=2)
ap.add_argument("--model", default="MMoE")
ap.add_argument("--kw", default='{"num_experts": 8, "expert_dnn_hidden_units": [32], "gate_dnn_hidden_units": [], '
                               '"tower_dnn_hidden_units": [16]}')   # the model's arguments (JSON)
ap.add_argument("--num", default="quantile")
ap.add_argument("--bins", type=int, default=64)
ap.add_argument("--emb", type=int, default=4)
ap.add_argument("--lr", type=float, default=5e-3)
ap.add_argument("--wd", type=float, default=0.0)
ap.add_argument("--bs", type=int, default=1024)
ap.add_argument("--patience", type=int, default=2)
ap.add_argument("--ema", type=float, default=0.0)
ap.add_argument("--seeds", default="0,1")
ap.add_argument("--warm", action="store_true")
ap.add_argument("--cross", default="")
ap.add_argument("--single", action="store_true")
ap.add_argument("--tag", default="")  # a label for the JSON line
a = ap.parse_args()
torch.set_num_threads(1)
X, Y = load_census_income(group=a.group)
sparse, dense = census_feature_types()
tr, va, te = split_indices(len(X), (0.8, 0.1, 0.1), seed=2024)
kw = {} if a.num == "raw" else dict(numeric_embedding=json.loads(a.num) if a.num.startswith("{") else a.num,
                                    n_bins=a.bins)
dense = list(dense)
if a.num == "both":
    X = X.copy()
    for c in list(dense):
        X[c + "_p"] = X[c]
    kw = dict(numeric_embedding={**{c: "quantile" for c in dense}, **{c + "_p": "ple" for c in dense}}, n_bins=a.bins)
    dense = dense + [c + "_p" for c in dense]
if a.num.startswith("auto"):
    thr = float(a.num[4:] or 0.5)
    kinds = {}
    for c in dense:
        v = X[c].iloc[tr].astype(float)
        kinds[c] = "quantile" if v.value_counts(normalize=True).iloc[0] >= thr else "ple"
    print(kinds)
    kw = dict(numeric_embedding=kinds, n_bins=a.bins)
enc = FeatureEncoder(sparse=list(sparse), dense=list(dense), embedding_dim=a.emb, **kw)
enc.fit(X.iloc[tr])
tasks = [Y.columns[0]] if a.single else list(Y.columns)
parts = [(enc.transform(X.iloc[i]), Y.iloc[i][tasks].reset_index(drop=True)) for i in (tr, va, te)]



class EMA(Callback):
    def __init__(self, d, warm=False):
        super().__init__()
        self.d, self.shadow, self.n, self.warm = d, None, 0, warm

    def on_train_batch_end(self, step, logs=None):
        sd = self.model.state_dict()
        if self.shadow is None:
            self.shadow = {k: v.detach().clone() for k, v in sd.items()}
        else:
            self.n += 1
            d = min(self.d, (1 + self.n) / (10 + self.n)) if self.warm else self.d
            for k, v in sd.items():
                if v.dtype.is_floating_point:
                    self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    self.shadow[k].copy_(v)


res = []
for seed in [int(s) for s in a.seeds.split(",")]:
    m = build_model(a.model, enc.feature_columns, tasks, ["binary"] * len(tasks), seed=seed, **json.loads(a.kw))
    if a.cross:
        from ctrkit.layers.cross import CrossNet, CrossNetMix, GatedCrossNet
        D = m.input_dim
        kind, _, n = a.cross.partition(":")
        n, _, r = n.partition(":")
        n, r = int(n or 2), (int(r) if r else None)
        layer = {"v2": lambda: CrossNet(D, n, "matrix"), "v1": lambda: CrossNet(D, n, "vector"),
                 "mix": lambda: CrossNetMix(D, layer_num=n), "gated": lambda: GatedCrossNet(D, n, low_rank=r)}[kind]()
        torch.manual_seed(seed)
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
        m.feature_processor, m._process_always, m._plain_input = layer, True, False  # as MMoE(cross_layers=n)
    if a.wd:
        m.compile(torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=a.wd), metrics=["auc"])
    else:
        m.compile("adam", lr=a.lr, metrics=["auc"])
    ema = EMA(a.ema, a.warm)
    best, best_state, wait, ep = -1, None, 0, 0
    t0 = time.perf_counter()
    for ep in range(60):
        m.fit(parts[0][0], parts[0][1], batch_size=a.bs, epochs=1, verbose=0, seed=seed * 1000 + ep,
              callbacks=[ema] if a.ema else [])
        if a.ema:
            raw = copy.deepcopy(m.state_dict())
            m.load_state_dict(ema.shadow)
        v = m.evaluate(*parts[1])[f"{tasks[0]}_auc" if len(tasks) > 1 else "auc"]
        if v > best:
            best, best_state, wait = v, copy.deepcopy(m.state_dict()), 0
        else:
            wait += 1
        if a.ema:
            m.load_state_dict(raw)
        if wait >= a.patience:
            break
    m.load_state_dict(best_state)
    v, t = m.evaluate(*parts[1]), m.evaluate(*parts[2])
    k = f"{tasks[0]}_auc" if len(tasks) > 1 else "auc"
    r = dict(val=v[k], test=t[k], ep=ep + 1, sec=time.perf_counter() - t0)
    if len(tasks) > 1:
        r.update(test2=t[f"{tasks[1]}_auc"])
    res.append(r)
df = pd.DataFrame(res)
print(json.dumps(dict(tag=a.tag, group=a.group, seeds=a.seeds, cross=a.cross, kw=a.kw, model=a.model, ema=a.ema,
                      num=a.num, emb=a.emb, lr=a.lr, bs=a.bs, wd=a.wd,
                      pat=a.patience, **{c: round(float(df[c].mean()), 5) for c in df})), flush=True)
