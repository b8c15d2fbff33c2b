"""Ali-CCP (Taobao click and conversion logs) with ESMM: pCTR, pCVR and pCTCVR over the entire space.

ESMM trains a CTR tower and a CVR tower on every impression: the CTR output on the click label, the CTCVR
output (pCTR x pCVR) on "clicked and purchased". pCVR itself is never fitted on clicked rows only, which
avoids the sample-selection bias of a conventional CVR model.

By default this runs on the Ali-CCP samples bundled with ctrkit (100 training, 50 validation and 50 test rows,
with a handful of clicks and purchases): it shows the pipeline, not a result. Point --train / --val / --test
at the preprocessed Ali-CCP CSV files (same columns: click, purchase, categorical ids, D* dense columns) for
real numbers.

    python examples/aliccp_esmm.py
    python examples/aliccp_esmm.py --train ali_ccp_train.csv --val ali_ccp_val.csv --test ali_ccp_test.csv

Prints the test AUC of CTR and CTCVR, and the mean pCVR on clicked and on non-clicked test rows.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from ctrkit import ESMM, FeatureEncoder
from ctrkit.datasets import load_sample


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=None)
    ap.add_argument("--val", default=None)
    ap.add_argument("--test", default=None)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    frames = {s: load_sample(f"ali_ccp_{s}") if getattr(args, s) is None else pd.read_csv(getattr(args, s))
              for s in ("train", "val", "test")}
    train, val, test = frames["train"], frames["val"], frames["test"]
    dense = [c for c in train.columns if c.startswith("D")]
    sparse = [c for c in train.columns if c not in dense and c not in ("click", "purchase")]

    def labels(df: pd.DataFrame) -> dict[str, np.ndarray]:
        # CTR label: click; CTCVR label: click and purchase (a purchase without a click does not count)
        return {"ctr": df["click"].to_numpy(), "ctcvr": (df["click"] * df["purchase"]).to_numpy()}

    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=8).fit(train)
    model = ESMM(enc.feature_columns, tower_dnn_hidden_units=(64, 32), task_names=["ctr", "ctcvr"])
    model.compile("adam", lr=1e-3, metrics=["auc"])
    model.fit(train, labels(train), batch_size=16 if args.train is None else 2048, epochs=args.epochs,
              verbose=2, validation_data=(val, labels(val)))
    res = model.evaluate(test, labels(test))
    pcvr = model.predict_cvr(test)
    clicked = test["click"].to_numpy() == 1
    print(f"ESMM on {'the bundled Ali-CCP samples' if args.train is None else args.train}: {len(train):,} "
          f"training rows ({int(train['click'].sum())} click(s), "
          f"{int((train['click'] * train['purchase']).sum())} purchase(s)), {len(test):,} test rows, "
          f"{model.count_params():,} parameters")
    print(f"ctr: test AUC {res['ctr_auc']:.4f}")
    print(f"ctcvr: test AUC {res['ctcvr_auc']:.4f}")
    print(f"mean pCVR: clicked rows {pcvr[clicked].mean():.4f}, other rows {pcvr[~clicked].mean():.4f}")
    return res


if __name__ == "__main__":
    main()
