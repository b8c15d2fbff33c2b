"""The MMoE paper's synthetic experiment with enough seeds to tell a 0.005 MSE gap from noise (issue #18).

Ma et al. (KDD 2018, Figure 4) find that MMoE's advantage over Shared-Bottom grows as the two tasks' correlation
falls. Five seeds (``ctrkit compare --data synthetic``) could not tell: the seed spread was larger than the gaps.
This script:

1. runs a **pilot** (``--pilot-seeds``, default 8) of Shared-Bottom, OMoE and MMoE at every correlation;
2. estimates the standard deviation of the paired per-seed difference MMoE - Shared-Bottom (same data seed,
   same initialisation seed) and computes with a paired t-test power calculation (noncentral t,
   :func:`ctrkit.compare.stats.seeds_for_power`) the seeds needed to detect ``--gap`` (0.005) at ``--alpha``
   0.05 with ``--power`` 0.8;
3. continues to ``max(--min-seeds, that)`` seeds, capped by ``--max-seeds`` and ``--budget-minutes`` (it stops
   starting new seeds when the next one would not fit, and says so);
4. reports per correlation the mean test MSE with a 95% t-interval per model, the paired differences MMoE -
   Shared-Bottom (t and percentile-bootstrap intervals), OMoE - Shared-Bottom and MMoE - OMoE, and the trend:
   the gain (Shared-Bottom - MMoE) at the lowest correlation minus the gain at p = 1, with intervals.

Protocol (``ctrkit.compare``'s synthetic sweep): ``prepare_synthetic(p, 1000 + seed)`` (d = 100, c = 1, m = 10
sine terms, noise std 0.1; 10,000 train / 2,000 validation / 2,000 test rows), MoE models with 8 experts of 16
units and towers of 8, Shared-Bottom's bottom width matched to MMoE's parameter count, Adam, early stopping on
task 1's validation MSE with the best weights restored; test MSE is the mean over both tasks. Seed ``s`` draws the
same inputs, sine parameters, noise and initialisations at every correlation (the generator's draws do not depend
on ``p``), so the trend is also paired by seed.

Every finished run is appended to ``runs.jsonl`` in ``--out`` at once; rerunning the same command resumes (runs
already there are skipped; a changed setting is refused). ``--report-only`` rewrites the report from the runs.

Usage::

    nice -n 10 python benchmarks/mmoe_synthetic_power.py --budget-minutes 55          # the recorded run
    python benchmarks/mmoe_synthetic_power.py --quick --out /tmp/power                 # smoke test, ~1 minute
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("Shared-Bottom", "OMoE", "MMoE")
SETTINGS = ("correlations", "batch_size", "lr", "patience", "max_epochs", "n_train")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/mmoe_synthetic_power"))
    ap.add_argument("--correlations", default="1.0,0.9,0.5", help="the paper's: 1.0, 0.9, 0.5")
    ap.add_argument("--pilot-seeds", type=int, default=8)
    ap.add_argument("--min-seeds", type=int, default=30)
    ap.add_argument("--max-seeds", type=int, default=400)
    ap.add_argument("--budget-minutes", type=float, default=60.0, help="stop starting seeds after this")
    ap.add_argument("--gap", type=float, default=0.005, help="MSE difference the run should detect")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=10000, help="bootstrap resamples")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 pilot seeds, 3 seeds, 2,000 rows")
    a = ap.parse_args(argv)
    if a.quick:
        a.pilot_seeds, a.min_seeds, a.max_seeds, a.n_train, a.max_epochs = 2, 3, 3, 2000, 20
    a.correlations = [float(p) for p in a.correlations.split(",")]
    return a


# ------------------------------------------------------------------------------------------ runs
def load_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:   # a line cut short by a kill: that run is redone
                pass
    return runs


def check_settings(out: Path, args: argparse.Namespace) -> None:
    cfg_path = out / "settings.json"
    mine = {k: getattr(args, k) for k in SETTINGS}
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != mine:
            sys.exit(f"{out} holds runs made with {old}; this command asks for {mine}. Use another --out.")
    else:
        cfg_path.write_text(json.dumps(mine, indent=1) + "\n")


class Runner:
    """Trains one (correlation, model, seed) cell with ``ctrkit.compare``'s synthetic protocol."""

    def __init__(self, args: argparse.Namespace):
        import torch

        from ctrkit.compare.tabular import CompareConfig, _model_specs, prepare_synthetic
        torch.set_num_threads(args.threads)
        self.args = args
        self.cfg = CompareConfig(num_experts=8, expert_units=16, tower_units=8, batch_size=args.batch_size,
                                 lr=args.lr, max_epochs=args.max_epochs, patience=args.patience,
                                 models=MODELS, baselines=(), verbose=False)
        self._prepare = prepare_synthetic
        # the builders depend only on the feature columns and tasks, the same for every p and seed
        self.specs = _model_specs(prepare_synthetic(args.correlations[0], 0, n_train=64, n_val=8, n_test=8),
                                  self.cfg)
        self._data: dict[tuple[float, int], Any] = {}

    def run(self, p: float, model: str, seed: int) -> dict[str, Any]:
        from ctrkit.compare.tabular import _train_one
        key = (p, seed)
        if key not in self._data:
            self._data = {key: self._prepare(p, 1000 + seed, n_train=self.args.n_train)}
        data = self._data[key]
        (net, subset), = self.specs[model](seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, _, _ = _train_one(net, subset, data, self.cfg, seed)
        return {"p": p, "model": model, "seed": seed, "data_seed": 1000 + seed,
                "mse": (out["task1_mse"] + out["task2_mse"]) / 2, "task1_mse": out["task1_mse"],
                "task2_mse": out["task2_mse"], "epochs": out["epochs"], "seconds": out["seconds"],
                "params": out["params"]}


def run_seed(runner: Runner, seed: int, done: set, fh) -> int:
    n = 0
    for p in runner.args.correlations:
        for model in MODELS:
            if (p, model, seed) in done:
                continue
            row = runner.run(p, model, seed)
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done.add((p, model, seed))
            n += 1
            print(f"seed {seed} p={p} {model}: mse {row['mse']:.4f} ({row['epochs']} epochs, "
                  f"{row['seconds']:.1f} s)", flush=True)
    return n


# ------------------------------------------------------------------------------------------ statistics
def table_of(runs: list[dict[str, Any]], ps: list[float]) -> tuple[dict, list[int]]:
    """{(p, model): {seed: mse}} and the seeds complete in every cell (only those are compared)."""
    cells: dict[tuple[float, str], dict[int, float]] = {}
    for r in runs:
        cells.setdefault((r["p"], r["model"]), {})[r["seed"]] = r["mse"]
    seeds = sorted(set.intersection(*[set(cells.get((p, m), {})) for p in ps for m in MODELS]))
    return cells, seeds


def pilot_power(cells: dict, seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    from ctrkit.compare.stats import seeds_for_power
    per_p = {}
    for p in args.correlations:
        d = np.array([cells[(p, "MMoE")][s] - cells[(p, "Shared-Bottom")][s] for s in seeds])
        sd = float(d.std(ddof=1))
        per_p[str(p)] = {"sd_diff": sd, "mean_diff": float(d.mean()),
                         "seeds_needed": seeds_for_power(sd, args.gap, args.alpha, args.power)}
    needed = max(v["seeds_needed"] for v in per_p.values())
    return {"pilot_seeds": len(seeds), "gap": args.gap, "alpha": args.alpha, "power": args.power, "per_p": per_p,
            "seeds_needed": needed, "target_seeds": min(max(args.min_seeds, needed), args.max_seeds)}


def detectable_gap(n: int, sd: float, alpha: float, power: float) -> float:
    """The smallest mean difference a paired t-test on n seeds detects with the given power (bisection)."""
    from ctrkit.compare.stats import paired_t_power
    lo, hi = 0.0, 10 * sd
    for _ in range(60):
        mid = (lo + hi) / 2
        if paired_t_power(n, sd, mid, alpha) < power:
            lo = mid
        else:
            hi = mid
    return hi


def analyse(cells: dict, seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    from ctrkit.compare.stats import bootstrap_interval, t_interval, welch_interval
    ps = args.correlations
    arr = {(p, m): np.array([cells[(p, m)][s] for s in seeds]) for p in ps for m in MODELS}
    out: dict[str, Any] = {"seeds": len(seeds), "seed_ids": seeds, "per_p": {}, "trend": {}}
    for p in ps:
        sb, om, mm = arr[(p, "Shared-Bottom")], arr[(p, "OMoE")], arr[(p, "MMoE")]
        d = mm - sb
        sd = float(d.std(ddof=1))
        out["per_p"][str(p)] = {
            "mse": {m: t_interval(arr[(p, m)]).as_dict() | {"sd": float(arr[(p, m)].std(ddof=1))} for m in MODELS},
            "mmoe_minus_sb_t": t_interval(d).as_dict(),
            "mmoe_minus_sb_bootstrap": bootstrap_interval(d, n_resamples=args.bootstrap, seed=1).as_dict(),
            "omoe_minus_sb_t": t_interval(om - sb).as_dict(),
            "mmoe_minus_omoe_t": t_interval(mm - om).as_dict(),
            "sd_diff": sd,
            "mmoe_wins": int((d < 0).sum()),
            "detectable_gap_80": detectable_gap(len(seeds), sd, args.alpha, args.power),
        }
    gain = {p: arr[(p, "Shared-Bottom")] - arr[(p, "MMoE")] for p in ps}   # > 0: MMoE better
    ref = max(ps)
    for p in ps:
        if p == ref:
            continue
        diff = gain[p] - gain[ref]
        out["trend"][f"{p}-{ref}"] = {
            "paired_t": t_interval(diff).as_dict(),
            "paired_bootstrap": bootstrap_interval(diff, n_resamples=args.bootstrap, seed=2).as_dict(),
            "welch": welch_interval(gain[p], gain[ref]).as_dict(),
        }
    out["gain"] = {str(p): t_interval(gain[p]).as_dict() for p in ps}
    out["gain_bootstrap"] = {str(p): bootstrap_interval(gain[p], n_resamples=args.bootstrap, seed=3).as_dict()
                             for p in ps}
    out["omoe_gain"] = {str(p): t_interval(arr[(p, "Shared-Bottom")] - arr[(p, "OMoE")]).as_dict() for p in ps}
    # Relative view: a few data seeds are hard for every model (MSE 5-10x the median), and an absolute gap there
    # outweighs all the others; log(MSE ratio) weighs each seed alike. Reported as ratios exp(mean log).
    logr = {p: np.log(arr[(p, "MMoE")] / arr[(p, "Shared-Bottom")]) for p in ps}

    def _exp(iv: Any) -> dict[str, float]:
        return {"mean": math.exp(iv.mean), "lo": math.exp(iv.lo), "hi": math.exp(iv.hi), "n": iv.n}
    out["ratio"] = {str(p): _exp(t_interval(logr[p])) for p in ps}
    out["ratio_trend"] = {f"{p}-{ref}": _exp(t_interval(logr[p] - logr[ref])) for p in ps if p != ref}
    out["ratio_trend_bootstrap"] = {f"{p}-{ref}": _exp(bootstrap_interval(logr[p] - logr[ref],
                                                                          n_resamples=args.bootstrap, seed=4))
                                    for p in ps if p != ref}
    return out


# ------------------------------------------------------------------------------------------ report
def _ci(d: dict, digits: int = 4, sign: bool = False) -> str:
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{f.format(d['mean'])} [{f.format(d['lo'])}, {f.format(d['hi'])}]"


def markdown(res: dict[str, Any], power: dict[str, Any], meta: dict[str, Any]) -> str:
    a = res["analysis"]
    lines = [f"Seeds compared: **{a['seeds']}** (every correlation and model; seed s uses data seed 1000 + s and "
             f"initialisation seed s). Pilot: {power['pilot_seeds']} seeds; standard deviation of the paired "
             "difference MMoE - Shared-Bottom per p: "
             + ", ".join(f"p={p}: {v['sd_diff']:.4f} (needs {v['seeds_needed']} seeds)"
                         for p, v in power["per_p"].items())
             + f"; so {power['seeds_needed']} seeds to detect a {power['gap']} gap at alpha {power['alpha']} with "
             f"power {power['power']} (paired t-test); target {power['target_seeds']}. {meta['stop_reason']}", "",
             "Test MSE (mean of both tasks), mean [95% t-interval] over seeds:", "",
             "| p | " + " | ".join(MODELS) + " | MMoE − SB (t) | MMoE − SB (bootstrap) | MMoE wins | "
             "detectable gap (80%) |", "|---|" + "---|" * (len(MODELS) + 4)]
    for p, v in a["per_p"].items():
        lines.append(f"| {p} | " + " | ".join(_ci(v["mse"][m]) for m in MODELS)
                     + f" | {_ci(v['mmoe_minus_sb_t'], sign=True)} | {_ci(v['mmoe_minus_sb_bootstrap'], sign=True)}"
                     + f" | {v['mmoe_wins']}/{a['seeds']} | {v['detectable_gap_80']:.4f} |")
    lines += ["", "Other paired differences, mean [95% t-interval]:", "",
              "| p | OMoE − SB | MMoE − OMoE | gain SB − MMoE |", "|---|---|---|---|"]
    for p, v in a["per_p"].items():
        lines.append(f"| {p} | {_ci(v['omoe_minus_sb_t'], sign=True)} | {_ci(v['mmoe_minus_omoe_t'], sign=True)} | "
                     f"{_ci(a['gain'][p], sign=True)} |")
    lines += ["", "Trend: gain(p) − gain(1.0), where gain = MSE(Shared-Bottom) − MSE(MMoE) (> 0: the gain is "
              "larger at the lower correlation, the paper's finding), 95% intervals:", "",
              "| contrast | paired by seed (t) | paired (bootstrap) | independent (Welch) |", "|---|---|---|---|"]
    for k, v in a["trend"].items():
        lines.append(f"| gain({k.split('-')[0]}) − gain({k.split('-')[1]}) | {_ci(v['paired_t'], sign=True)} | "
                     f"{_ci(v['paired_bootstrap'], sign=True)} | {_ci(v['welch'], sign=True)} |")
    lines += ["", "Relative view (each seed weighs alike): MSE(MMoE) / MSE(Shared-Bottom) as exp(mean log ratio) "
              "[95% t-interval], and its change from p = 1.0 (ratio at p / ratio at 1.0; < 1: MMoE's relative "
              "gain is larger at the lower correlation):", "",
              "| p | MMoE / SB | ratio(p) / ratio(1.0) (t) | (bootstrap) |", "|---|---|---|---|"]
    for p, v in a["ratio"].items():
        k = f"{p}-{max(a['ratio'], key=float)}"
        tr, tb = a["ratio_trend"].get(k), a["ratio_trend_bootstrap"].get(k)
        lines.append(f"| {p} | {_ci(v, 3)} | {_ci(tr, 3) if tr else '-'} | {_ci(tb, 3) if tb else '-'} |")
    lines += ["", f"{meta['runs']} runs, {meta['train_seconds'] / 60:.0f} min of training in all; median "
              f"{meta['median_run_s']:.1f} s and {meta['median_epochs']:.0f} epochs per run; params "
              + ", ".join(f"{m} {n:,}" for m, n in meta["params"].items()) + "."]
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = res["analysis"]
    ps = sorted(float(p) for p in a["gain"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    for key, label, off, color in (("gain", "MMoE", -0.006, "tab:blue"), ("omoe_gain", "OMoE", 0.006, "tab:orange")):
        g = [a[key][str(p)] for p in ps]
        m = np.array([x["mean"] for x in g])
        err = np.array([[x["mean"] - x["lo"] for x in g], [x["hi"] - x["mean"] for x in g]])
        axes[0].errorbar(np.array(ps) + off, m, yerr=err, marker="o", capsize=4, color=color,
                         label=f"MSE(Shared-Bottom) − MSE({label})")
    axes[0].axhline(0, color="grey", linewidth=0.8)
    axes[0].set_xlabel("task correlation p (cosine of the task weight vectors)")
    axes[0].set_ylabel("test MSE gain over Shared-Bottom")
    axes[0].set_title(f"Gain vs correlation (mean, 95% t-CI, {a['seeds']} seeds)")
    axes[0].legend(fontsize=8)
    for i, m in enumerate(MODELS):
        c = [a["per_p"][str(p)]["mse"][m] for p in ps]
        mean = np.array([x["mean"] for x in c])
        err = np.array([[x["mean"] - x["lo"] for x in c], [x["hi"] - x["mean"] for x in c]])
        axes[1].errorbar(np.array(ps) + (i - 1) * 0.006, mean, yerr=err, marker="o", capsize=4, label=m)
    axes[1].set_xlabel("task correlation p (cosine of the task weight vectors)")
    axes[1].set_ylabel("test MSE (mean of both tasks)")
    axes[1].set_title("Test MSE per model (mean, 95% t-CI)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path, args: argparse.Namespace, power: dict[str, Any] | None, stop_reason: str) -> None:
    import torch
    runs = load_runs(out / "runs.jsonl")
    cells, seeds = table_of(runs, args.correlations)
    if len(seeds) < 2:
        print("fewer than 2 complete seeds: no report")
        return
    if power is None:
        power_path = out / "power.json"
        power = json.loads(power_path.read_text()) if power_path.exists() else \
            pilot_power(cells, seeds[:args.pilot_seeds], args)
    params = {}
    for r in runs:
        params.setdefault(r["model"], r["params"])
    meta = {"runs": len(runs), "train_seconds": float(sum(r["seconds"] for r in runs)),
            "median_run_s": float(np.median([r["seconds"] for r in runs])),
            "median_epochs": float(np.median([r["epochs"] for r in runs])), "params": params,
            "stop_reason": stop_reason, "settings": {k: getattr(args, k) for k in SETTINGS},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
            "threads": args.threads, "python": platform.python_version(), "command": " ".join(sys.argv)}
    res = {"meta": meta, "power": power, "analysis": analyse(cells, seeds, args)}
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res, power, meta)
    (out / "results.md").write_text(md)
    try:
        plot(res, out / "gain_vs_correlation.png")
    except ImportError:
        print("matplotlib missing: no plot")
    print(md)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, args)
    if args.report_only:
        prev = out / "results.json"
        reason = json.loads(prev.read_text())["meta"]["stop_reason"] if prev.exists() else "Report from the runs."
        report(out, args, None, reason)
        return
    runs_path = out / "runs.jsonl"
    done = {(r["p"], r["model"], r["seed"]) for r in load_runs(runs_path)}
    runner = Runner(args)
    t0 = time.perf_counter()
    budget = args.budget_minutes * 60
    seed_times: list[float] = []
    with open(runs_path, "a") as fh:
        for seed in range(args.pilot_seeds):
            ts = time.perf_counter()
            if run_seed(runner, seed, done, fh):
                seed_times.append(time.perf_counter() - ts)
        cells, seeds = table_of(load_runs(runs_path), args.correlations)
        power = pilot_power(cells, seeds[:args.pilot_seeds], args)
        (out / "power.json").write_text(json.dumps(power, indent=1) + "\n")
        print(json.dumps(power, indent=1), flush=True)
        target = power["target_seeds"]
        stop_reason = f"Ran the target {target} seeds."
        if power["seeds_needed"] > args.max_seeds:
            stop_reason = f"The target is capped at --max-seeds {args.max_seeds}."
        for seed in range(args.pilot_seeds, target):
            est = float(np.median(seed_times)) if seed_times else 0.0
            if time.perf_counter() - t0 + est > budget:
                stop_reason = (f"Stopped at {seed} seeds of the target {target}: the time budget "
                               f"({args.budget_minutes:.0f} min, about {est:.0f} s per seed) was spent.")
                break
            ts = time.perf_counter()
            if run_seed(runner, seed, done, fh):
                seed_times.append(time.perf_counter() - ts)
            if seed % 5 == 4:   # a report on the way, so a cut run still has one
                report(out, args, power, f"Partial: {seed + 1} seeds so far.")
    print(stop_reason, flush=True)
    report(out, args, power, stop_reason)


if __name__ == "__main__":
    main()
