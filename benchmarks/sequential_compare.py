"""`ctrkit compare --data movielens-seq`, with the seeds run in parallel processes (one torch thread each).

Same models, data, budget and report as the CLI command (``ctrkit.compare.sequential``); only the seeds are
spread over processes, which on a small shared machine gets the comparison done in a fraction of the time.

    python benchmarks/sequential_compare.py --seeds 3 --jobs 3 --out benchmarks/results/movielens_seq
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace


def _one(args):
    cfg, seed, device = args
    import torch
    torch.set_num_threads(1)
    from ctrkit.compare.sequential import run_sequential_comparison
    return run_sequential_comparison(replace(cfg, seeds=1, first_seed=seed), progress=True, device=device)


def main(argv=None) -> int:
    from ctrkit.compare.sequential import SeqCompareConfig, SeqComparisonResult, write_sequential_report
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--dim", type=int, default=None, help="embedding size")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--negatives", type=int, default=None, help="sampled-softmax items; 0: full softmax")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: every process trains there")
    p.add_argument("--out", default="ctrkit-report-seq")
    a = p.parse_args(argv)
    cfg = SeqCompareConfig()
    if a.epochs is not None:
        cfg.max_epochs = a.epochs
    if a.patience is not None:
        cfg.patience = a.patience
    if a.dim is not None:
        cfg.embedding_dim = a.dim
    if a.lr is not None:
        cfg.lr = a.lr
    if a.negatives is not None:
        cfg.num_negatives = a.negatives or None
    t0 = time.perf_counter()
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=ctx) as ex:
        parts = list(ex.map(_one, [(cfg, s, a.device) for s in range(cfg.first_seed, cfg.first_seed + a.seeds)]))
    res = SeqComparisonResult(replace(cfg, seeds=a.seeds), popularity=parts[0].popularity,
                              data_description=parts[0].data_description)
    for part in parts:
        res.runs += part.runs
        res.curves.update(part.curves)
        res.gates.update(part.gates)
    res.wall_seconds = time.perf_counter() - t0
    print(res.data_description)
    print(res.table())
    paths = write_sequential_report(res, a.out, command="python " + " ".join(sys.argv))
    print(f"Wall time {res.wall_seconds:.0f} s. Report: {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
