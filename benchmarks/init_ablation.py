"""What makes ctrkit's MMoE learn in 2 epochs: the label-prior output biases and the Glorot initialisation.

Trains the speed benchmark's census MMoE (``benchmarks/speed.py``: same data, split and sizes; Adam 1e-3,
batch 1024, 2 epochs) with ctrkit's public API in four variants and prints the test income AUC per seed:

* ``torch-default``: dense weights and biases re-initialised as PyTorch's ``nn.Linear`` does
  (``U(±1/sqrt(fan_in))``, per expert / gate / tower) and not moved to the label prior
  (``compile(init_output_bias=False)``) -- ctrkit before these defaults;
* ``prior``: the same, with the output biases at the label prior;
* ``glorot``: ctrkit's Glorot-uniform start, zero output biases;
* ``ctrkit`` (both: the defaults).

Usage: ``python benchmarks/init_ablation.py [--seeds 3] [--epochs 2]``.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the benchmark's data preparation and sizes)

VARIANTS = ("torch-default", "prior", "glorot", "ctrkit")


def torch_default_(model) -> None:
    """Re-initialise the MMoE's dense layers as ``nn.Linear`` would, per expert, gate and tower."""
    with torch.no_grad():
        for w, b in [(model.moe.w_in, model.moe.b_in)]:
            bound = 1.0 / math.sqrt(w.shape[0])
            w.uniform_(-bound, bound)
            b.uniform_(-bound, bound)
        for mlp in (model.towers.hidden, model.towers.out):
            if mlp is None:
                continue
            for w, b in zip(mlp.weights, mlp.biases):
                bound = 1.0 / math.sqrt(w.shape[1])
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)


def run(D, variant: str, seed: int, epochs: int) -> float:
    from sklearn.metrics import roc_auc_score

    from ctrkit import DenseFeat, MMoE, SparseFeat
    cols = ([SparseFeat(n, v, embedding_dim=speed.EMB_DIM) for n, v in zip(D.sparse_names, D.vocab)]
            + [DenseFeat(n, 1) for n in D.dense_names])
    m = MMoE(cols, num_experts=speed.NUM_EXPERTS, expert_dnn_hidden_units=speed.EXPERT_UNITS,
             gate_dnn_hidden_units=(), tower_dnn_hidden_units=speed.TOWER_UNITS, task_names=list(speed.TASKS),
             task_types=["binary", "binary"], seed=seed)
    if variant in ("torch-default", "prior"):
        torch_default_(m)
    m.compile("adam", lr=speed.LR, init_output_bias=variant in ("prior", "ctrkit"))
    m.fit(D.x_dict("train"), D.y_train, batch_size=speed.BATCH, epochs=epochs, verbose=0)
    p = m.predict(D.x_dict("test"), batch_size=speed.PRED_BATCH)
    return float(roc_auc_score(D.y_test[:, 0], p[:, 0]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "census.npz"
        speed.prepare_data(path, quick=False)
        D = speed._Data(str(path))
        seeds = [1024 + s for s in range(args.seeds)]                   # the speed benchmark's seeds
        print(f"census MMoE, {args.epochs} epochs, test income AUC per seed {seeds}")
        print("| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | median |")
        print("|---|" + "---|" * (len(seeds) + 1))
        for v in VARIANTS:
            aucs = [run(D, v, s, args.epochs) for s in seeds]
            print(f"| {v} | " + " | ".join(f"{a:.4f}" for a in aucs) + f" | {np.median(aucs):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
