#!/usr/bin/env python
"""Large-vocabulary benchmark (issue #4, item 3): dense Adam vs sparse embeddings + SparseAdam.

A synthetic Criteo-like input: 26 categorical fields whose ids follow a bounded Zipf law (exponent ``--zipf``,
default 1.15) over each field's vocabulary, the hot ranks scattered over the table by a random permutation.
The vocabularies grow geometrically from field to field and add up to ``--totals`` rows (default 100,000 and
10,000,000). Model: ctrkit ``DNN(cols, dnn_hidden_units=(256, 128), sparse=...)``, embedding dim 16, BCE,
batch 4096, ``compile("adam")`` -- with ``sparse=True`` ctrkit gives the tables ``SparseAdam`` and the
MLP ``Adam``; with ``sparse=False`` one (fused) Adam updates every parameter, whole tables included.

For each (total, mode) a fresh subprocess (``--worker``) builds the model, trains ``--warmup`` + ``--steps``
steps with one ``fit`` call, and reports the median step time over the last ``--steps`` steps (a ctrkit
callback timestamps the end of every batch), the model build + compile time and the peak RSS. ``--impl torch``
adds a plain-PyTorch reference (``F.embedding(sparse=...)`` on one table, an ``nn.Sequential`` MLP, Adam or
SparseAdam + Adam) to separate ctrkit's overhead from PyTorch's.

The headline number is the ratio step(largest total) / step(smallest total) per mode: for sparse it should
stay <= 1.5x (a step touches only the looked-up rows); dense Adam touches every row every step.

Usage::

    python benchmarks/sparse_embedding.py                 # 100K vs 10M rows, ctrkit + torch reference
    python benchmarks/sparse_embedding.py --quick         # 100K vs 1M rows, 10 steps (smoke test)
    python benchmarks/sparse_embedding.py --write         # updates the sparse section of benchmarks/RESULTS.md

Memory: 10M x 16 float32 is 640 MB per copy. Dense Adam holds about 4 copies (weights, gradient, two
moments) plus a transient, so ~3 GB; sparse holds 3 (weights, two moments).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import _machine, _peak_rss_mb, _rss_mb, write_section  # noqa: E402  (same folder)

BEGIN, END = "<!-- sparse:begin -->", "<!-- sparse:end -->"
N_FIELDS = 26


def vocab_sizes(total: int, n: int = N_FIELDS) -> list[int]:
    """``n`` vocabularies growing geometrically (ratio ~1.4 per field, Criteo-like) that add up to ``total``."""
    import numpy as np
    g = np.geomspace(1.0, 3000.0, n)
    v = np.maximum(2, np.floor(g / g.sum() * total)).astype(np.int64)
    v[-1] += total - int(v.sum())
    return [int(x) for x in v]


def zipf_ids(rng, vocab: int, rows: int, a: float):
    """``rows`` ids in ``[0, vocab)``: rank k drawn with p ~ k^-a, ranks placed by a random permutation."""
    import numpy as np
    w = np.arange(1, vocab + 1, dtype=np.float64) ** -a
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    ranks = np.minimum(np.searchsorted(cdf, rng.random(rows)), vocab - 1)
    return rng.permutation(vocab)[ranks].astype(np.int64)


def make_data(total: int, rows: int, a: float, seed: int):
    import numpy as np
    rng = np.random.default_rng(seed)
    sizes = vocab_sizes(total)
    x = {f"C{i}": zipf_ids(rng, v, rows, a) for i, v in enumerate(sizes)}
    y = (rng.random(rows) < 0.25).astype(np.float32)
    return sizes, x, y


# ====================================================================================== workers
def _enough(stamps: list[float], args) -> bool:
    """Stop after warmup + steps batches, or earlier once the timed steps took ``--step-budget`` seconds
    (at least 5 timed steps): slow configurations (dense Adam on 10M rows) then need less wall time."""
    done = len(stamps) - 1
    if done >= args.warmup + args.steps:
        return True
    timed = done - args.warmup
    return timed >= 5 and stamps[-1] - stamps[args.warmup] >= args.step_budget


def run_ctrkit(args, sizes, x, y) -> dict:
    from ctrkit import DNN, SparseFeat
    from ctrkit.callbacks import Callback

    class StepTimer(Callback):
        def __init__(self):
            super().__init__()
            self.stamps = []

        def on_epoch_begin(self, epoch, logs=None):
            self.stamps.append(time.perf_counter())

        def on_train_batch_end(self, step, logs=None):
            self.stamps.append(time.perf_counter())
            if _enough(self.stamps, args):
                self.model.stop_training = True  # ctrkit ends the epoch after this batch

    cols = [SparseFeat(f"C{i}", v, embedding_dim=args.dim) for i, v in enumerate(sizes)]
    t0 = time.perf_counter()
    m = DNN(cols, dnn_hidden_units=tuple(args.hidden), sparse=(args.mode == "sparse"), seed=args.seed)
    m.compile("adam")
    setup = time.perf_counter() - t0
    timer = StepTimer()
    t0 = time.perf_counter()
    m.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=[timer])
    fit_wall = time.perf_counter() - t0
    opt = m.optimizer
    opt_names = [type(o).__name__ for o in getattr(opt, "optimizers", [opt])]
    steps = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]  # step i: end(i-1) -> end(i)
    return {"step_s_all": steps, "setup_s": setup, "fit_wall_s": fit_wall, "optimizers": opt_names}


def run_torch(args, sizes, x, y) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(args.seed)
    sparse = args.mode == "sparse"
    t0 = time.perf_counter()
    offs = torch.as_tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long)
    table = nn.Parameter(torch.randn(sum(sizes), args.dim) * 0.01)
    layers, prev = [], N_FIELDS * args.dim
    for u in args.hidden:
        layers += [nn.Linear(prev, u), nn.ReLU()]
        prev = u
    mlp = nn.Sequential(*layers, nn.Linear(prev, 1))
    if sparse:
        opts = [torch.optim.SparseAdam([table], lr=1e-3), torch.optim.Adam(mlp.parameters(), lr=1e-3)]
    else:
        opts = [torch.optim.Adam([table, *mlp.parameters()], lr=1e-3)]
    setup = time.perf_counter() - t0
    ids = torch.from_numpy(np.stack([x[f"C{i}"] for i in range(N_FIELDS)], axis=1)) + offs
    yt = torch.from_numpy(y)
    steps, t0 = [], time.perf_counter()
    last, stamps = t0, [t0]
    for s in range(0, len(y), args.batch):
        e = F.embedding(ids[s:s + args.batch], table, sparse=sparse)
        logit = mlp(e.flatten(1))[:, 0]
        loss = F.binary_cross_entropy_with_logits(logit, yt[s:s + args.batch])
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        now = time.perf_counter()
        steps.append(now - last)
        stamps.append(now)
        last = now
        if _enough(stamps, args):
            break
    return {"step_s_all": steps, "setup_s": setup, "fit_wall_s": time.perf_counter() - t0,
            "optimizers": [type(o).__name__ for o in opts]}


def worker(args) -> int:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = (args.warmup + args.steps) * args.batch
    sizes, x, y = make_data(args.total, rows, args.zipf, args.seed)
    rss_data = _rss_mb()
    res = (run_ctrkit if args.impl == "ctrkit" else run_torch)(args, sizes, x, y)
    timed = res.pop("step_s_all")[args.warmup:]
    out = {"impl": args.impl, "mode": args.mode, "total": args.total, "vocab_sizes": sizes,
           "step_ms": 1e3 * statistics.median(timed), "step_ms_min": 1e3 * min(timed),
           "step_ms_max": 1e3 * max(timed), "timed_steps": len(timed), "peak_rss_mb": _peak_rss_mb(),
           "rss_after_data_mb": rss_data, **res, "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(out))
    return 0


# ====================================================================================== parent
def _agg(runs, impl, mode, total):
    rs = [r for r in runs if r.get("impl") == impl and r.get("mode") == mode and r.get("total") == total
          and "error" not in r]
    return rs


def build_report(runs, args, command) -> str:
    impls = list(dict.fromkeys(r["impl"] for r in runs))
    totals = sorted({r["total"] for r in runs})
    lo, hi = totals[0], totals[-1]
    med = statistics.median
    lines = [f"Synthetic Criteo-like input: {N_FIELDS} categorical fields, Zipf(a={args.zipf}) ids, embedding dim "
             f"{args.dim}, MLP {tuple(args.hidden)}, BCE, batch {args.batch}, `compile(\"adam\")`. Step time: median "
             f"over {args.steps} steps (fewer when they take over {args.step_budget:g} s: see 'steps') after "
             f"{args.warmup} warm-up steps, in a fresh process per run "
             f"(min-max of the per-step times in brackets); {args.repeats} repeat(s), median over repeats.", ""]
    lines.append("| impl | mode | total rows | optimizer(s) | step ms | steps | build+compile s | peak RSS MB |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for impl in impls:
        for total in totals:
            for mode in ("dense", "sparse"):
                rs = _agg(runs, impl, mode, total)
                if not rs:
                    err = next((r.get("error", "") for r in runs if r.get("impl") == impl and r.get("mode") == mode
                                and r.get("total") == total), "")
                    lines.append(f"| {impl} | {mode} | {total:,} | failed: {err[:80]} | | | | |")
                    continue
                lines.append(f"| {impl} | {mode} | {total:,} | {' + '.join(rs[0]['optimizers'])} | "
                             f"{med(r['step_ms'] for r in rs):.1f} ({min(r['step_ms_min'] for r in rs):.1f}-"
                             f"{max(r['step_ms_max'] for r in rs):.1f}) | "
                             f"{'/'.join(str(r['timed_steps']) for r in rs)} | {med(r['setup_s'] for r in rs):.1f} | "
                             f"{med(r['peak_rss_mb'] for r in rs):,.0f} |")
    lines += ["", f"Ratio step({hi:,}) / step({lo:,}) (target for sparse: <= 1.5x):", ""]
    lines += ["| impl | dense | sparse |", "|---|---|---|"]
    for impl in impls:
        cells = []
        for mode in ("dense", "sparse"):
            a, b = _agg(runs, impl, mode, lo), _agg(runs, impl, mode, hi)
            cells.append(f"{med(r['step_ms'] for r in b) / med(r['step_ms'] for r in a):.2f}x" if a and b else "-")
        lines.append(f"| {impl} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Command: `{command}`  ",
              f"Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}  ",
              f"Machine: {_machine(runs)}"]
    return "\n".join(lines)


def parent(args) -> int:
    if args.quick:
        args.totals, args.steps, args.warmup = [100_000, 1_000_000], 10, 3
    command = "python benchmarks/sparse_embedding.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    runs, t_all = [], time.perf_counter()
    plan = [(r, impl, total, mode) for r in range(args.repeats) for impl in args.impl for total in args.totals
            for mode in ("dense", "sparse")]
    for rep, impl, total, mode in plan:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--impl-one", impl, "--total",
               str(total), "--mode", mode, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch", str(args.batch), "--dim", str(args.dim), "--zipf", str(args.zipf),
               "--seed", str(args.seed + rep), "--step-budget", str(args.step_budget),
               "--hidden", *map(str, args.hidden)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                               env=dict(os.environ, PYTHONWARNINGS="ignore"))
            last = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
            res = json.loads(last[-1]) if p.returncode == 0 and last else {
                "error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
        except subprocess.TimeoutExpired:
            res = {"error": f"timed out after {args.timeout}s"}
        res.setdefault("impl", impl)
        res.setdefault("mode", mode)
        res.setdefault("total", total)
        res["repeat"] = rep
        runs.append(res)
        msg = (f"ERROR {res['error']}" if "error" in res else
               f"step {res['step_ms']:.1f} ms, build {res['setup_s']:.1f} s, peak RSS {res['peak_rss_mb']:,.0f} MB")
        print(f"[{rep + 1}/{args.repeats}] {impl:6s} {mode:6s} {total:>11,}: {msg} "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    report = build_report(runs, args, command)
    print(report)
    print(f"\n(total {time.perf_counter() - t_all:.0f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    if args.write:
        write_section(report, BEGIN, END, "## Large vocabularies: dense Adam vs sparse embeddings + SparseAdam")
        print("updated benchmarks/RESULTS.md", file=sys.stderr)
    return 1 if any("error" in r for r in runs) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--totals", type=int, nargs="+", default=[100_000, 10_000_000],
                    help="total embedding rows over the 26 fields (default 100000 10000000)")
    ap.add_argument("--impl", nargs="+", default=["ctrkit", "torch"], choices=["ctrkit", "torch"],
                    help="ctrkit's DNN and/or the plain-PyTorch reference (default both)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed first steps (default 5)")
    ap.add_argument("--step-budget", type=float, default=30.0,
                    help="seconds of timed steps per run after which it stops early (min 5 steps; default 30)")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--zipf", type=float, default=1.15, help="Zipf exponent of the ids (default 1.15)")
    ap.add_argument("--seed", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=1, help="rounds over (impl, total, mode) (default 1)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads in workers (0: torch default)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 100K vs 1M rows, 10 timed steps")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per worker run")
    ap.add_argument("--write", action="store_true", help="update the sparse section of benchmarks/RESULTS.md")
    ap.add_argument("--json", metavar="PATH", help="also save the raw per-run results as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl-one", dest="impl_one", choices=["ctrkit", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--total", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["dense", "sparse"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.impl = args.impl_one
        return worker(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
