"""Census-Income (KDD) with MMoE: the MMoE paper's real-data setting, on the data bundled with ctrkit.

Two binary tasks on the same people (group 1): income above 50K, and never married. Raw strings, numbers and
gaps go in; the FeatureEncoder learns vocabularies (unseen values -> an out-of-vocabulary id) and scalers.

    python examples/census_mmoe.py                      # a 20,000-row slice, 2 epochs: seconds
    python examples/census_mmoe.py --rows 0 --epochs 30 # all 79,809 training rows, early stopping
    python examples/census_mmoe.py --plots out/         # also learning curves, gates, calibration, ROC

Prints one line per task with the test AUC and log loss.
"""
from __future__ import annotations

import argparse

import torch

from ctrkit import EarlyStopping, FeatureEncoder, MMoE
from ctrkit.datasets import census_feature_types, load_census_income, split_indices
from ctrkit.training import log_key


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", type=int, default=1, choices=(1, 2), help="MMoE paper task group")
    ap.add_argument("--rows", type=int, default=20_000, help="training rows to use (0: all)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--plots", default=None, help="folder for PNG plots (needs matplotlib)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    X, y = load_census_income(group=args.group)
    tasks = list(y.columns)
    tr, va, te = split_indices(len(X), (0.8, 0.1, 0.1), seed=2024)
    if args.rows:
        tr = tr[: args.rows]
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X.iloc[tr])
    model = MMoE(enc.feature_columns, num_experts=args.experts, expert_dnn_hidden_units=(16,),
                 tower_dnn_hidden_units=(8,), task_names=tasks, task_types=["binary"] * len(tasks), seed=0)
    model.compile("adam", lr=3e-3, metrics=["auc", "logloss"])
    history = model.fit(X.iloc[tr], y.iloc[tr], batch_size=args.batch_size, epochs=args.epochs, verbose=2,
                        validation_data=(X.iloc[va], y.iloc[va]),
                        callbacks=[EarlyStopping(log_key(tasks, tasks[0], "auc", "val_"), patience=3,
                                                 restore_best_weights=True)])
    res = model.evaluate(X.iloc[te], y.iloc[te])
    print(f"MMoE on census group {args.group}: {len(tr):,} training rows, {len(te):,} test rows, "
          f"{model.count_params():,} parameters")
    for t in tasks:
        auc, ll = res[log_key(tasks, t, "auc")], res[log_key(tasks, t, "logloss")]
        print(f"{t}: test AUC {auc:.4f}  test logloss {ll:.4f}")
    if args.plots:
        from ctrkit.viz import save_training_plots
        for p in save_training_plots(args.plots, model, history, X.iloc[te], y.iloc[te]):
            print("wrote", p)
    return res


if __name__ == "__main__":
    main()
