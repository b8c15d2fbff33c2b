#!/usr/bin/env python
"""Sharded embedding tables (issue #20): memory per process, agreement with one process, a memory budget.

Every run is a fresh ``torchrun`` (2 CPU processes, gloo) or ``python`` (1 process) of this file in worker mode;
each process reports its own peak RSS (``ru_maxrss``) and the table rows it holds, one JSON line per rank.

``memory``  -- MMoE on synthetic ids, ``--tables`` tables of ``--rows`` x 16, ``--steps`` Adagrad steps of 1024
               rows per process: DDP with ctrkit's own tables (every process holds every table) against
               TorchRec table-wise and row-wise sharding. Peak RSS per process, and the idle RSS of a process
               that imported the same libraries (the floor).
``agree``   -- MMoE on Census-Income (real data): one process with batch 2048 against 2 processes with 1024 each
               (the same global batches, the same number of steps), table-wise and row-wise, ``--seeds`` seeds:
               training loss and test AUC. The tolerance is the spread between seeds of the one-process runs.
``speed``   -- one process, the same synthetic model: training steps per second of ctrkit's own tables (dense
               gradients + Adagrad; sparse gradients + Adagrad) against TorchRec's fused CPU kernels (exact
               Adagrad), median epoch time over ``--epochs`` epochs of ``--steps`` steps, batch ``--batch``.
``budget``  -- an RSS budget per process (``--budget-gib``, enforced by a watchdog thread in each process that
               ends it at the first sample above the budget; samples every 5 ms) and tables whose total size
               exceeds it: DDP with ctrkit's tables, then the same model sharded row-wise over 2 processes.

Usage::

    python benchmarks/sharding.py memory agree budget --write     # what RESULTS.md shows
    python benchmarks/sharding.py memory --rows 200000 --steps 5  # a smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
OUT_DIR = REPO / "benchmarks" / "results" / "sharding"
BEGIN, END = "<!-- sharding:begin -->", "<!-- sharding:end -->"
TASKS = ["click", "buy"]


# ---------------------------------------------------------------------------------------------- worker side
def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _report(out_dir: str, row: dict) -> None:
    """One JSON file per rank (stdout lines of two processes can interleave)."""
    path = Path(out_dir) / f"rank{row['rank']}.json"
    path.write_text(json.dumps(row))


def _watchdog(budget_mib: float, out_dir: str) -> None:
    def watch() -> None:
        while True:
            rss = _rss_mib()
            if rss > budget_mib:
                _report(out_dir, {"rank": int(os.environ.get("RANK", 0)), "over_budget_mib": round(rss, 1)})
                os._exit(137)
            time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()


def _synthetic(n: int, tables: int, rows: int, seed: int):
    """Ids drawn from a Zipf-like law over ``rows`` ids per table; labels from a planted score of the ids."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = {f"t{i}": (rng.pareto(1.2, n) * rows / 50).astype(np.int64) % rows for i in range(tables)}
    x["num"] = rng.normal(size=n).astype(np.float32)
    score = sum(np.sin(x[f"t{i}"] * (0.37 + i)) for i in range(tables)) + x["num"]
    y = {"click": (score + rng.normal(size=n) > 0).astype(np.float32),
         "buy": (score + rng.normal(size=n) > 1).astype(np.float32)}
    return x, y


def _worker(args: argparse.Namespace) -> None:
    import torch
    torch.set_num_threads(1)
    if args.budget_mib:
        _watchdog(args.budget_mib, args.out)
    from ctrkit import DenseFeat, MMoE, SparseFeat
    from ctrkit import distributed as D
    D.init_from_env()
    rank, world = D.get_rank(), D.get_world_size()
    backend = "native" if args.mode in ("ddp", "native_dense", "native_sparse") else "torchrec"
    if args.mode == "idle":   # the floor: the libraries a worker imports, no model
        import torchrec  # noqa: F401
        _report(args.out, {"rank": rank, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        return
    if args.data == "census":
        from ctrkit import FeatureEncoder
        from ctrkit.datasets.census import load_census_income, train_val_test_split
        X, Y = load_census_income(1)
        Xtr, _, Xte, ytr, _, yte = train_val_test_split(X, Y, seed=2024)
        enc = FeatureEncoder(embedding_dim=4).fit(Xtr)
        cols, tasks = enc.feature_columns, ["income", "marital"]
        xtr, xte = enc.transform(Xtr), enc.transform(Xte)
        ytr = {t: ytr[t].values for t in tasks}
        yte = {t: yte[t].values for t in tasks}
    else:
        cols = [SparseFeat(f"t{i}", args.rows, 16) for i in range(args.tables)] + [DenseFeat("num", 1)]
        tasks = TASKS
        n = args.steps * args.batch * world
        xtr, ytr = _synthetic(n, args.tables, args.rows, seed=1)
        xte, yte = _synthetic(20000, args.tables, args.rows, seed=2)
    m = MMoE(cols, num_experts=4, expert_dnn_hidden_units=(32,), tower_dnn_hidden_units=(16,), task_names=tasks,
             embedding_backend=backend, seed=args.seed, sparse=args.mode == "native_sparse")
    kw = {} if backend == "native" else {"sharding": None if args.mode == "torchrec" else args.mode,
                                         "embedding_optimizer": args.embedding_optimizer}
    opt = "adagrad" if args.data == "synthetic" else "adam"
    m.compile(opt, lr=5e-3 if opt == "adam" else 0.05, **kw)
    from ctrkit.training.sharding import local_table_rows
    held = local_table_rows(m) if backend == "torchrec" else sum(
        w.shape[0] for w in m.embedding.weights)
    t0 = time.perf_counter()
    h = m.fit(xtr, ytr, batch_size=args.batch, epochs=args.epochs, verbose=0, seed=args.seed)
    secs = time.perf_counter() - t0
    from sklearn.metrics import roc_auc_score
    p = m.predict(xte, batch_size=4096)
    out = {"rank": rank, "world": world, "mode": args.mode, "seed": args.seed, "rows_held": int(held),
           "epoch_s": [round(float(v), 3) for v in h.history.get("epoch_seconds", [])],
           "loss": [round(float(v), 6) for v in h.history["loss"]],
           "test_auc": [round(float(roc_auc_score(yte[t], p[:, i])), 6) for i, t in enumerate(tasks)],
           "fit_s": round(secs, 2), "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    _report(args.out, out)
    D.cleanup()


# ---------------------------------------------------------------------------------------------- driver side
def _launch(procs: int, worker_args: list[str], timeout: int = 1800) -> tuple[int, list[dict], str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("WORLD_SIZE", None)
    head = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                f"--nproc_per_node={procs}", "--standalone"]
    import tempfile
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(head + [__file__, "--worker", "--out", out, *worker_args], env=env,
                              capture_output=True, text=True, timeout=timeout)
        rows = [json.loads(p.read_text()) for p in sorted(Path(out).glob("rank*.json"))]
    return proc.returncode, sorted(rows, key=lambda r: r.get("rank", 0)), proc.stderr[-3000:]


def run_memory(a) -> dict:
    common = ["--data", "synthetic", "--tables", str(a.tables), "--rows", str(a.rows), "--steps", str(a.steps),
              "--batch", "1024", "--epochs", "1"]
    res = {"tables": a.tables, "rows": a.rows, "dim": 16, "steps": a.steps,
           "table_mib_total": round(a.tables * a.rows * 16 * 4 / 2**20, 1)}
    rc, rows, _ = _launch(2, ["--mode", "idle"])
    res["idle"] = [r["peak_rss_mib"] for r in rows]
    for mode in ("ddp", "table_wise", "row_wise"):
        rc, rows, err = _launch(2, ["--mode", mode, *common])
        res[mode] = {"rc": rc, "ranks": rows, "stderr_tail": err[-600:] if rc else ""}
        print(mode, rc, [(r.get("peak_rss_mib"), r.get("rows_held")) for r in rows], flush=True)
    return res


def run_agree(a) -> dict:
    res: dict = {"seeds": a.seeds}
    for seed in range(1, a.seeds + 1):
        for procs, mode, batch in ((1, "native", 2048), (1, "table_wise", 2048), (2, "table_wise", 1024),
                                   (2, "row_wise", 1024)):
            args = ["--mode", "ddp" if mode == "native" else mode, "--data", "census", "--batch", str(batch),
                    "--epochs", str(a.epochs), "--seed", str(seed)]
            rc, rows, err = _launch(procs, args)
            key = f"{procs}p_{mode}"
            r0 = rows[0] if rows else {"rc": rc, "err": err[-500:]}
            res.setdefault(key, []).append(r0)
            print(key, seed, r0.get("loss"), r0.get("test_auc"), flush=True)
    return res


def run_speed(a) -> dict:
    common = ["--data", "synthetic", "--tables", str(a.tables), "--rows", str(a.rows), "--steps", str(a.steps),
              "--batch", str(a.batch), "--epochs", str(a.epochs)]
    res: dict = {"tables": a.tables, "rows": a.rows, "steps": a.steps, "batch": a.batch, "epochs": a.epochs}
    for rnd in range(a.repeats):       # alternate the three, so drifting load hits them alike
        for mode, extra in (("native_dense", []), ("native_sparse", []),
                            ("torchrec", ["--embedding-optimizer", "adagrad"])):
            rc, rows, err = _launch(1, ["--mode", mode, *common, *extra])
            r = rows[0] if rows else {"rc": rc, "err": err[-400:]}
            res.setdefault(mode, []).append(r)
            print(mode, rnd, r.get("epoch_s"), flush=True)
    return res


def run_budget(a) -> dict:
    budget = int(a.budget_gib * 1024)
    rows = int(a.budget_rows)
    common = ["--data", "synthetic", "--tables", "4", "--rows", str(rows), "--steps", str(a.budget_steps),
              "--batch", "1024", "--epochs", "1", "--budget-mib", str(budget),
              "--embedding-optimizer", "rowwise_adagrad"]
    res = {"budget_mib": budget, "tables": 4, "rows": rows, "dim": 16,
           "table_mib_total": round(4 * rows * 16 * 4 / 2**20, 1)}
    for mode in ("ddp", "row_wise"):
        t0 = time.time()
        rc, out, err = _launch(2, ["--mode", mode, *common])
        res[mode] = {"rc": rc, "ranks": out, "wall_s": round(time.time() - t0, 1),
                     "stderr_tail": err[-400:] if rc else ""}
        print(mode, rc, out, flush=True)
    return res


def _table(res: dict) -> str:
    lines = []
    if "memory" in res:
        m = res["memory"]
        lines += [f"### Peak RSS per process: {m['tables']} tables of {m['rows']:,} x {m['dim']} "
                  f"({m['table_mib_total']:,.0f} MiB of tables), {m['steps']} steps, 2 processes",
                  "", f"Idle floor (torch + TorchRec imported): {', '.join(f'{v:.0f}' for v in m['idle'])} MiB.", "",
                  "| run | rank | table rows held | peak RSS (MiB) | fit (s) |", "|---|---|---|---|---|"]
        for mode in ("ddp", "table_wise", "row_wise"):
            for r in m[mode]["ranks"]:
                lines.append(f"| {mode} | {r['rank']} | {r['rows_held']:,} | {r['peak_rss_mib']:,.0f} | "
                             f"{r['fit_s']} |")
        lines.append("")
    if "agree" in res:
        g = res["agree"]
        lines += ["### One process against two (census group 1, MMoE, same global batches and steps)", "",
                  "| run | final training loss (mean ± sd over seeds) | test AUC income | test AUC marital |",
                  "|---|---|---|---|"]
        for key, runs in g.items():
            if key == "seeds":
                continue
            ok = [r for r in runs if "loss" in r]
            if not ok:
                continue
            loss = [r["loss"][-1] for r in ok]
            a0 = [r["test_auc"][0] for r in ok]
            a1 = [r["test_auc"][1] for r in ok]

            def ms(v):
                return f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}"
            lines.append(f"| {key} | {ms(loss)} | {ms(a0)} | {ms(a1)} |")
        lines.append("")
    if "speed" in res:
        sp = res["speed"]
        lines += [f"### Training speed, one process: {sp['tables']} tables of {sp['rows']:,} x 16, "
                  f"batch {sp['batch']}, {sp['steps']} steps per epoch", "",
                  "| tables | steps / s (median over epochs and rounds) | vs ctrkit dense |", "|---|---|---|"]
        med = {}
        for mode in ("native_dense", "native_sparse", "torchrec"):
            times = [t for r in sp.get(mode, []) for t in r.get("epoch_s", [])[1:]]   # the first epoch warms up
            med[mode] = sp["steps"] / statistics.median(times) if times else float("nan")
        names = {"native_dense": "ctrkit, dense gradients, Adagrad",
                 "native_sparse": "ctrkit, sparse=True, Adagrad", "torchrec": "TorchRec fused kernel, exact Adagrad"}
        for mode, v in med.items():
            lines.append(f"| {names[mode]} | {v:.1f} | {v / med['native_dense']:.2f}x |")
        lines.append("")
    if "budget" in res:
        b = res["budget"]
        lines += [f"### A {b['budget_mib']:,} MiB budget per process, {b['table_mib_total']:,.0f} MiB of tables "
                  f"({b['tables']} x {b['rows']:,} x {b['dim']})", "",
                  "| run | exit | per rank |", "|---|---|---|"]
        for mode in ("ddp", "row_wise"):
            r = b[mode]
            per = "; ".join(
                (f"rank {x['rank']}: over budget at {x['over_budget_mib']:,.0f} MiB" if "over_budget_mib" in x else
                 f"rank {x['rank']}: peak {x['peak_rss_mib']:,.0f} MiB, {x['rows_held']:,} rows, loss {x['loss']}, "
                 f"AUC {x['test_auc']}") for x in r["ranks"]) or "(no output)"
            lines.append(f"| {mode} | {r['rc']} | {per} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", default=["memory"], help="memory, agree, budget")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=".", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="ddp")
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--tables", type=int, default=4)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="speed: rounds of the three runs")
    ap.add_argument("--budget-mib", type=int, default=0)
    ap.add_argument("--budget-gib", type=float, default=2.0)
    ap.add_argument("--budget-rows", type=int, default=9_000_000)
    ap.add_argument("--budget-steps", type=int, default=30)
    ap.add_argument("--embedding-optimizer", default=None, help="the sharded tables' fused optimizer")
    ap.add_argument("--write", action="store_true", help="write results/sharding/ and the RESULTS.md section")
    a = ap.parse_args()
    if a.worker:
        _worker(a)
        return
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": "python benchmarks/sharding.py " +
                 " ".join(sys.argv[1:])}
    for what in a.what:
        res[what] = {"memory": run_memory, "agree": run_agree, "budget": run_budget, "speed": run_speed}[what](a)
    print(_table(res))
    if a.write:   # merged with the parts measured before (each part keeps its own command and date)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        old = OUT_DIR / "results.json"
        merged = json.loads(old.read_text()) if old.exists() else {}
        for what in a.what:
            merged[what] = {**res[what], "date": res["date"], "command": res["command"]}
        for what in ("memory", "agree", "budget"):   # results written before parts had their own command
            if what in merged and "command" not in merged[what]:
                merged[what].update(date=merged.get("date"), command=merged.get("command"))
        res = merged
        old.write_text(json.dumps(res, indent=1))
        text = _table(res)
        cmds = sorted({(res[w]["date"], res[w]["command"]) for w in ("memory", "agree", "budget", "speed") if w in res})
        body = (f"{BEGIN}\nMeasured on 2 shared CPU cores with " + "; ".join(f"`{c}` ({d})" for d, c in cmds)
                + f".\n\n{text}\n{END}")
        md = RESULTS_MD.read_text()
        if BEGIN in md:
            md = md[:md.index(BEGIN)] + body + md[md.index(END) + len(END):]
        else:
            md += "\n## Sharded embedding tables with TorchRec (issue #20)\n\n" + body + "\n"
        RESULTS_MD.write_text(md)


if __name__ == "__main__":
    main()
