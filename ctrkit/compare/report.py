"""The report of a comparison: the markdown table (:func:`format_table`), the report folder
(:func:`write_report`: ``report.md``, ``results.csv``, ``summary.csv`` and PNG plots) and the synthetic sweep's
(:func:`format_sweep`, :func:`write_sweep_report`).

:mod:`ctrkit.compare.tabular` runs the comparison; this module only reads its results.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .tabular import ComparisonResult, SweepResult

__all__ = ["format_table", "write_report", "format_sweep", "write_sweep_report"]


def _pm(mean: float, std: float, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"  # a single seed has no spread
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(summary: pd.DataFrame, tasks: Sequence[str], types: Sequence[str]) -> str:
    """A markdown table: one row per model, mean ± std per task metric, parameters, seconds, epochs."""
    metrics = []
    for t, typ in zip(tasks, types):
        metrics += [(t, "auc"), (t, "logloss")] if typ == "binary" else [(t, "mse")]
    head = ["model"] + [f"{t} {m.upper() if m == 'auc' else m}" for t, m in metrics] + ["params", "train s",
                                                                                          "epochs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [r["model"]] + [_pm(r.get(f"{t}_{m}_mean"), r.get(f"{t}_{m}_std")) for t, m in metrics]
        epochs = "-" if pd.isna(r["epochs"]) else f"{r['epochs']:.1f}"
        cells += [f"{int(r['params']):,}", f"{r['seconds']:.1f}", epochs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ report
def write_report(result: ComparisonResult, out_dir: str, title: str = "ctrkit compare",
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
             + (" Baseline rows (LR (one-hot), GBDT (trees): scikit-learn, per task, the same split and features; "
                "deterministic, so run once; params: coefficients / tree leaves) come from "
                "`ctrkit.compare.baselines`." if cfg.baselines else ""), "",
             result.table(), "", f"Wall time: {result.wall_seconds:.0f} s.", ""]
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


def _plots(result: ComparisonResult, out_dir: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    s, data = result.summary, result.data
    metric = [("auc" if typ == "binary" else "mse") for typ in data.task_types]
    fig, axes = plt.subplots(1, len(data.task_names), figsize=(5 * len(data.task_names), 3.8), squeeze=False)
    from .baselines import is_baseline
    base = s[s["model"].map(is_baseline)]
    s = s[~s["model"].map(is_baseline)]
    for ax, t, m in zip(axes[0], data.task_names, metric):
        means, stds = s[f"{t}_{m}_mean"].to_numpy(), s[f"{t}_{m}_std"].fillna(0).to_numpy()
        ax.bar(range(len(s)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(s)), s["model"], rotation=20)
        refs = base[f"{t}_{m}_mean"].to_numpy() if f"{t}_{m}_mean" in base else np.array([])
        for (_, b), v, style in zip(base.iterrows(), refs, ("--", ":", "-.")):
            ax.axhline(v, color="tab:red", linestyle=style, linewidth=1.2, label=f"{b['model']} {v:.4f}")
        if len(refs):
            ax.legend(fontsize=8, loc="lower right")
        if np.isfinite(means).any():  # a tiny split can leave a task with one class (AUC undefined)
            lo = np.nanmin(np.concatenate([means - stds, refs]))
            hi = np.nanmax(np.concatenate([means + stds, refs]))
            pad = (hi - lo) * 0.3 + 1e-4
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"{t}: test {m.upper()} (mean ± std, {int(s['seeds'].iloc[0])} seeds)")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "metrics.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    if result.curves:
        fig, axes = plt.subplots(1, len(data.task_names), figsize=(5 * len(data.task_names), 3.8), squeeze=False)
        for ax, t, m in zip(axes[0], data.task_names, metric):
            for name, curve in result.curves.items():
                key = f"val_{t}_{m}"
                if key in curve:
                    ax.plot(range(1, len(curve[key]) + 1), curve[key], label=name, marker=".")
            ax.set_xlabel("epoch")
            ax.set_title(f"validation {t} {m.upper()} (seed 0)")
            ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(os.path.join(out_dir, "validation_curves.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    from ..viz import _draw_gate_heatmap
    for name, g in result.gates.items():
        paths.append(os.path.join(out_dir, f"gates_{name}.png"))
        _draw_gate_heatmap(g, data.task_names, [f"e{i}" for i in range(g.shape[1])],
                           f"{name}: mean gate weight per task and expert (test set)", paths[-1])
    return paths


def format_sweep(sweep: SweepResult) -> str:
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


def write_sweep_report(sweep: SweepResult, out_dir: str) -> list[str]:
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
