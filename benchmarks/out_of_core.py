#!/usr/bin/env python
"""Out-of-core benchmark (issue #6): encode a Criteo-like CSV into an HDF5 store and train from disk.

For each size (``--rows``), in a work folder:

1. ``gen``     -- write a synthetic Criteo-like CSV (13 dense ``I*`` with 5% missing, 26 sparse ``C*``, labels
   ``click`` / ``purchase``) with ``ctrkit.datasets.iter_criteo_like``, chunk by chunk.
2. ``encode``  -- ``ctrkit.data.encode_to_store``: a streaming ``partial_fit`` pass over the CSV, then a second
   pass that encodes each chunk and appends it to ``train.h5``.
3. ``disk``    -- one epoch of ``model.fit(ctrkit.data.open("train.h5"), ...)`` (block shuffle + shuffle buffer,
   read-ahead thread).
4. ``memory``  -- the same model, one epoch of ``model.fit(x, y, ...)`` on the same rows loaded into memory
   (``store.read()``): the in-memory baseline.

Each step runs in a fresh subprocess (``out_of_core.py --worker STEP ...``, one JSON line) so its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own. Throughput = rows / ``history["epoch_seconds"]``
(the epoch's shuffle included, data loading excluded). ``disk`` and ``memory`` alternate for ``--repeats``
rounds so drifting machine load hits both alike.

``--scale-to ROWS ...`` also trains one epoch from stores of those sizes made by replicating the first size's
encoded store (no CSV, no re-encoding): peak RSS of training from disk vs the number of rows, quickly.

Usage::

    python benchmarks/out_of_core.py --quick                        # 200k rows, a smoke test
    python benchmarks/out_of_core.py --rows 1000000 3000000 --repeats 2 --no-prefetch-check \
        --scale-to 10000000 --write                                 # what RESULTS.md shows
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- ooc:begin -->", "<!-- ooc:end -->"
TASKS = ["click", "purchase"]
SPARSE = [f"C{i}" for i in range(1, 27)]
DENSE = [f"I{i}" for i in range(1, 14)]


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


# ====================================================================================== workers
def work_gen(a) -> dict:
    from ctrkit.datasets import iter_criteo_like
    t = time.perf_counter()
    tmp = a.csv + ".part"
    with open(tmp, "w") as fh:
        for k, chunk in enumerate(iter_criteo_like(a.rows, chunk_rows=250_000, seed=a.seed)):
            chunk.to_csv(fh, header=(k == 0), index=False)
    os.replace(tmp, a.csv)
    return {"seconds": time.perf_counter() - t, "csv_mb": os.path.getsize(a.csv) / 2 ** 20}


def work_encode(a) -> dict:
    from ctrkit import FeatureEncoder
    from ctrkit.data import encode_to_store
    t = time.perf_counter()
    enc = FeatureEncoder(sparse=SPARSE, dense=DENSE, embedding_dim=a.emb_dim)
    store = encode_to_store(a.csv, enc, a.store, TASKS, chunksize=a.chunksize)
    return {"seconds": time.perf_counter() - t, "rows": len(store), "store_mb": os.path.getsize(a.store) / 2 ** 20,
            "vocab_total": sum(enc.vocabulary_size(c) for c in SPARSE)}


def _model(cols, seed: int):
    from ctrkit import MMoE
    m = MMoE(cols, num_experts=4, expert_dnn_hidden_units=(64,), tower_dnn_hidden_units=(32,), task_names=TASKS,
             seed=seed)
    m.compile("adam", lr=1e-3)
    return m


def work_train(a, where: str) -> dict:
    import torch

    import ctrkit
    torch.set_num_threads(a.threads)
    store = ctrkit.data.open(a.store, buffer_rows=a.buffer_rows, prefetch=a.prefetch)
    t = time.perf_counter()
    if where == "memory":
        x, y, _ = store.read()  # the whole encoded set in memory
        data, target = x, y
    else:
        data, target = store, None
    load_s = time.perf_counter() - t
    rss_before = _peak_rss_mb()
    m = _model(store.feature_columns, a.seed)
    h = m.fit(data, target, batch_size=a.batch_size, epochs=1, verbose=0, seed=a.seed)
    sec = h.history["epoch_seconds"][0]
    return {"rows": len(store), "epoch_seconds": sec, "rows_per_s": len(store) / sec, "load_seconds": load_s,
            "loss": h.history["loss"][0], "peak_rss_before_fit_mb": rss_before}


def work_replicate(a) -> dict:
    """A store of ``a.rows`` rows made of copies of the (encoded) store ``a.csv`` -- no CSV, no encoding."""
    import ctrkit
    from ctrkit.data import StoreWriter
    t = time.perf_counter()
    src = ctrkit.data.open(a.csv)
    left = a.rows
    with StoreWriter(a.store, src.feature_columns, src.task_names, encoder=src.encoder) as w:
        while left > 0:
            for lo in range(0, len(src), 500_000):
                x, y, _ = src.read(lo, lo + min(500_000, left))
                left -= w.append(x, y)
                if left <= 0:
                    break
    return {"seconds": time.perf_counter() - t, "store_mb": os.path.getsize(a.store) / 2 ** 20}


def worker(a) -> int:
    if a.worker == "gen":
        out = work_gen(a)
    elif a.worker == "replicate":
        out = work_replicate(a)
    elif a.worker == "encode":
        out = work_encode(a)
    else:
        out = work_train(a, a.worker)
    out.update(step=a.worker, peak_rss_mb=_peak_rss_mb())
    print(json.dumps(out), flush=True)
    return 0


# ====================================================================================== parent
def _run_worker(step: str, a, rows: int, csv: str, store: str, prefetch: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", step, "--rows", str(rows), "--csv", csv, "--store", store,
           "--threads", str(a.threads), "--batch-size", str(a.batch_size), "--chunksize", str(a.chunksize),
           "--buffer-rows", str(a.buffer_rows), "--prefetch", str(a.prefetch if prefetch is None else prefetch),
           "--seed", str(a.seed), "--emb-dim", str(a.emb_dim)]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    if p.returncode != 0:
        raise SystemExit(f"out_of_core.py: worker {step} ({rows:,} rows) failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["wall_seconds"] = time.perf_counter() - t
    print(f"  {step:<8} {rows:>11,} rows  " + ", ".join(
        f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items() if k != "step"),
        flush=True)
    return res


def _machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores (load average {load:.1f} at the end), torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def render(results: dict, a, command: str, elapsed: float) -> str:
    scale = results.pop("scale", None)
    lines = [
        f"Synthetic Criteo-like data (`iter_criteo_like`, seed {a.seed}): 13 dense + 26 sparse columns, labels "
        f"click/purchase, written as CSV. Encoding: `encode_to_store(csv, FeatureEncoder(...), 'train.h5', "
        f"chunksize={a.chunksize:,})` (streaming `partial_fit` pass, then an encode-and-append pass). Model: "
        f"`MMoE` (embedding dim {a.emb_dim}, 4 experts of (64,), towers (32,)), Adam 1e-3, batch {a.batch_size:,}, "
        f"one epoch, {a.threads} torch thread(s). Disk: `fit(ctrkit.data.open('train.h5', buffer_rows="
        f"{a.buffer_rows:,}, prefetch={a.prefetch}))`; memory: `fit(x, y)` on `store.read()`. Each step in a fresh "
        f"process; peak RSS = `ru_maxrss`; rows/s = rows / epoch seconds; {a.repeats} alternating repeat(s), "
        "median (min-max).", "",
        "| rows | CSV MB | store MB | encode s | encode peak RSS MB | disk rows/s | memory rows/s | disk / memory "
        "| disk train peak RSS MB | memory train peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|"]

    def med(v, fmt="{:,.0f}"):
        if not v:
            return "-"
        return fmt.format(statistics.median(v)) + (f" ({fmt.format(min(v))}-{fmt.format(max(v))})" if len(v) > 1
                                                   else "")
    for rows, r in results.items():
        d = [x["rows_per_s"] for x in r["disk"]]
        mm = [x["rows_per_s"] for x in r["memory"]]
        ratios = [x / y for x, y in zip(d, mm)]
        enc = r["encode"]
        lines.append(
            f"| {rows:,} | {r['gen']['csv_mb']:,.0f} | {enc['store_mb']:,.0f} | {enc['seconds']:,.0f} | "
            f"{enc['peak_rss_mb']:,.0f} | {med(d)} | {med(mm)} | {med(ratios, '{:.2f}')} | "
            f"{med([x['peak_rss_mb'] for x in r['disk']])} | {med([x['peak_rss_mb'] for x in r['memory']])} |")
    extra = [(rows, r["disk_noprefetch"]) for rows, r in results.items() if r.get("disk_noprefetch")]
    if extra:
        lines += ["", "Read-ahead off (`prefetch=0`: reads in the training thread), for comparison: " + "; ".join(
            f"{rows:,} rows: {statistics.median(x['rows_per_s'] for x in v):,.0f} rows/s" for rows, v in extra) + "."]
    if scale:
        base = min(results)
        lines += ["", f"Training from disk vs rows, up to {max(scale):,} rows: stores built by replicating the encoded "
                  f"{base:,}-row store (`--scale-to`; no CSV, no re-encoding), one epoch each, same settings:", "",
                  "| rows | store MB | disk rows/s | disk train peak RSS MB |", "|---|---|---|---|"]
        rows_list = [(base, results[base]["disk"][0], results[base]["encode"]["store_mb"])] + [
            (k, v["disk"], v["store_mb"]) for k, v in sorted(scale.items())]
        for rows, d, mb in rows_list:
            lines.append(f"| {rows:,} | {mb:,.0f} | {d['rows_per_s']:,.0f} | {d['peak_rss_mb']:,.0f} |")
        results["scale"] = scale
    lines += ["", f"Command: `{command}` (total {elapsed / 60:.1f} min)  ",
              f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
              f"Machine: {_machine()}"]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (appended if absent)."""
    from speed import write_section as write  # same folder: one implementation for every benchmark
    write(text, BEGIN, END, '## Out-of-core: encoding and training from an HDF5 store')


def parent(a) -> int:
    if a.quick:
        a.rows, a.repeats = [200_000], 1
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    need_gb = sum(a.rows) * 460 / 1e9 + max(a.scale_to or [0]) * 270 / 1e9  # ~190 B/row CSV + ~270 B/row store
    free_gb = shutil.disk_usage(work).free / 1e9
    if need_gb > free_gb * 0.9:
        print(f"out_of_core.py: needs about {need_gb:.1f} GB in {work}, only {free_gb:.1f} GB free.", file=sys.stderr)
        return 2
    command = "python benchmarks/out_of_core.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    t0 = time.perf_counter()
    results: dict = {}
    for rows in a.rows:
        csv, store = str(work / f"criteo_{rows}.csv"), str(work / f"criteo_{rows}.h5")
        r: dict = {"disk": [], "memory": []}
        if a.reuse and os.path.exists(csv):
            r["gen"] = {"csv_mb": os.path.getsize(csv) / 2 ** 20}
        else:
            r["gen"] = _run_worker("gen", a, rows, csv, store)
        r["encode"] = _run_worker("encode", a, rows, csv, store)
        for _ in range(a.repeats):
            r["disk"].append(_run_worker("disk", a, rows, csv, store))
            r["memory"].append(_run_worker("memory", a, rows, csv, store))
        if a.no_prefetch_check:
            r["disk_noprefetch"] = [_run_worker("disk", a, rows, csv, store, prefetch=0)]
        results[rows] = r
        if a.scale_to and rows == a.rows[0]:
            results["scale"] = {}
            for big in a.scale_to:
                big_store = str(work / f"replicated_{big}.h5")
                rep_res = _run_worker("replicate", a, big, store, big_store)  # --csv carries the source store
                d = _run_worker("disk", a, big, csv, big_store)
                results["scale"][big] = {"disk": d, "store_mb": rep_res["store_mb"]}
                os.remove(big_store)
        if not a.keep:
            for p in (csv, store):
                if os.path.exists(p):
                    os.remove(p)
    text = render(results, a, command, time.perf_counter() - t0)  # (takes results["scale"] out and back)
    print("\n" + text)
    if a.json:
        Path(a.json).write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    if a.write:
        write_section(text)
        print(f"\nwrote the ooc section of {RESULTS_MD}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--chunksize", type=int, default=200_000, help="CSV rows per chunk when encoding")
    ap.add_argument("--buffer-rows", type=int, default=262_144, help="shuffle buffer rows")
    ap.add_argument("--prefetch", type=int, default=1, help="windows read ahead")
    ap.add_argument("--emb-dim", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/ctrkit-ooc-bench")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing CSV of the same size")
    ap.add_argument("--keep", action="store_true", help="keep the CSV and store files")
    ap.add_argument("--no-prefetch-check", action="store_true", help="also train from disk with prefetch=0")
    ap.add_argument("--scale-to", type=int, nargs="*", default=[], metavar="ROWS",
                    help="also train from stores of these sizes made by replicating the first size's store")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true", help="update the ooc section of benchmarks/RESULTS.md")
    ap.add_argument("--json", help="write the raw per-step results here")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--worker", choices=["gen", "encode", "disk", "memory", "replicate"], help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        a.rows = a.rows[0]
        return worker(a)
    return parent(a)


if __name__ == "__main__":
    sys.exit(main())
