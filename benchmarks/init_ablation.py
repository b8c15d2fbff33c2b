"""What makes ctrkit's MMoE learn in 2 epochs: the label-prior output biases, and initialisations we tried.

Trains the speed benchmark's census MMoE (``benchmarks/speed.py``: same data, split, sizes and seeds; Adam 1e-3,
batch 1024, 2 epochs) with ctrkit's public API and prints the test income AUC per seed for:

* ``no prior``: ``compile(init_output_bias=False)``: PyTorch's default initialisation, output biases as constructed
  (ctrkit before the label prior, and the hand-written loop's start);
* ``prior``: ctrkit's default (output biases at the label prior's log-odds);
* ``prior + Glorot``: the prior, and every dense layer re-initialised Glorot-uniform with zero biases (Keras'
  ``Dense`` default), per expert / gate / tower;
* ``prior + Glorot heads``: the prior, Glorot-uniform towers only.

The Glorot variants are not ctrkit's default: they help here but hurt the MMoE paper's synthetic regression
experiment (see ``benchmarks/RESULTS.md``, speed section).

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

VARIANTS = ("no prior", "prior", "prior + Glorot", "prior + Glorot heads")


def _glorot_(w: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    w.uniform_(-bound, bound)


@torch.no_grad()
def glorot_(model, heads_only: bool) -> None:
    """Glorot-uniform weights and zero biases for the MMoE's towers and (unless ``heads_only``) its experts and
    gates, each expert / gate / tower with its own fans."""
    for mlp in (model.towers.hidden, model.towers.out):
        for w, b in zip(mlp.weights, mlp.biases):
            _glorot_(w, w.shape[1], w.shape[2])
            b.zero_()
    if not heads_only:
        moe = model.moe
        E, u0, d = moe.num_experts, moe.first_units, moe.in_features
        _glorot_(moe.w_in[:, :E * u0], d, u0)
        _glorot_(moe.w_in[:, E * u0:], d, E)
        moe.b_in.zero_()


def run(D, variant: str, seed: int, epochs: int) -> float:
    from sklearn.metrics import roc_auc_score

    from ctrkit import DenseFeat, MMoE, SparseFeat
    cols = ([SparseFeat(n, v, embedding_dim=speed.EMB_DIM) for n, v in zip(D.sparse_names, D.vocab)]
            + [DenseFeat(n, 1) for n in D.dense_names])
    m = MMoE(cols, num_experts=speed.NUM_EXPERTS, expert_dnn_hidden_units=speed.EXPERT_UNITS,
             gate_dnn_hidden_units=(), tower_dnn_hidden_units=speed.TOWER_UNITS, task_names=list(speed.TASKS),
             task_types=["binary", "binary"], seed=seed)
    if "Glorot" in variant:
        glorot_(m, heads_only=variant.endswith("heads"))
    m.compile("adam", lr=speed.LR, init_output_bias=variant != "no prior")
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
