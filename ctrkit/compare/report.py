"""The report of a comparison: the markdown table (:func:`format_table`), the report folder
(:func:`write_report`: ``report.md``, ``results.csv``, ``summary.csv`` and PNG plots) and the synthetic sweep's
(:func:`format_sweep`, :func:`write_sweep_report`).

:mod:`ctrkit.compare.tabular` runs the comparison; this module only reads its results.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# The results below are ctrkit.compare.tabular's ComparisonResult / SweepResult, typed Any: tabular imports this
# module, so importing it back (even for type checking) would make an import cycle (tests/test_layering.py).

__all__ = ["format_table", "write_report", "plot_metrics", "plot_validation_curves", "format_sweep",
           "write_sweep_report"]


def _pm(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"  # a single seed has no spread
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(summary: pd.DataFrame, tasks: Sequence[str], types: Sequence[str], extra: Sequence[str] = ()) -> str:
    """A markdown table: one row per model, mean ± std per task metric (and the ``extra`` metrics of binary tasks,
    ``compare --metrics``), parameters, training seconds (wall: mean ± std over seeds; CPU: mean CPU seconds of
    the process, all its threads), epochs."""
    metrics = []
    for t, typ in zip(tasks, types):
        metrics += [(t, m) for m in ("auc", "logloss", *extra)] if typ == "binary" else [(t, "mse")]
    cpu = "cpu_seconds" in summary
    head = (["model"] + [f"{t} {m.upper() if m == 'auc' else m}" for t, m in metrics] + ["params", "train s"]
            + (["CPU s"] if cpu else []) + ["epochs"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [r["model"]] + [_pm(r.get(f"{t}_{m}_mean"), r.get(f"{t}_{m}_std")) for t, m in metrics]
        epochs = "-" if pd.isna(r["epochs"]) else f"{r['epochs']:.1f}"
        cells += [f"{int(r['params']):,}", _pm(r["seconds"], r.get("seconds_std"), 1)]
        if cpu:
            cells.append(_pm(r["cpu_seconds"], None, 1))
        cells.append(epochs)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def inputs_line(data: Any) -> str:
    """One sentence for the report: which inputs preset the comparison used and why (``compare.inputs``); empty
    for inputs set by hand (the settings sentence shows them)."""
    info = data.extra.get("inputs")
    if not info or info["chosen"] == "as set":
        return ""
    if not info["pilots"]:
        return f" Inputs: the {info['chosen']!r} preset (`ctrkit.compare.INPUT_PRESETS`), as asked."
    p0 = info["pilots"][0]
    scores = ", ".join(f"{p['inputs']} {p['val']:.4f} ({p['seconds']:.0f} s)" for p in info["pilots"])
    return (f" Inputs chosen on the validation split: {info['chosen']!r} ({p0['model']}, seed 0, best validation "
            f"{p0['task']} {p0['metric'].upper()}: {scores}; presets in `ctrkit.compare.INPUT_PRESETS`).")


# ------------------------------------------------------------------------------------------ report
def write_report(result: Any, out_dir: str, title: str = "ctrkit compare",
                 paper: dict | None = None) -> list[str]:
    """Write ``report.md``, ``results.csv``, ``summary.csv`` and PNG plots into ``out_dir``; return paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    runs_path = os.path.join(out_dir, "results.csv")
    result.runs.to_csv(runs_path, index=False)
    result.summary.to_csv(os.path.join(out_dir, "summary.csv"), index=False)
    written += [runs_path, os.path.join(out_dir, "summary.csv")]
    plots = []
    try:
        plots = _plots(result, out_dir)
    except ImportError:
        plots = []
    written += plots
    cfg = result.config
    lines = [f"# {title}", "", result.data.description, "",
             f"Settings: {cfg.num_experts} experts x ({cfg.expert_units},), towers ({cfg.tower_units},), embedding "
             f"dim {cfg.embedding_dim}, Adam lr {cfg.lr}, batch {cfg.batch_size}, early stopping on the first "
             f"task's validation metric (patience {cfg.patience}, best weights restored, at most {cfg.max_epochs} "
             f"epochs), {cfg.seeds} seed(s). Shared-Bottom's bottom width (and each single-task network's first "
             "layer) is sized to match MMoE's parameter count; Single-Task counts both networks."
             + (f" Numeric columns also embedded as fields: {cfg.numeric_embedding!r}, {cfg.n_bins} bins."
                if cfg.numeric_embedding else "")
             + (f" Every deep model's input goes through a gated cross network (GDCN, {cfg.cross_layers} layer"
                f"{'s' if cfg.cross_layers > 1 else ''}, "
                f"rank {cfg.cross_rank or 'full'}), counted in its parameters." if cfg.cross_layers else "")
             + (f" Weights validated and kept as their moving average (WeightAveraging, decay {cfg.weight_averaging})."
                if cfg.weight_averaging else "")
             + inputs_line(result.data)
             + (" Baseline rows (LR (one-hot), GBDT (trees): scikit-learn, per task, the same split and features; "
                "deterministic, so run once; params: coefficients / tree leaves) come from "
                "`ctrkit.compare.baselines`." if cfg.baselines else "")
             + " \"train s\": wall seconds of training per run, mean ± std over seeds; \"CPU s\": the CPU seconds "
             "of the process (all its threads) for the same training: a wall time far above it means the run waited "
             "for a core.", "",
             result.table(), "", f"Wall time: {result.wall_seconds:.0f} s.", ""]
    from .ctr_table import ctr_report_lines
    lines += ctr_report_lines(result, format_table)
    if paper:
        lines += ["Published (MMoE paper, mean of 400 runs on the original 199,523/99,762 split):", "",
                  "| model | " + " | ".join(f"{t} AUC" for t in result.data.task_names) + " |",
                  "|---|" + "---|" * len(result.data.task_names)]
        for name, vals in paper.items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
        lines.append("")
    for p in plots:
        lines += [f"![{os.path.basename(p)}]({os.path.basename(p)})", ""]
    if not plots:
        lines += ["(No plots: install matplotlib, `pip install ctrkit[viz]`.)", ""]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return [path] + written


def _metric_names(result: Any) -> list[str]:
    return [("auc" if typ == "binary" else "mse") for typ in result.data.task_types]


def plot_metrics(result: Any):
    """The test metric of every model, one panel per task: a point at the mean over seeds with a ± std error
    bar (no bars: the axis need not start at zero to stay honest), the baselines (LR, GBDT) as horizontal
    reference lines. Returns the matplotlib Figure."""
    from ..viz import _figure
    from .baselines import is_baseline
    s, data = result.summary, result.data
    base = s[s["model"].map(is_baseline)]
    s = s[~s["model"].map(is_baseline)]
    fig, axes = _figure(1, len(data.task_names), panel=(max(4.2, 0.75 * len(s) + 2.0), 3.8))
    for ax, t, m in zip(axes[0], data.task_names, _metric_names(result)):
        label = f"test {m.upper()}"
        means, stds = s[f"{t}_{m}_mean"].to_numpy(float), s[f"{t}_{m}_std"].fillna(0).to_numpy(float)
        ax.errorbar(range(len(s)), means, yerr=stds, fmt="o", color="tab:blue", ecolor="tab:blue", capsize=5,
                    markersize=6, label=f"{'mean ± std over seeds' if int(s['seeds'].max()) > 1 else 'one seed'}")
        ax.set_xticks(range(len(s)), list(s["model"]), rotation=20, ha="right")
        ax.set_xlim(-0.6, len(s) - 0.4)
        refs = base[f"{t}_{m}_mean"].to_numpy(float) if f"{t}_{m}_mean" in base else np.array([])
        for (_, b), v, style in zip(base.iterrows(), refs, ("--", ":", "-.")):
            if np.isfinite(v):
                ax.axhline(v, color="tab:red", linestyle=style, linewidth=1.2, label=f"{b['model']}: {v:.4f}")
        ax.set_ylabel(label + (" (higher is better)" if m == "auc" else " (lower is better)"))
        ax.set_xlabel("model")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        seeds = int(s["seeds"].max()) if len(s) else 0
        ax.set_title(f"{t}: {label}, {seeds} seed(s)", fontsize=10)
    return fig


def _curve_stats(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean, std and number of seeds at each epoch, over the seeds whose run reached that epoch."""
    seqs = [np.asarray(r[key], dtype=float) for r in runs if key in r and len(r[key])]
    if not seqs:
        return (np.array([]),) * 4
    n = max(len(q) for q in seqs)
    grid = np.full((len(seqs), n), np.nan)
    for i, q in enumerate(seqs):
        grid[i, :len(q)] = q
    count = np.isfinite(grid).sum(axis=0)
    mean = np.divide(np.nansum(grid, axis=0), count, out=np.full(n, np.nan), where=count > 0)  # NaN: no value
    dev = np.nansum((grid - mean) ** 2, axis=0)
    std = np.sqrt(dev / np.maximum(count - 1, 1)) * (count > 1)   # sample std; 0 where one seed is left
    return np.arange(1, n + 1), mean, std, count


def plot_validation_curves(result: Any):
    """Validation metric per epoch of every model over all seeds: the mean over the seeds still training at
    that epoch (early stopping ends seeds at different epochs) and a ± std band; integer epochs. Returns the
    matplotlib Figure."""
    from matplotlib.ticker import MaxNLocator

    from ..viz import _figure
    data = result.data
    fig, axes = _figure(1, len(data.task_names), panel=(5.0, 3.8))
    seeds = max((len(v) for v in result.curves.values()), default=0)
    for ax, t, m in zip(axes[0], data.task_names, _metric_names(result)):
        for i, (name, runs) in enumerate(result.curves.items()):
            runs = runs if isinstance(runs, list) else [runs]
            epochs, mean, std, _ = _curve_stats(runs, f"val_{t}_{m}")
            if not len(epochs):
                continue
            color = f"C{i % 10}"
            ax.plot(epochs, mean, marker=".", color=color, label=name)
            if len(runs) > 1:
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"validation {m.upper()}")
        ax.grid(alpha=0.3)
        ax.set_title(f"{t}: validation {m.upper()}, mean ± std over {seeds} seed(s)" if seeds > 1
                     else f"{t}: validation {m.upper()} (one seed)", fontsize=10)
        ax.legend(fontsize=8)
    return fig


def _plots(result: Any, out_dir: str) -> list[str]:
    from ..viz import _draw_gate_heatmap, _finish
    paths = [os.path.join(out_dir, "metrics.png")]
    _finish(plot_metrics(result), paths[-1])
    if result.curves:
        paths.append(os.path.join(out_dir, "validation_curves.png"))
        _finish(plot_validation_curves(result), paths[-1])
    for name, g in result.gates.items():
        paths.append(os.path.join(out_dir, f"gates_{name}.png"))
        if isinstance(g, pd.DataFrame):
            tasks, labels = list(g.index), list(g.columns)
        else:   # a plain (tasks x experts) array
            tasks, labels = list(result.data.task_names), [f"e{i}" for i in range(np.shape(g)[1])]
        _draw_gate_heatmap(np.asarray(g, dtype=float), tasks, labels,
                           f"{name}: mean gate weight per task and expert (test set, seed 0)", paths[-1])
    return paths


def format_sweep(sweep: Any) -> str:
    models = list(dict.fromkeys(sweep.table["model"]))
    lines = ["| p (weight cosine) | label Pearson | " + " | ".join(f"{m} MSE" for m in models)
             + " | MMoE − Shared-Bottom |", "|---|---|" + "---|" * (len(models) + 1)]
    for p, g in sweep.table.groupby("p", sort=False):
        g = g.set_index("model")
        cells = [_pm(g.loc[m, "mse_mean"], g.loc[m, "mse_std"], 3) if m in g.index else "-" for m in models]
        gap = (g.loc["MMoE", "mse_mean"] - g.loc["Shared-Bottom", "mse_mean"]
               if {"MMoE", "Shared-Bottom"} <= set(g.index) else float("nan"))
        lines.append(f"| {p} | {g['label_corr'].iloc[0]:.3f} | " + " | ".join(cells) + f" | {gap:+.3f} |")
    return "\n".join(lines)


def write_sweep_report(sweep: Any, out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    sweep.runs.to_csv(os.path.join(out_dir, "synthetic_runs.csv"), index=False)
    sweep.table.to_csv(os.path.join(out_dir, "synthetic_summary.csv"), index=False)
    paths = [os.path.join(out_dir, "synthetic_runs.csv"), os.path.join(out_dir, "synthetic_summary.csv")]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for m, g in sweep.table.groupby("model", sort=False):
            ax.errorbar(g["p"], g["mse_mean"], yerr=g["mse_std"].fillna(0), marker="o", capsize=4, label=m)
        ax.set_xlabel("task correlation p (cosine of w1, w2)")
        ax.set_ylabel("test MSE (mean of both tasks)")
        ax.set_title(f"MMoE synthetic experiment ({int(sweep.table['seeds'].iloc[0])} seeds)")
        ax.legend()
        fig.tight_layout()
        paths.append(os.path.join(out_dir, "synthetic_mse_vs_correlation.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    except ImportError:
        pass
    cfg = sweep.config
    lines = ["# MMoE synthetic experiment (paper §3.2 / Figure 4)", "",
             f"Two regression tasks per p; {cfg.num_experts} experts x ({cfg.expert_units},), towers "
             f"({cfg.tower_units},), Shared-Bottom width matched; Adam lr {cfg.lr}, batch {cfg.batch_size}, early "
             f"stopping on task1 validation MSE (patience {cfg.patience}); fresh data and initialisation per seed.",
             "", format_sweep(sweep), "", f"Wall time: {sweep.wall_seconds:.0f} s.", ""]
    lines += [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in paths if p.endswith(".png")]
    with open(os.path.join(out_dir, "synthetic_report.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return [os.path.join(out_dir, "synthetic_report.md")] + paths
