"""MovieLens-100K: will a user rate a movie 4 stars or more? DeepFM with the movie's genres as a
multi-valued (VarLenSparseFeat) feature.

The 100,000 ratings bundled with ctrkit (ctrkit.datasets.load_movielens_100k) are joined with user and movie
attributes. Each movie has 1-6 genres ("Animation|Children's|Comedy"); the FeatureEncoder splits them,
learns a genre vocabulary and emits a VarLenSparseFeat whose embeddings are mean-pooled. Ratings are split by
time: the last 20% of the ratings (by timestamp) are the test set.

    python examples/movielens.py                       # binary: rating >= 4, test AUC
    python examples/movielens.py --task rating         # regression on the 1-5 rating, test RMSE

Prints the feature columns and the test metrics.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ctrkit import DeepFM, FeatureEncoder
from ctrkit.datasets import load_movielens_100k


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("like", "rating"), default="like",
                    help="like: binary, rating >= 4 (default); rating: regression on the rating")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    df = load_movielens_100k().sort_values("timestamp", kind="stable").reset_index(drop=True)
    df["like"] = (df["rating"] >= 4).astype("int64")
    df["rating"] = df["rating"].astype("float32")
    cut = int(len(df) * 0.8)
    # regression target: the rating minus the training mean, so the output starts near the answer
    # (MSE and MAE are unchanged by the shift)
    df["rating_c"] = df["rating"] - df["rating"].iloc[:cut].mean()
    train, test = df.iloc[:cut], df.iloc[cut:]

    enc = FeatureEncoder(sparse=["user_id", "item_id", "gender", "age", "occupation", "zip"],
                         varlen={"genres": "|"}, embedding_dim=8).fit(train)
    for col in enc.feature_columns:
        print(col)
    binary = args.task == "like"
    model = DeepFM(enc.feature_columns, enc.feature_columns, dnn_hidden_units=(64, 32),
                   task="binary" if binary else "regression", task_name=args.task)
    model.compile("adam", lr=2e-3, metrics=["auc", "logloss"] if binary else ["mse", "mae"])
    target = "like" if binary else "rating_c"
    model.fit(train, train[target], batch_size=1024, epochs=args.epochs, verbose=2, validation_split=0.1)
    res = model.evaluate(test, test[target])
    print(f"DeepFM on MovieLens-100K ({args.task}): {len(train):,} training ratings, "
          f"{len(test):,} later test ratings, {model.count_params():,} parameters")
    if binary:
        print(f"like: test AUC {res['auc']:.4f}  test logloss {res['logloss']:.4f} "
              f"(share of likes in test: {test['like'].mean():.3f})")
    else:
        base = float(np.sqrt(((test["rating"] - train["rating"].mean()) ** 2).mean()))
        print(f"rating: test RMSE {np.sqrt(res['mse']):.4f}  test MAE {res['mae']:.4f} "
              f"(predicting the training mean: RMSE {base:.4f})")
    return res


if __name__ == "__main__":
    main()
