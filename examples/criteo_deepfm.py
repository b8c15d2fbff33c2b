"""Criteo display-ads CTR prediction with DeepFM.

13 integer features (I1-I13, with gaps) and 26 hashed categorical features (C1-C26); one binary label.
By default this runs on the 200-row Criteo sample bundled with ctrkit, which shows the pipeline but is far too
small to measure anything; point --data at a Criteo file with the same columns (e.g. a day of the Criteo
Kaggle data with a header row) for real numbers.

    python examples/criteo_deepfm.py
    python examples/criteo_deepfm.py --data train.csv --sep , --epochs 3 --embedding-dim 10

Prints the test AUC and log loss (a random 20% of the rows is held out).
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from ctrkit import DeepFM, FeatureEncoder
from ctrkit.datasets import load_sample


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="Criteo file with label, I1..I13, C1..C26 columns "
                                                  "(default: the bundled 200-row sample)")
    ap.add_argument("--sep", default=",", help="field separator of --data")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--embedding-dim", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    df = load_sample("criteo") if args.data is None else pd.read_csv(args.data, sep=args.sep)
    sparse, dense = [f"C{i}" for i in range(1, 27)], [f"I{i}" for i in range(1, 14)]
    rng = np.random.default_rng(2024)
    test = rng.random(len(df)) < 0.2
    train_df, test_df = df[~test], df[test]
    # hashed Criteo ids: rare values share the out-of-vocabulary id (min_freq), dense counts are z-scored
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=args.embedding_dim,
                         min_freq=1 if args.data is None else 10).fit(train_df)
    model = DeepFM(enc.feature_columns, enc.feature_columns, dnn_hidden_units=(64, 32), dnn_dropout=0.1,
                   task="binary", task_name="click")
    model.compile("adam", lr=1e-3, metrics=["auc", "logloss"])
    model.fit(train_df, train_df["label"], batch_size=32 if args.data is None else 4096, epochs=args.epochs,
              verbose=2, validation_split=0.1)
    res = model.evaluate(test_df, test_df["label"])
    print(f"DeepFM on {'the bundled Criteo sample' if args.data is None else args.data}: {len(train_df):,} "
          f"training rows, {len(test_df):,} test rows, {model.count_params():,} parameters")
    print(f"click: test AUC {res['auc']:.4f}  test logloss {res['logloss']:.4f}")
    return res


if __name__ == "__main__":
    main()
