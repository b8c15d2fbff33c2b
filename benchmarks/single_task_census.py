"""Single-task sanity check on Census-Income: do the classic CTR models learn? (issue #5)

Trains every single-task ranking model on the census *income* task (group 1's first task) with the protocol
of ``ctrkit compare`` (same encoder and 80/10/10 split, embedding dim 4, Adam lr 5e-3, batch 1024, early
stopping on validation AUC with patience 2 and best weights restored) and reports test AUC, mean ± std over
seeds. The check: DeepFM, DCN-V2 (DCN with ``cross_parameterization="matrix"``), DCNMix and AutoInt reach a
test AUC within 0.01 of the best ctrkit model.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/single_task_census.py --seeds 3 [--models DNN,DeepFM] [--out F]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ctrkit.compare.tabular import CompareConfig, _train_one, prepare_census

# (class name, constructor arguments): small models of the usual shapes, a 64-32 MLP where there is one
MODELS = {
    "DNN": ("DNN", dict(dnn_hidden_units=(64, 32))),
    "DeepFM": ("DeepFM", dict(dnn_hidden_units=(64, 32))),
    "DCN-V2": ("DCN", dict(cross_num=2, cross_parameterization="matrix", dnn_hidden_units=(64, 32))),
    "DCNMix": ("DCNMix", dict(cross_num=2, low_rank=16, num_experts=4, dnn_hidden_units=(64, 32))),
    "AutoInt": ("AutoInt", dict(att_layer_num=2, att_head_num=2, dnn_hidden_units=(64, 32))),
    "WDL": ("WDL", dict(dnn_hidden_units=(64, 32))),
    "DCN": ("DCN", dict(cross_num=2, cross_parameterization="vector", dnn_hidden_units=(64, 32))),
    "xDeepFM": ("xDeepFM", dict(cin_layer_size=(32, 32), dnn_hidden_units=(64, 32))),
    "NFM": ("NFM", dict(dnn_hidden_units=(64, 32))),
    "PNN": ("PNN", dict(dnn_hidden_units=(64, 32), use_inner=True, use_outter=False)),
    "AFM": ("AFM", dict(attention_factor=8)),
    "AFN": ("AFN", dict(ltl_hidden_size=64, afn_dnn_hidden_units=(64, 32))),
    "CCPM": ("CCPM", dict(conv_kernel_width=(6, 5), conv_filters=(4, 4), dnn_hidden_units=(64, 32))),
    "DIFM": ("DIFM", dict(att_head_num=2, dnn_hidden_units=(64, 32))),
    "FiBiNET": ("FiBiNET", dict(dnn_hidden_units=(64, 32))),
    "IFM": ("IFM", dict(dnn_hidden_units=(64, 32))),
    "ONN": ("ONN", dict(dnn_hidden_units=(64, 32))),
    "MLR": ("MLR", dict(region_num=4)),
    "FinalMLP": ("FinalMLP", dict(mlp1_hidden_units=(64, 32), mlp2_hidden_units=(64, 32), fs_hidden_units=(64,),
                                  num_heads=2)),
    "GDCN": ("GDCN", dict(cross_num=3, structure="stacked", dnn_hidden_units=(64, 32))),
    "GDCN-P": ("GDCN", dict(cross_num=3, structure="parallel", dnn_hidden_units=(64, 32))),
    "MaskNet": ("MaskNet", dict(model_type="serial", dnn_hidden_units=(64, 32))),
    "MaskNet-P": ("MaskNet", dict(model_type="parallel", parallel_num_blocks=4, parallel_block_dim=16,
                                  dnn_hidden_units=(64, 32))),
    "FM": ("FM", {}),
    "LR": ("LR", {}),
}
CHECKED = ("DeepFM", "DCN-V2", "DCNMix", "AutoInt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import inspect

    from ctrkit.registry import get_model_class
    data = prepare_census(1)
    task = data.task_names[0]
    data.task_names, data.task_types = [task], ["binary"]
    cfg = CompareConfig(seeds=a.seeds)
    rows = []
    for name in a.models.split(","):
        cls_name, kw = MODELS[name]
        cls = get_model_class(cls_name)
        aucs, secs, epochs = [], [], []
        for seed in range(a.seeds):
            cols = data.feature_columns
            params = inspect.signature(cls).parameters
            args = (cols, cols) if "linear_feature_columns" in params and "dnn_feature_columns" in params else (cols,)
            model = cls(*args, task="binary", task_name=task, seed=seed, **kw)
            out, _, _ = _train_one(model, [task], data, cfg, seed)
            aucs.append(out[f"{task}_auc"])
            secs.append(out["seconds"])
            epochs.append(out["epochs"])
            print(f"{name} seed {seed}: test AUC {aucs[-1]:.4f} ({out['epochs']} epochs, {out['seconds']:.0f} s)",
                  flush=True)
        rows.append({"model": name, "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs, ddof=1))
                     if len(aucs) > 1 else float("nan"), "params": model.count_params(),
                     "seconds": float(np.mean(secs)), "epochs": float(np.mean(epochs)), "seeds": len(aucs)})
    best = max(rows, key=lambda r: r["auc_mean"])
    print(f"\n{data.description}; task {task!r}, {a.seeds} seed(s)\n")
    print("| model | income test AUC | gap to best | params | train s | epochs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['auc_mean']:.4f} ± {r['auc_std']:.4f} | {best['auc_mean'] - r['auc_mean']:.4f} | "
              f"{r['params']:,} | {r['seconds']:.1f} | {r['epochs']:.1f} |")
    for r in rows:
        if r["model"] in CHECKED:
            gap = best["auc_mean"] - r["auc_mean"]
            print(f"{r['model']}: {'OK' if gap <= 0.01 else 'FAIL'} (gap {gap:.4f} to {best['model']})")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"rows": rows, "date": time.strftime("%Y-%m-%d")}, fh, indent=1)


if __name__ == "__main__":
    main()
