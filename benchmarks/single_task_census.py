"""Single-task sanity check on Census-Income: do the classic CTR models learn? (issue #5)

Trains every single-task ranking model on the census *income* task (group 1's first task) with the protocol
of ``ctrkit compare`` (same encoder and 80/10/10 split, embedding dim 4, Adam lr 5e-3, batch 1024, early
stopping on validation AUC with patience 2 and best weights restored) and reports test AUC, mean ± std over
seeds. The checks: DeepFM, DCN-V2 (DCN with ``cross_parameterization="matrix"``), DCNMix and AutoInt reach a
test AUC within 0.01 of the best ctrkit model; FinalMLP, GDCN (-P) and MaskNet (-P) within 0.01 of DeepFM.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/single_task_census.py --seeds 3 [--models DNN,DeepFM] [--out F]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ctrkit.compare.ctr_table import CTR_MODELS
from ctrkit.compare.tabular import CompareConfig, _train_one, prepare_census

# (class name, constructor arguments): small models of the usual shapes, a 64-32 MLP where there is one; the sizes
# of the single-task CTR rows of `ctrkit compare --ctr-models`
MODELS = CTR_MODELS
CHECKED = ("DeepFM", "DCN-V2", "DCNMix", "AutoInt")
NEWER = ("FinalMLP", "GDCN", "GDCN-P", "MaskNet", "MaskNet-P")   # issue #17: within 0.01 AUC of DeepFM


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
    deepfm = next((r for r in rows if r["model"] == "DeepFM"), None)
    for r in rows:
        if deepfm is not None and r["model"] in NEWER:
            gap = deepfm["auc_mean"] - r["auc_mean"]
            print(f"{r['model']}: {'OK' if gap <= 0.01 else 'FAIL'} (DeepFM minus it: {gap:+.4f})")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"rows": rows, "date": time.strftime("%Y-%m-%d")}, fh, indent=1)


if __name__ == "__main__":
    main()
