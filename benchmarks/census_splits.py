"""Deep model against the trees over several random 80/10/10 splits of census (issue #18, third round).

The compare figure is one split (seed 2024), and its test split has 9,976 rows: a paired AUC difference of 0.001
is inside that split's sampling noise. This draws other splits: per split seed, the comparison's MMoE (seed 0) on
each input preset of ``ctrkit.compare.INPUT_PRESETS``, the preset chosen on validation as ``ctrkit compare`` does,
and the GBDT baseline on the same split; one JSON line per split on stdout (results: benchmarks/RESULTS.md,
"Compare inputs chosen on validation").

    OMP_NUM_THREADS=1 python benchmarks/census_splits.py --group 2 --splits 2024,1,2,3,4,5
"""
import argparse
import dataclasses
import json
import warnings

import torch

from ctrkit.compare import CompareConfig, PreparedData, input_candidates
from ctrkit.compare.baselines import run_baselines
from ctrkit.compare.tabular import _model_specs, _split_encode, _train_one
from ctrkit.datasets import census_feature_types, load_census_income

ap = argparse.ArgumentParser()
ap.add_argument("--group", type=int, default=2)
ap.add_argument("--splits", default="2024,1,2,3,4,5")
a = ap.parse_args()
warnings.simplefilter("ignore")
torch.set_num_threads(1)
X, Y = load_census_income(group=a.group)
sparse, dense = census_feature_types()
task = Y.columns[0]
for s in [int(x) for x in a.splits.split(",")]:
    res: dict = {"group": a.group, "split_seed": s}
    for name, c in input_candidates(CompareConfig()).items():
        enc, parts = _split_encode(X, Y, sparse, dense, {}, c.embedding_dim, seed=s,
                                   numeric_embedding=c.numeric_embedding, n_bins=c.n_bins)
        data = PreparedData(enc.feature_columns, *parts, list(Y.columns), ["binary"] * Y.shape[1], "")
        (model, tasks), = _model_specs(data, dataclasses.replace(c, models=("MMoE",)))["MMoE"](0)
        out, curve, _ = _train_one(model, tasks, data, c, 0)
        res[name] = {"val": max(curve[f"val_{task}_auc"]), "test": out[f"{task}_auc"]}
    res["chosen"] = max(("compact", "wide"), key=lambda n: res[n]["val"])
    res["gbdt_test"] = run_baselines(data, ("gbdt",), 0)[0][f"{task}_auc"]
    res["mmoe_test"] = res[res["chosen"]]["test"]
    res["diff"] = res["mmoe_test"] - res["gbdt_test"]
    print(json.dumps(res), flush=True)
