"""ESMM vs MMoE on the bundled Ali-CCP and AliExpress samples (issue #5): it runs, end to end.

Both models get the same encoded features and the same two labels over the entire impression space: click
(CTR) and click-and-conversion (CTCVR; a conversion exists only after a click). ESMM predicts pCTCVR as
pCTR × pCVR; MMoE predicts CTCVR with its own tower. Test AUCs over seeds are printed.

**The samples are tiny** (Ali-CCP: 100 train / 50 validation / 50 test rows; AliExpress: 100 train / 20 test
rows, a handful of clicks and conversions): the numbers only show that training, the ESMM loss and evaluation
run on real data of this shape, not which model is better. AUC is "n/a" when the test rows hold one class.

    OMP_NUM_THREADS=1 python benchmarks/esmm_samples.py --seeds 3
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import torch

from ctrkit import ESMM, FeatureEncoder, MMoE
from ctrkit.datasets import load_sample
from ctrkit.preprocessing import infer_column_types


def _load(name: str):
    if name == "Ali-CCP":
        train, test = load_sample("ali_ccp_train"), load_sample("ali_ccp_test")
        click, conv = "click", "purchase"
    else:
        train, test = load_sample("aliexpress_train"), load_sample("aliexpress_test")
        click, conv = "click", "conversion"
    feats = [c for c in train.columns if c not in (click, conv, "search_id")]
    sparse, dense = infer_column_types(train, feats)

    def labels(df):
        return pd.DataFrame({"ctr": df[click].astype("float32"),
                             "ctcvr": (df[click] * df[conv]).astype("float32")})
    return train, test, sparse, dense, labels(train), labels(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print("| data | rows train / test (clicks, conversions in test) | model | CTR AUC | CTCVR AUC |")
    print("|---|---|---|---|---|")
    for data in ("Ali-CCP", "AliExpress"):
        train, test, sparse, dense, ytr, yte = _load(data)
        enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(train)
        for model_name in ("ESMM", "MMoE"):
            res = {"ctr": [], "ctcvr": []}
            for seed in range(a.seeds):
                if model_name == "ESMM":
                    m = ESMM(enc.feature_columns, tower_dnn_hidden_units=(32, 8), seed=seed)
                else:
                    m = MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(16,),
                             tower_dnn_hidden_units=(8,), task_names=["ctr", "ctcvr"], seed=seed)
                m.compile("adam", lr=0.01, metrics=["auc"])
                m.fit(train, ytr, batch_size=32, epochs=a.epochs, verbose=0)
                ev = m.evaluate(test, yte)
                for t in res:
                    res[t].append(ev.get(f"{t}_auc", float("nan")))

            def fmt(v):
                v = [x for x in v if not math.isnan(x)]
                if not v:
                    return "n/a (one class)"
                return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"
            print(f"| {data} | {len(train)} / {len(test)} ({int(yte['ctr'].sum())}, {int(yte['ctcvr'].sum())}) | "
                  f"{model_name} | {fmt(res['ctr'])} | {fmt(res['ctcvr'])} |", flush=True)


if __name__ == "__main__":
    main()
