"""Plots of a trained model: learning curves, gate weights, calibration and ROC curves.

Needs matplotlib (``pip install "ctrkit[viz]"``), imported only when a function here is called. Figures are
drawn on matplotlib's Agg canvas with the object-oriented API (``matplotlib.figure.Figure``), so plotting
never switches the global pyplot backend, never opens a window and leaves no figure open in ``pyplot``.

Every function returns the :class:`matplotlib.figure.Figure` and, when ``path`` is given, also saves it there
as a PNG.

* :func:`plot_learning_curves`: a History (or a dict of lists), one panel per task and metric, train vs
  validation.
* :func:`plot_gate_weights`: OMoE / MMoE / PLE mean gate weight per task and expert over a data set
  (:func:`gate_table`: the same numbers as a DataFrame, one column per expert).
* :func:`plot_calibration`: predicted vs observed positive rate in bins, per binary task, with bin counts.
* :func:`plot_roc`: ROC curve per binary task, AUC in the legend.
* :func:`save_training_plots`: the PNGs that apply to a model, written into a folder (``ctrkit train``).

Example:
    >>> import numpy as np
    >>> from ctrkit.viz import plot_learning_curves
    >>> fig = plot_learning_curves({"loss": [0.7, 0.5], "val_loss": [0.72, 0.6],
    ...                             "ctr_auc": [0.6, 0.7], "val_ctr_auc": [0.58, 0.66]})
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'ctr auc']
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_learning_curves", "plot_gate_weights", "gate_table", "plot_calibration", "plot_roc",
           "save_training_plots"]

_DPI = 110
_SKIP_KEYS = ("lr", "epoch_seconds")


def _figure(nrows: int, ncols: int, panel: tuple[float, float] = (4.2, 3.3), **kw: Any):
    """A Figure on an Agg canvas and its axes as a 2-D array (no pyplot state, no backend switch)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("ctrkit.viz needs matplotlib, which is not installed. Install it with "
                          "`pip install matplotlib` or `pip install \"ctrkit[viz]\"`.") from e
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _finish(fig, path: str | os.PathLike | None):
    fig.tight_layout()
    if path is not None:
        path = os.fspath(path)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fig.savefig(path, dpi=_DPI, format="png")
    return fig


# ------------------------------------------------------------------------------------------ learning curves
def _history_dict(history: Any) -> dict[str, list[float]]:
    h = getattr(history, "history", history)
    if hasattr(h, "to_dict") and hasattr(h, "columns"):  # a DataFrame, e.g. History.to_frame() or a CSV log
        h = {c: h[c].tolist() for c in h.columns}
    if not isinstance(h, Mapping):
        raise TypeError("plot_learning_curves: history must be a History (what fit returns) or a dict "
                        f"{{log key: list of values per epoch}}, got {type(history).__name__}.")
    return {str(k): [float(v) for v in np.ravel(np.asarray(vals, dtype=float))] for k, vals in h.items()}


def _split_key(key: str, metric_names: Sequence[str]) -> tuple[str, str]:
    """``"income_auc"`` -> ``("income", "auc")``; ``"loss"`` -> ``("", "loss")``; longest metric name wins."""
    for m in metric_names:
        if key == m:
            return "", m
        if key.endswith("_" + m):
            return key[: -len(m) - 1], m
    task, _, metric = key.rpartition("_")
    return task, metric


def plot_learning_curves(history: Any, path: str | os.PathLike | None = None):
    """Training and validation curves per epoch: one panel per task and metric.

    Args:
        history: the :class:`~ctrkit.callbacks.History` that ``fit`` returns, its ``history`` dict
            (``{"loss": [...], "val_ctr_auc": [...], ...}``), or a DataFrame with one column per log key
            (``History.to_frame()``, a :class:`~ctrkit.callbacks.CSVLogger` file read with pandas).
        path: where to save the PNG (optional).

    Returns:
        The figure: one row per task (the total ``loss`` first when present), one column per metric; each
        panel shows ``<key>`` (train) and ``val_<key>`` (validation); ``lr`` and ``epoch_seconds`` are left
        out.

    Raises:
        ValueError: the history holds no epochs.
    """
    from .metrics import METRICS
    logs = _history_dict(history)
    metric_names = sorted({*METRICS, "loss"}, key=len, reverse=True)
    base_keys: list[str] = []
    for k in logs:
        b = k[4:] if k.startswith("val_") else k
        if b not in _SKIP_KEYS and b not in base_keys and logs[k]:
            base_keys.append(b)
    if not base_keys:
        raise ValueError(f"plot_learning_curves: the history holds no epochs (keys: {sorted(logs)}). Train "
                         "with fit(..., epochs>=1) first and pass the History it returns.")
    rows: dict[str, list[tuple[str, str]]] = {}
    for b in base_keys:
        task, metric = _split_key(b, metric_names)
        rows.setdefault(task, []).append((metric, b))
    order = sorted(rows, key=lambda t: (t != "", list(rows).index(t)))  # the overall loss first
    ncols = max(len(v) for v in rows.values())
    fig, axes = _figure(len(order), ncols)
    from matplotlib.ticker import MaxNLocator
    for r, task in enumerate(order):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(rows[task]):
                ax.set_visible(False)
                continue
            metric, b = rows[task][c]
            for key, label, style in ((b, "train", "-o"), ("val_" + b, "validation", "--s")):
                vals = logs.get(key)
                if vals:
                    ax.plot(range(1, len(vals) + 1), vals, style, label=label, markersize=4)
            ax.set_title(f"{task} {metric}" if task else metric)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return _finish(fig, path)


# ------------------------------------------------------------------------------------------ gate weights
def gate_table(model: Any, gate_weights: Mapping[str, Any]):
    """Mean gate weight per task and expert as a DataFrame whose columns are experts, the same expert in every row.

    Args:
        model: the model the weights come from (OMoE, MMoE, PLE); PLE's configuration says which experts a
            task's gate reads.
        gate_weights: ``{task: (n, experts) array}``, what ``model.gate_weights(x)`` returns (any subset of its
            tasks).

    Returns:
        One row per task. OMoE / MMoE: columns ``e0, e1, ...``. PLE: the columns are every expert of its last
        level, each task's own experts (``<task> own0``, ...) then the shared ones (``shared0``, ...); a task's
        gate reads only its own and the shared experts, so the other tasks' own experts are NaN in its row.

    Example:
        >>> import numpy as np
        >>> from ctrkit import PLE, DenseFeat
        >>> m = PLE([DenseFeat("x")], shared_expert_num=1, specific_expert_num=1, expert_dnn_hidden_units=(4,),
        ...         gate_dnn_hidden_units=(), task_names=["ctr", "cvr"])
        >>> list(gate_table(m, m.gate_weights({"x": np.zeros(3, "float32")})).columns)
        ['ctr own0', 'cvr own0', 'shared0']
    """
    import pandas as pd
    tasks = list(gate_weights)
    means = {t: np.asarray(gate_weights[t], dtype=float).mean(axis=0) for t in tasks}
    n_experts = len(next(iter(means.values()))) if means else 0
    cfg = getattr(model, "_config", {}) or {}
    own, shared = cfg.get("specific_expert_num"), cfg.get("shared_expert_num")
    all_tasks = list(getattr(model, "task_names", tasks))
    if isinstance(own, int) and isinstance(shared, int) and own + shared == n_experts:  # PLE: own first, then shared
        columns = [f"{t} own{i}" for t in all_tasks for i in range(own)] + [f"shared{k}" for k in range(shared)]
        table = pd.DataFrame(np.nan, index=tasks, columns=columns)
        for t in tasks:
            table.loc[t, [f"{t} own{i}" for i in range(own)] + columns[len(all_tasks) * own:]] = means[t]
        return table
    return pd.DataFrame([means[t] for t in tasks], index=tasks, columns=[f"e{i}" for i in range(n_experts)])


def _draw_gate_heatmap(g: np.ndarray, task_names: Sequence[str], expert_labels: Sequence[str], title: str,
                       path: str | os.PathLike | None = None):
    """Heatmap of a ``(tasks, experts)`` matrix of mean gate weights, each cell annotated with its value; a NaN
    cell (an expert the task's gate does not read, PLE) is grey and marked "-"."""
    import matplotlib as mpl
    g = np.asarray(g, dtype=float)
    long_labels = max((len(str(x)) for x in expert_labels), default=0) > 4
    fig, axes = _figure(1, 1, panel=(1.6 + (0.75 if long_labels else 0.6) * g.shape[1],
                                     1.4 + 0.55 * g.shape[0] + (0.5 if long_labels else 0.0)))
    ax = axes[0, 0]
    cmap = mpl.colormaps["viridis"].with_extremes(bad="lightgrey")
    im = ax.imshow(np.ma.masked_invalid(g), cmap=cmap, aspect="auto", vmin=0)
    ax.set_yticks(range(g.shape[0]), list(task_names))
    ax.set_xticks(range(g.shape[1]), list(expert_labels), rotation=45 if g.shape[1] > 8 or long_labels else 0,
                  ha="right" if long_labels else "center")
    top = float(np.nanmax(g)) if np.isfinite(g).any() else 0.0
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            if np.isnan(g[i, j]):
                ax.text(j, i, "-", ha="center", va="center", fontsize=7, color="dimgrey")
                continue
            ax.text(j, i, f"{g[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="k" if g[i, j] > 0.6 * top else "w")
    ax.set_xlabel("expert")
    ax.set_ylabel("task (gate)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _finish(fig, path)


def plot_gate_weights(model: Any, x: Any, path: str | os.PathLike | None = None, batch_size: int = 4096):
    """Mean gate weight per task and expert over a data set (the MMoE paper's Figure 6 view).

    Args:
        model: a model with ``gate_weights(x)``: :class:`~ctrkit.OMoE`, :class:`~ctrkit.MMoE`,
            :class:`~ctrkit.PLE`. For PLE the last extraction level's gates are shown with one column per
            expert (every task's own experts ``<task> own*``, then the shared ones; a task's row is blank
            under the other tasks' own experts, which its gate does not read, see :func:`gate_table`); for OMoE
            every task row is the one shared gate.
        x: the rows to average over, in any form the model's ``predict`` accepts (a raw DataFrame for a
            model built from a :class:`~ctrkit.FeatureEncoder`).
        path: where to save the PNG (optional).
        batch_size: rows per forward pass.

    Returns:
        The figure: a tasks x experts heatmap with each cell's mean weight written in it.

    Raises:
        TypeError: the model has no gates.
    """
    if not callable(getattr(model, "gate_weights", None)):
        raise TypeError(f"plot_gate_weights: {type(model).__name__} has no gates; pass a mixture-of-experts "
                        "model (OMoE, MMoE or PLE), one with a gate_weights(x) method.")
    gw = model.gate_weights(x, batch_size=batch_size)
    table = gate_table(model, gw)
    n = len(next(iter(gw.values())))
    level = " (last level)" if getattr(model, "levels", None) is not None and len(model.levels) > 1 else ""
    return _draw_gate_heatmap(table.to_numpy(), list(table.index), list(table.columns),
                              f"{type(model).__name__}{level}: mean gate weight over {n:,} rows", path)


# ------------------------------------------------------------------------------------------ calibration / ROC
def _binary_predictions(model: Any, x: Any, y: Any, where: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(task, labels, probabilities)]`` for the model's binary tasks, rows with a NaN label left out."""
    binary = [i for i, t in enumerate(model.task_types) if t == "binary"]
    if not binary:
        raise ValueError(f"{where}: {type(model).__name__} has no binary task "
                         f"(task_types={model.task_types}); calibration and ROC curves are defined for "
                         "binary tasks only.")
    p = np.asarray(model.predict(x), dtype=float).reshape(-1, len(model.task_names))
    from .models.inputs import to_targets_checked
    yy = to_targets_checked(model, y, len(p), where).numpy().astype(float)
    out = []
    for i in binary:
        keep = ~np.isnan(yy[:, i])
        out.append((model.task_names[i], yy[keep, i], p[keep, i]))
    return out


def plot_calibration(model: Any, x: Any, y: Any, path: str | os.PathLike | None = None, n_bins: int = 10):
    """Reliability diagram per binary task: mean predicted probability vs observed positive rate.

    Predictions are grouped into ``n_bins`` equal-width bins on [0, 1]; each non-empty bin is a point (the
    diagonal is perfect calibration). A second row shows how many rows fall in each bin (log scale), and the
    title gives the expected calibration error (ECE: the bin gaps weighted by bin size).

    Args:
        model: a trained ctrkit model with at least one binary task.
        x, y: data and labels in any form ``evaluate`` accepts (``y``: ``{task: array}``, a DataFrame of task
            columns or an ``(n, T)`` array); rows with a NaN label are left out of that task.
        path: where to save the PNG (optional).
        n_bins: number of equal-width bins (>= 2).

    Returns:
        The figure: one column per binary task.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"plot_calibration: n_bins must be an int >= 2, got {n_bins!r}.")
    tasks = _binary_predictions(model, x, y, "plot_calibration")
    fig, axes = _figure(2, len(tasks), panel=(4.2, 2.6), gridspec_kw={"height_ratios": (2.2, 1.0)})
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for c, (task, yt, pt) in enumerate(tasks):
        idx = np.clip(np.digitize(pt, edges[1:-1]), 0, n_bins - 1)
        counts = np.bincount(idx, minlength=n_bins)
        nz = counts > 0
        mean_p = np.bincount(idx, weights=pt, minlength=n_bins)[nz] / counts[nz]
        rate = np.bincount(idx, weights=yt, minlength=n_bins)[nz] / counts[nz]
        ece = float(np.sum(counts[nz] * np.abs(mean_p - rate)) / max(len(pt), 1))
        ax = axes[0, c]
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
        ax.plot(mean_p, rate, "-o", markersize=4, label=task)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("observed positive rate")
        ax.set_title(f"{task}: calibration (ECE {ece:.4f}, n={len(pt):,})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        ax = axes[1, c]
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", alpha=0.7,
               edgecolor="white")
        if counts.max() > 0:
            ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("rows")
    return _finish(fig, path)


def _roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (ties share one point)."""
    order = np.argsort(-p, kind="mergesort")
    y, p = y[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    P, N = tp[-1], fp[-1]
    return np.r_[0.0, fp / max(N, 1)], np.r_[0.0, tp / max(P, 1)]


def plot_roc(model: Any, x: Any, y: Any, path: str | os.PathLike | None = None):
    """ROC curve per binary task on one set of axes, each task's AUC in the legend.

    Args:
        model: a trained ctrkit model with at least one binary task.
        x, y: data and labels in any form ``evaluate`` accepts; rows with a NaN label are left out of that
            task.
        path: where to save the PNG (optional).

    Returns:
        The figure. A task whose labels hold one class only has no ROC curve; it is listed with AUC ``nan``.
    """
    from .metrics import roc_auc
    tasks = _binary_predictions(model, x, y, "plot_roc")
    fig, axes = _figure(1, 1, panel=(4.8, 4.2))
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance (AUC 0.5)")
    for task, yt, pt in tasks:
        auc = roc_auc(yt, pt)
        if np.isnan(auc):
            ax.plot([], [], label=f"{task}: AUC nan (one class only)")
            continue
        fpr, tpr = _roc_curve(yt, pt)
        ax.plot(fpr, tpr, label=f"{task}: AUC {auc:.4f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{type(model).__name__}: ROC", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _finish(fig, path)


# ------------------------------------------------------------------------------------------ all of them
def save_training_plots(out_dir: str | os.PathLike, model: Any, history: Any = None, x: Any = None,
                        y: Any = None) -> list[str]:
    """Write the plots that apply to a trained model into ``out_dir`` and return their paths.

    * ``learning_curves.png``: when ``history`` holds at least one epoch;
    * ``gate_weights.png``: when the model has gates (OMoE, MMoE, PLE) and ``x`` is given;
    * ``calibration.png`` and ``roc.png``: when ``x`` and ``y`` are given and the model has a binary task.

    Args:
        out_dir: folder to write into (created if needed).
        model: the trained model.
        history: what ``fit`` returned (or its ``history`` dict), or None.
        x, y: evaluation data and labels (e.g. the validation or test split), or None.

    Returns:
        The paths written, in the order above.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    if history is not None and any(_history_dict(history).values()):
        written.append(os.path.join(out_dir, "learning_curves.png"))
        plot_learning_curves(history, written[-1])
    if x is not None and callable(getattr(model, "gate_weights", None)):
        written.append(os.path.join(out_dir, "gate_weights.png"))
        plot_gate_weights(model, x, written[-1])
    if x is not None and y is not None and "binary" in getattr(model, "task_types", ()):
        written.append(os.path.join(out_dir, "calibration.png"))
        plot_calibration(model, x, y, written[-1])
        written.append(os.path.join(out_dir, "roc.png"))
        plot_roc(model, x, y, written[-1])
    return written
