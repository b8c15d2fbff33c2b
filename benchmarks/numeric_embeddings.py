#!/usr/bin/env python
"""Numeric feature embeddings (issue #18): what they cost per training step on CPU.

The comparison's MMoE on Census-Income group 1 (``ctrkit compare`` defaults: embedding dim 4, 8 experts of
(16,), linear gates, towers (8,), Adam lr 5e-3, batch 1024), its seven numeric columns as raw values only
(``none``) or also embedded (``quantile``, ``ple``, ``periodic``, the encoder's defaults: 16 bins, 16
frequencies). Each repeat trains every variant one epoch after a one-epoch warm-up, the variants alternating
(A B C D A B C D ...) so that drifting machine load hits them alike, and times the second epoch in CPU seconds of
this process (``time.process_time``: it leaves out time spent waiting for a core on a shared machine) and in wall
seconds; prediction is timed on the test split (batch 4096). Reported: medians over repeats.

The quality side (test AUC over seeds) comes from ``ctrkit compare``, e.g.::

    ctrkit compare --models MMoE --seeds 3 --numeric-embedding ple

Usage::

    OMP_NUM_THREADS=1 python benchmarks/numeric_embeddings.py --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

KINDS = ("none", "quantile", "ple", "periodic")


def _data(kind: str):
    from ctrkit.compare import prepare_census
    return prepare_census(1, 4, None if kind == "none" else kind)


def _model(data):
    from ctrkit import MMoE
    m = MMoE(data.feature_columns, num_experts=8, expert_dnn_hidden_units=(16,), gate_dnn_hidden_units=(),
             tower_dnn_hidden_units=(8,), task_names=data.task_names, task_types=data.task_types, seed=0)
    m.compile("adam", lr=5e-3)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    datas = {k: _data(k) for k in args.kinds}
    rows: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": [], "pred": [], "params": []}
                                               for k in args.kinds}
    for _ in range(args.repeats):
        for k in args.kinds:
            d = datas[k]
            (xtr, ytr), (xte, _) = d.train, d.test
            m = _model(d)
            m.fit(xtr, ytr, batch_size=1024, epochs=1, verbose=0, shuffle=True)     # warm-up epoch
            c0, w0 = time.process_time(), time.perf_counter()
            m.fit(xtr, ytr, batch_size=1024, epochs=1, verbose=0, shuffle=True)
            c1, w1 = time.process_time(), time.perf_counter()
            n = len(next(iter(xtr.values())))
            rows[k]["cpu"].append(n / (c1 - c0))
            rows[k]["wall"].append(n / (w1 - w0))
            m.predict(xte, batch_size=4096)
            p0 = time.process_time()
            m.predict(xte, batch_size=4096)
            rows[k]["pred"].append(len(next(iter(xte.values()))) / (time.process_time() - p0))
            rows[k]["params"].append(m.count_params())
    base = statistics.median(rows[args.kinds[0]]["cpu"])
    print(f"| numeric embedding | train samples/CPU-s | train samples/s (wall) | vs {args.kinds[0]} (CPU) | "
          "predict samples/CPU-s | params |")
    print("|---|---|---|---|---|---|")
    for k in args.kinds:
        r = rows[k]
        cpu = statistics.median(r["cpu"])
        print(f"| {k} | {cpu:,.0f} ({min(r['cpu']):,.0f}-{max(r['cpu']):,.0f}) | {statistics.median(r['wall']):,.0f} | "
              f"{cpu / base:.2f} | {statistics.median(r['pred']):,.0f} | {int(np.median(r['params'])):,} |")


if __name__ == "__main__":
    main()
