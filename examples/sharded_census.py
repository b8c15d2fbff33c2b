"""MMoE on Census-Income with its embedding tables sharded by TorchRec (``embedding_backend="torchrec"``).

Run it with one process or with ``torchrun`` (the script is the same)::

    python examples/sharded_census.py                                          # all tables on one process
    OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 examples/sharded_census.py --sharding row_wise
    OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 examples/sharded_census.py \\
        --sharding '{"country_of_birth_self": "row_wise", "*": "table_wise"}'

It prints where each table lives, trains with a resumable checkpoint (kill it and run it again: it continues),
evaluates on the test split (every process takes part: a forward pass of a sharded model is a collective), then
gathers the tables into an ordinary model and saves that (rank 0 writes): ``load_model`` and ONNX export of the
saved model need no TorchRec. Needs TorchRec: ``bash scripts/setup.sh --torchrec`` (docs/sharding.md).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sharding", default=None,
                    help='a sharding type for every table ("table_wise", "row_wise", "column_wise") or a JSON '
                         'object {table or feature: type, "*": type}; default: TorchRec\'s planner chooses')
    ap.add_argument("--rows", type=int, default=None, help="use the first ROWS rows of the data (default: all)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024, help="rows per process per step")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "ctrkit_sharded_census"),
                    help="folder of the checkpoint and of the saved model")
    a = ap.parse_args(argv)
    sharding = a.sharding
    if sharding and sharding.lstrip().startswith("{"):
        sharding = json.loads(sharding)

    from ctrkit import FeatureEncoder, MMoE
    from ctrkit import distributed as D
    from ctrkit.callbacks import BackupAndRestore
    from ctrkit.datasets.census import load_census_income, train_val_test_split
    from ctrkit.training.sharding import sharding_plan

    D.init_from_env()                       # joins torchrun's process group; a no-op with plain python
    main_process = D.is_main_process()
    X, y = load_census_income(group=1)
    if a.rows:
        X, y = X.iloc[:a.rows], y.iloc[:a.rows]
    Xtr, Xva, Xte, ytr, yva, yte = train_val_test_split(X, y, seed=2024)
    enc = FeatureEncoder(embedding_dim=4).fit(Xtr)
    tasks = list(y.columns)

    model = MMoE(enc.feature_columns, num_experts=8, expert_dnn_hidden_units=(32,), tower_dnn_hidden_units=(16,),
                 task_names=tasks, embedding_backend="torchrec")
    model.compile("adam", lr=5e-3, metrics=["auc"], sharding=sharding)   # shards the tables here
    if main_process:
        plan = sharding_plan(model)
        kinds: dict[str, list[str]] = {}
        for table, p in plan.items():
            kinds.setdefault(f"{p['sharding_type']} on ranks {p['ranks']}", []).append(table)
        print(f"{len(plan)} tables over {D.get_world_size()} process(es):")
        for where, tables in kinds.items():
            print(f"  {where}: {len(tables)} tables ({', '.join(tables[:4])}{', ...' if len(tables) > 4 else ''})")
    os.makedirs(a.out, exist_ok=True)
    model.fit(Xtr, {t: ytr[t].values for t in tasks}, batch_size=a.batch_size, epochs=a.epochs,
              validation_data=(Xva, {t: yva[t].values for t in tasks}), verbose=2 if main_process else 0,
              callbacks=[BackupAndRestore(os.path.join(a.out, "backup.pt"))])
    res = model.evaluate(Xte, {t: yte[t].values for t in tasks})       # every process calls it
    whole = model.gather()                  # every process calls it; the ordinary model is on rank 0
    if main_process:
        for t in tasks:
            print(f"{t}: test AUC {res[f'{t}_auc']:.4f}  logloss {res[f'{t}_loss']:.4f}")
        path = os.path.join(a.out, "model")
        whole.save(path)
        print(f"saved the gathered model (embedding_backend='{whole.embedding_backend}') to {path}")
    D.cleanup()
    return {f"{t}_auc": res[f"{t}_auc"] for t in tasks}


if __name__ == "__main__":
    main()
