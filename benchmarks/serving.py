#!/usr/bin/env python
"""Serving benchmark (issue #8): raw-record latency of ``predict_records`` and ONNX Runtime vs eager throughput.

Set-up, as in the README's census example: the bundled Census-Income file (group 1: ``income``, ``marital``),
split 80/10/10 with seed 2024; a :class:`~ctrkit.FeatureEncoder` fitted on the training part (31 categorical
columns, 7 continuous, embedding dim 4); MMoE with 8 experts of (16,) and towers (8,), trained for
``--epochs`` epochs, saved, and loaded back with :func:`ctrkit.load_model` (what a server does).

Measured, with ``--threads`` intra-op threads (default 1) for PyTorch and ONNX Runtime alike:

* **latency of one raw record**: ``model.predict_records([record])`` over ``--calls`` calls (default 1,000),
  each on a different test record (raw strings, numbers and NaN gaps, as ``DataFrame.to_dict("records")``
  gives them), after 50 warm-up calls: median, p99 and mean in milliseconds. For reference, the same on
  ``model.predict(pd.DataFrame([record]))`` (the DataFrame path). The two paths must agree exactly.
* **throughput on encoded inputs** at batch 1 and 4096 (rows/s, and the median time per call): eager PyTorch
  (``model.predict`` on the encoder's output, and the bare serving graph under ``torch.inference_mode``) vs
  the exported ONNX file in ONNX Runtime (CPU). The ONNX parity (max abs difference) on the test split is
  printed too.

Usage::

    python benchmarks/serving.py --quick          # smoke test
    python benchmarks/serving.py --write          # full run, updates the serving section of RESULTS.md
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- serving:begin -->", "<!-- serving:end -->"


def _ms(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {"median": float(np.median(a)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def _timed_calls(fn, args_list, warmup: int = 50) -> list[float]:
    for a in args_list[:warmup]:
        fn(a)
    out = []
    for a in args_list:
        t0 = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t0)
    return out


def build(epochs: int, out_dir: str):
    import ctrkit
    from ctrkit import FeatureEncoder, MMoE
    from ctrkit.datasets import census_feature_types, load_census_income, split_indices
    X, y = load_census_income(group=1)
    sparse, dense = census_feature_types()
    tr, va, te = split_indices(len(X), (0.8, 0.1, 0.1), seed=2024)
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X.iloc[tr])
    model = MMoE(enc.feature_columns, num_experts=8, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
                 task_names=["income", "marital"], task_types=["binary", "binary"])
    model.compile("adam", lr=3e-3, metrics=["auc"])
    if epochs:
        model.fit(X.iloc[tr], y.iloc[tr], batch_size=512, epochs=epochs, verbose=0)
    path = os.path.join(out_dir, "census-mmoe")
    model.save(path)
    return ctrkit.load_model(path), X.iloc[te].reset_index(drop=True), y.iloc[te].reset_index(drop=True)


def run(args) -> str:
    import pandas as pd
    import torch
    torch.set_num_threads(args.threads)
    from ctrkit.export import ServingModule, export_onnx, parity, serving_inputs
    tmp = tempfile.mkdtemp(prefix="ctrkit-serving-")
    t0 = time.perf_counter()
    model, X_te, y_te = build(args.epochs, tmp)
    print(f"set-up (fit {args.epochs} epoch(s), save, load): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    records = X_te.iloc[:args.calls].to_dict("records")
    lines = []

    # ---- raw-record latency
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lat = _ms(_timed_calls(lambda r: model.predict_records([r]), records))
        n_df = min(len(records), 300)
        lat_df = _ms(_timed_calls(lambda r: model.predict(pd.DataFrame([r])), records[:n_df], warmup=20))
        k = min(200, len(records))
        fast = np.concatenate([model.predict_records([r]) for r in records[:k]])
        slow = model.predict(X_te.iloc[:k])
    agree = float(np.abs(fast - slow).max())
    lines += ["**Latency of one raw record** (census MMoE, 38 raw fields, each call a different test record):", "",
              "| path | calls | median ms | p99 ms | mean ms |", "|---|---|---|---|---|",
              f"| `model.predict_records([record])` | {len(records)} | {lat['median']:.3f} | {lat['p99']:.3f} | "
              f"{lat['mean']:.3f} |",
              f"| `model.predict(pd.DataFrame([record]))` (reference) | {n_df} | {lat_df['median']:.3f} | "
              f"{lat_df['p99']:.3f} | {lat_df['mean']:.3f} |", "",
              f"The two paths agree: max abs difference {agree:.1e} on {k} records (float rounding of batch-1 vs "
              f"batch-{k} matrix products).", ""]
    print("\n".join(lines), file=sys.stderr)

    # ---- throughput: eager vs onnxruntime
    inputs = serving_inputs(model, X_te)
    n = len(X_te)
    enc_x = model.encoder.transform(X_te)
    rows = ["| engine | batch | median ms / call | rows/s |", "|---|---|---|---|"]
    onnx_ok = True
    try:
        path = export_onnx(model, os.path.join(tmp, "census-mmoe.onnx"))
        d = parity(model, path, inputs)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except ImportError as e:
        onnx_ok, d = False, float("nan")
        print(f"onnxruntime part skipped: {e}", file=sys.stderr)
    serving = ServingModule(model).eval()
    names = serving.input_names
    for bs in (1, 4096):
        starts = [(i * bs) % max(n - bs, 1) for i in range(args.calls if bs == 1 else args.big_calls)]
        # eager, public facade on encoded input (validation + Trainer loop + sigmoid)
        t = _timed_calls(lambda s: model.predict({k: v[s:s + bs] for k, v in enc_x.items()}, batch_size=4096),
                         starts, warmup=5 if bs > 1 else 50)
        rows.append(f"| eager PyTorch, `model.predict(encoded)` | {bs} | {np.median(t) * 1e3:.3f} | "
                    f"{bs / np.median(t):,.0f} |")
        tens = {k: torch.from_numpy(v) for k, v in inputs.items()}

        def eager(s):
            with torch.inference_mode():
                serving(*(tens[k][s:s + bs] for k in names))
        t = _timed_calls(eager, starts, warmup=5 if bs > 1 else 50)
        rows.append(f"| eager PyTorch, serving graph (`inference_mode`) | {bs} | {np.median(t) * 1e3:.3f} | "
                    f"{bs / np.median(t):,.0f} |")
        if onnx_ok:
            t = _timed_calls(lambda s: sess.run(None, {k: v[s:s + bs] for k, v in inputs.items()}), starts,
                             warmup=5 if bs > 1 else 50)
            rows.append(f"| ONNX Runtime (CPU) | {bs} | {np.median(t) * 1e3:.3f} | {bs / np.median(t):,.0f} |")
    tput = ["**Throughput on encoded inputs** (census test split, 9,976 rows; batch 1: "
            f"{args.calls} calls, batch 4096: {args.big_calls} calls, medians):", "", *rows, "",
            f"ONNX parity on the census test split: max abs difference in probabilities {d:.1e} (bound 1e-5)."]
    print("\n".join(tput), file=sys.stderr)
    lines += tput
    import torch as _t
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared; load "
              f"average {load:.1f} at the end of the run), "
              f"{args.threads} thread(s); torch {_t.__version__}"
              + (f", onnxruntime {ort.__version__}" if onnx_ok else "") + f", Python {platform.python_version()}."]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (appended if absent)."""
    from speed import write_section as write  # same folder: one implementation for every benchmark
    write(text, BEGIN, END, '## Serving: raw-record latency and ONNX Runtime throughput (issue #8)')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1000, help="batch-1 calls timed (default 1000)")
    ap.add_argument("--big-calls", type=int, default=20, help="batch-4096 calls timed (default 20)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs before the measurement (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 100 calls, no training")
    ap.add_argument("--write", action="store_true", help=f"update the serving section of {RESULTS_MD.name}")
    args = ap.parse_args(argv)
    if args.quick:
        args.calls, args.big_calls, args.epochs = 100, 3, 0
    text = run(args)
    cmd = "python benchmarks/serving.py" + ("" if not argv and len(sys.argv) < 2 else " " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--write"))
    text = f"`{cmd.strip()}` ({time.strftime('%Y-%m-%d')}):\n\n" + text
    if args.write:
        write_section(text)
        print(f"updated {RESULTS_MD}", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
