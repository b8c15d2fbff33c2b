"""Side-by-side comparison of multi-task architectures (the MMoE paper's experiments, on any data).

``ctrkit compare`` (see :mod:`ctrkit.cli`) is a thin wrapper around :func:`run_comparison`. Every comparison is
fair by construction: the same encoded data and split, feature columns, embedding size, optimizer, batch
size and early stopping for every model; Shared-Bottom's width (and the single-task networks') is sized so
its parameter count matches MMoE's within a few percent; several seeds, reported as mean ± std.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError
from .report import format_sweep, format_table, write_report, write_sweep_report  # noqa: F401 - moved; re-exported

__all__ = ["CompareConfig", "ComparisonResult", "run_comparison", "prepare_frame_data", "prepare_census",
           "prepare_synthetic", "match_width", "PAPER_CENSUS", "MODEL_SETTINGS", "ON_REQUEST"]

# MMoE paper (KDD 2018) Table 1/2 "mean over 400 runs" AUCs (original 199,523 / 99,762 split).
PAPER_CENSUS = {
    1: {"Single-Task": (0.9337, 0.9922), "Shared-Bottom": (0.9295, 0.9921), "OMoE": (0.9319, 0.9923),
        "MMoE": (0.9359, 0.9927)},
    2: {"Single-Task": (0.8792, 0.9922), "Shared-Bottom": (0.8813, 0.9917), "OMoE": (0.8813, 0.9912),
        "MMoE": (0.8826, 0.9924)},
}


@dataclass
class CompareConfig:
    """Settings shared by every model of a comparison."""

    num_experts: int = 8
    expert_units: int = 32
    tower_units: int = 16
    embedding_dim: int = 4
    batch_size: int = 1024
    lr: float = 5e-3
    max_epochs: int = 50
    patience: int = 1                       # (the averaged weights improve smoothly: 2 found the same epochs)
    seeds: int = 5
    models: tuple[str, ...] | None = None   # None: Single-Task + every registered multi-task model
    monitor_task: str | None = None         # early stopping on this task's validation metric (default: first)
    baselines: tuple[str, ...] = ("lr", "gbdt")   # one-hot LR and gradient-boosted trees rows (compare.baselines)
    numeric_embedding: str | dict | None = "quantile"   # dense columns also as fields: "quantile" / "ple" /
                                                  # "periodic", FeatureEncoder's dict of options, or None
    n_bins: int = 64                        # bins of the quantile / ple numeric embeddings
    cross_layers: int = 0                   # GDCN's gated cross network on every deep model's input (this many
    cross_rank: int | None = 64             # layers of this rank; None: full rank); 0: none (compare.inputs)
    weight_averaging: float | None = 0.995  # every deep model validated and kept as an EMA of its weights
                                            # (callbacks.WeightAveraging, this decay); None: the raw weights
    inputs: str | None = "auto"             # "auto": numeric_embedding / embedding_dim / cross_layers / batch_size
                                            # from the preset of compare.inputs.INPUT_PRESETS whose MMoE validates
                                            # best; a preset name; None: those four fields as set (compare.inputs)
    extra_metrics: tuple[str, ...] = ()     # e.g. ("gauc", "ne"): also reported (binary tasks), in results.csv
    group_by: str | None = None             # gauc's group column: a sparse feature of the data (its encoded ids)
    ctr_models: tuple[str, ...] = ()        # single-task CTR models per task: a second table (compare.ctr_table)
    workers: int | None = None   # processes for the (model, seed) runs: None one per core, 1 in-process (.runner)
    verbose: bool = True


@dataclass
class PreparedData:
    """Encoded train/validation/test data plus what the models need to know about it."""

    feature_columns: list
    train: tuple
    val: tuple
    test: tuple
    task_names: list[str]
    task_types: list[str]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. "inputs" (compare.inputs' choice) and "trained":
                                                          # {(model, seed): a run already made on this data}


@dataclass
class ComparisonResult:
    runs: pd.DataFrame            # one row per (model, seed)
    summary: pd.DataFrame         # one row per model: mean ± std
    curves: dict                  # model -> list of per-seed validation histories ({val_<task>_<metric>: [...]})
    gates: dict                   # model -> tasks x experts DataFrame of mean gate weights (first seed; viz.gate_table)
    config: CompareConfig
    data: PreparedData
    wall_seconds: float = 0.0
    ctr_summary: pd.DataFrame | None = None   # the single-task CTR models' rows summarised (compare.ctr_table)

    def table(self) -> str:
        return format_table(self.summary, self.data.task_names, self.data.task_types, self.config.extra_metrics)


# ------------------------------------------------------------------------------------------ data preparation
def _split_encode(X: pd.DataFrame, Y: pd.DataFrame, sparse: list[str], dense: list[str], varlen: dict,
                  embedding_dim: int, fractions=(0.8, 0.1, 0.1), seed: int = 2024, **numeric: Any):
    from ..datasets import split_indices
    from ..preprocessing import FeatureEncoder
    tr, va, te = split_indices(len(X), fractions, seed=seed)
    enc = FeatureEncoder(sparse=sparse, dense=dense, varlen=varlen or None, embedding_dim=embedding_dim, **numeric)
    enc.fit(X.iloc[tr])
    parts = [(enc.transform(X.iloc[idx]), Y.iloc[idx].reset_index(drop=True)) for idx in (tr, va, te)]
    return enc, parts


def prepare_census(group: int = 1, embedding_dim: int = 4, numeric_embedding: str | dict | None = "quantile",
                   n_bins: int = 64) -> PreparedData:
    """The bundled Census-Income data, task group 1 or 2, split 80/10/10 with seed 2024.

    The numeric columns are embedded as fields as :class:`CompareConfig`'s defaults say (``numeric_embedding=None``:
    raw scaled values only, as before 0.2).

    The paper trains on the 199,523-row training file and splits its 99,762-row test file 1:1 into
    validation and test; only the test file ships here, so it is split 80/10/10 instead.
    """
    from ..datasets import census_feature_types, load_census_income
    X, Y = load_census_income(group=group)
    sparse, dense = census_feature_types()
    enc, (tr, va, te) = _split_encode(X, Y, sparse, dense, {}, embedding_dim, numeric_embedding=numeric_embedding,
                                      n_bins=n_bins)
    return PreparedData(enc.feature_columns, tr, va, te, list(Y.columns), ["binary"] * Y.shape[1],
                        f"Census-Income (KDD) test file, group {group}: {len(X):,} rows, 80/10/10 split (seed 2024)",
                        {"group": group})


def prepare_frame_data(df: pd.DataFrame, tasks: Sequence[str], *, sparse: Sequence[str] | None = None,
                       dense: Sequence[str] | None = None, task_types: Sequence[str] | None = None,
                       embedding_dim: int = 4, name: str = "data", numeric_embedding: str | dict | None = "quantile",
                       n_bins: int = 64) -> PreparedData:
    """A user's DataFrame: columns typed as given or inferred, labels validated, split 80/10/10; numeric columns
    embedded as fields too as :class:`CompareConfig`'s defaults say (``numeric_embedding=None``: raw values only)."""
    from ..preprocessing import infer_column_types
    if len(df) == 0:
        raise DataValidationError(f"{name}: the file has no rows.")
    tasks = list(tasks)
    if not tasks:
        raise DataValidationError("--tasks: give at least one task column, e.g. --tasks click,purchase.")
    missing = [c for c in tasks + list(sparse or []) + list(dense or []) if c not in df.columns]
    if missing:
        from ..exceptions import suggest
        raise DataValidationError(f"{name}: unknown column(s) {missing}.{suggest(missing[0], df.columns)} "
                                  f"Columns in the file: {list(df.columns)[:30]}.")
    feats = [c for c in df.columns if c not in tasks]
    if sparse is None and dense is None:
        sparse, dense = infer_column_types(df, feats)
    else:
        sparse, dense = list(sparse or []), list(dense or [])
    if not sparse and not dense:
        raise DataValidationError(f"{name}: no feature columns besides the tasks {tasks}.")
    if task_types is None:
        task_types = []
        for t in tasks:
            vals = pd.to_numeric(df[t], errors="coerce").dropna().unique()
            task_types.append("binary" if len(vals) and set(vals.tolist()) <= {0, 1} else "regression")
    task_types = list(task_types)
    if len(task_types) != len(tasks):
        raise DataValidationError(f"--task-types: got {len(task_types)} types for {len(tasks)} tasks.")
    for t, typ in zip(tasks, task_types):
        if typ not in ("binary", "regression"):
            raise DataValidationError(f"--task-types: {typ!r} is not 'binary' or 'regression'.")
        col = pd.to_numeric(df[t], errors="coerce")
        if col.isna().all():
            raise DataValidationError(f"task {t!r}: the column has no numeric labels.")
        if typ == "binary" and not set(col.dropna().unique().tolist()) <= {0, 1}:
            raise DataValidationError(f"task {t!r} is binary but has values other than 0/1: "
                                      f"{sorted(col.dropna().unique().tolist())[:6]}. Map it to 0/1 or declare "
                                      "it regression with --task-types.")
        if typ == "binary" and col.dropna().nunique() < 2:
            raise DataValidationError(f"task {t!r} has a single class; AUC is undefined.")
    Y = df[tasks].apply(pd.to_numeric, errors="coerce").astype("float32")
    enc, (tr, va, te) = _split_encode(df[list(sparse) + list(dense)], Y, list(sparse), list(dense), {}, embedding_dim,
                                      numeric_embedding=numeric_embedding if dense else None, n_bins=n_bins)
    return PreparedData(enc.feature_columns, tr, va, te, tasks, task_types,
                        f"{name}: {len(df):,} rows, {len(sparse)} sparse + {len(dense)} dense features, "
                        "80/10/10 split (seed 2024)")


def prepare_synthetic(p: float, seed: int, n_train: int = 10000, n_val: int = 2000, n_test: int = 2000,
                      d: int = 100, **gen_kwargs: Any) -> PreparedData:
    """The MMoE paper's synthetic regression tasks with task correlation ``p`` (fresh data per seed)."""
    from ..datasets import make_mmoe_synthetic
    from ..features import DenseFeat
    X, Y = make_mmoe_synthetic(n_train + n_val + n_test, p, d=d, seed=seed, **gen_kwargs)
    cols = [DenseFeat("x", d)]
    parts = []
    for s, e in ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, len(X))):
        parts.append(({"x": X[s:e]}, pd.DataFrame(Y[s:e], columns=["task1", "task2"])))
    train, val, test = parts
    return PreparedData(cols, train, val, test, ["task1", "task2"], ["regression", "regression"],
                        f"MMoE synthetic, p={p}, d={d}, {n_train}/{n_val}/{n_test} rows", {"p": p})


# ------------------------------------------------------------------------------------------ model sizing
def match_width(build: Callable[[int], Any], target: int, lo: int = 1, hi: int = 4096) -> int:
    """Smallest width whose model has at least ``target`` parameters' (closest of the two neighbours)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if build(mid).count_params() < target:
            lo = mid + 1
        else:
            hi = mid
    below = build(max(lo - 1, 1)).count_params()
    at = build(lo).count_params()
    return lo if abs(at - target) <= abs(target - below) else max(lo - 1, 1)


def _ple_settings(cfg: CompareConfig) -> dict[str, Any]:
    """PLE sized like the comparison's MMoE (``cfg.num_experts`` experts of ``(cfg.expert_units,)``, linear
    gates, ``(cfg.tower_units,)`` towers): one CGC level with half the experts shared and the rest split
    between two tasks, so the expert count (and so the parameter count) is close to MMoE's."""
    shared = max(1, cfg.num_experts // 2)
    return dict(num_levels=1, shared_expert_num=shared,
                specific_expert_num=max(1, (cfg.num_experts - shared) // 2),
                expert_dnn_hidden_units=(cfg.expert_units,), gate_dnn_hidden_units=(),
                tower_dnn_hidden_units=(cfg.tower_units,))


def _esmm_settings(cfg: CompareConfig) -> dict[str, Any]:
    """ESMM's two towers with a first layer as wide as MMoE's experts together (``num_experts * expert_units
    / 2`` each), so the parameter counts are close."""
    return dict(tower_dnn_hidden_units=(max(1, cfg.num_experts * cfg.expert_units // 2), cfg.tower_units))


#: Constructor arguments of the other registered multi-task models in a comparison, sized like its MMoE:
#: model name -> ``settings(cfg)``. A multi-task model missing here joins with its defaults.
MODEL_SETTINGS: dict[str, Callable[[CompareConfig], dict[str, Any]]] = {
    "PLE": _ple_settings,
    "ESMM": _esmm_settings,
}
#: Multi-task models trained only when named in ``--models``: ESMM assumes task 2 is a post-click event of
#: task 1, which arbitrary task pairs are not.
ON_REQUEST = frozenset({"ESMM"})
_BASELINES = ("SharedBottom", "OMoE", "MMoE")   # the rows every comparison has, under their paper names


def _model_specs(data: PreparedData, cfg: CompareConfig) -> dict[str, Callable[[int], list]]:
    """name -> builder(seed) returning a list of (model, task subset) to train for that seed."""
    from ..registry import MODELS, build_model, model_names
    cols, tasks, types = data.feature_columns, data.task_names, data.task_types

    def build(name: str, **kw: Any) -> Any:
        return build_model(name, cols, tasks, types, **kw)

    # the input cross network (compare.inputs' wide preset) is part of every model's input, so of its budget
    cross = dict(cross_layers=cfg.cross_layers, cross_rank=cfg.cross_rank) if cfg.cross_layers else {}
    moe_kw = dict(num_experts=cfg.num_experts, expert_dnn_hidden_units=(cfg.expert_units,),
                  gate_dnn_hidden_units=(), tower_dnn_hidden_units=(cfg.tower_units,), **cross)
    mmoe_params = build("MMoE", **moe_kw).count_params()
    sb_width = match_width(lambda w: build("SharedBottom", bottom_dnn_hidden_units=(w,),
                                           tower_dnn_hidden_units=(cfg.tower_units,), **cross), mmoe_params)
    # each single-task network gets the Shared-Bottom structure (bottom + tower) for its own task
    specs: dict[str, Callable[[int], list]] = {
        "Single-Task": lambda seed: [(build_model("DNN", cols, [t], [typ], seed=seed,
                                                  dnn_hidden_units=(sb_width, cfg.tower_units), **cross), [t])
                                     for t, typ in zip(tasks, types)],
        "Shared-Bottom": lambda seed: [(build("SharedBottom", bottom_dnn_hidden_units=(sb_width,),
                                              tower_dnn_hidden_units=(cfg.tower_units,), seed=seed, **cross),
                                        tasks)],
        "OMoE": lambda seed: [(build("OMoE", seed=seed, **moe_kw), tasks)],
        "MMoE": lambda seed: [(build("MMoE", seed=seed, **moe_kw), tasks)],
    }
    # other registered multi-task models join with their MODEL_SETTINGS (or defaults)
    for name in model_names(multitask=True):
        if name in ON_REQUEST and not (cfg.models and name in cfg.models):
            continue
        if getattr(MODELS[name], "sequential", False):  # next-item: `ctrkit compare --data movielens-seq`
            continue
        if name not in _BASELINES:
            kw = {**MODEL_SETTINGS.get(name, lambda c: {})(cfg), **cross}
            specs[name] = (lambda n, k: lambda seed: [(build(n, seed=seed, **k), tasks)])(name, kw)
    # the enhanced-MMoE options, one row each (MMoE's settings plus the option): only on request
    variants = mmoe_variants(cfg)
    for vname, vkw in variants.items():
        if cfg.models and vname in cfg.models:
            specs[vname] = (lambda k: lambda seed: [(build("MMoE", seed=seed, **{**moe_kw, **k}),
                                                     tasks)])(vkw)
    if cfg.models:
        unknown = [m for m in cfg.models if m not in specs]
        if unknown:
            raise DataValidationError(f"--models: unknown model(s) {unknown}; available: "
                                      f"{list(specs) + [v for v in variants if v not in specs]}.")
        specs = {k: v for k, v in specs.items() if k in cfg.models}
    return specs


def mmoe_variants(cfg: CompareConfig) -> dict[str, dict[str, Any]]:
    """The enhanced-MMoE rows of a comparison (``--models MMoE+BN,...``): name -> MMoE arguments added to the
    comparison's MMoE settings. ``MMoE+all`` switches every option on."""
    deep = (2 * cfg.tower_units, cfg.tower_units)
    v: dict[str, dict[str, Any]] = {"MMoE+BN": dict(input_bn=True, input_dropout=0.1),
         "MMoE+residual": dict(residual_experts=True),
         "MMoE+attn-gates": dict(attention_gates=True),
         "MMoE+deep-towers": dict(tower_dnn_hidden_units=deep), "MMoE+cross": dict(cross_layers=2, cross_rank=None)}
    v["MMoE+all"] = {k: x for d in v.values() for k, x in d.items()}
    return v


# ------------------------------------------------------------------------------------------ running
def _train_one(model, task_subset, data: PreparedData, cfg: CompareConfig, seed: int, callbacks=()):
    from ..callbacks import EarlyStopping, WeightAveraging
    from ..training import log_key
    types = dict(zip(data.task_names, data.task_types))
    monitor_task = cfg.monitor_task if cfg.monitor_task is not None and cfg.monitor_task in task_subset \
        else task_subset[0]
    metric = "auc" if types[monitor_task] == "binary" else "mse"
    metrics = sorted({"auc", "logloss"} if "binary" in [types[t] for t in task_subset] else set()) + (
        ["mse"] if "regression" in [types[t] for t in task_subset] else [])
    model.compile("adam", lr=cfg.lr, metrics=metrics + [m for m in cfg.extra_metrics if m not in metrics],
                  group_by=cfg.group_by)
    (xtr, ytr), (xva, yva), (xte, yte) = data.train, data.val, data.test
    ytr, yva, yte = ytr[task_subset], yva[task_subset], yte[task_subset]
    t0, cpu0 = time.perf_counter(), time.process_time()
    averaging = [WeightAveraging(cfg.weight_averaging)] if cfg.weight_averaging else []
    h = model.fit(xtr, ytr, batch_size=cfg.batch_size, epochs=cfg.max_epochs, verbose=0, validation_data=(xva, yva),
                  callbacks=[*averaging, EarlyStopping(log_key(task_subset, monitor_task, metric, "val_"),
                                                       patience=cfg.patience, restore_best_weights=True), *callbacks],
                  seed=seed)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    res = model.evaluate(xte, yte)
    out = {"epochs": len(h.epoch), "seconds": seconds, "cpu_seconds": cpu_seconds, "params": model.count_params()}
    for t in task_subset:
        for m in ("auc", "logloss", "mse", *cfg.extra_metrics):
            key = log_key(task_subset, t, m)
            if key in res:
                out[f"{t}_{m}"] = res[key]
    # curves always name the task (val_<task>_<metric>), so single-task runs plot next to multi-task ones
    curve = {k if len(task_subset) > 1 or k == "val_loss" else f"val_{task_subset[0]}_{k[4:]}": v
             for k, v in h.history.items() if k.startswith("val_")}
    gates = None
    if hasattr(model, "gate_weights"):
        from ..viz import gate_table
        g = model.gate_weights(xte)
        gates = gate_table(model, {t: g[t] for t in task_subset})
    return out, curve, gates


def _run_order(names: Any, seeds: int) -> list[tuple[str, int]]:
    """The (model, seed) runs of a comparison of the models ``names`` over ``seeds`` seeds, in the order it makes
    them (and lists them in ``results.csv``): seed by seed."""
    return [(name, seed) for seed in range(seeds) for name in names]


def _run_job(shared: dict[str, Any], name: str, seed: int, data: PreparedData | None = None,
             bar: Any = None) -> tuple[dict[str, Any], dict[str, Any], Any, list[int]]:
    """One (model, seed) run: its ``results.csv`` row, validation curves, gate table (seed 0 only) and the
    epochs of each network it trained. ``shared`` holds ``data`` (None when every seed has its own, passed as
    ``data``), ``cfg`` and a ``specs`` cache; in a worker process of :mod:`.runner` it lives as long as the
    worker."""
    from .ctr_table import add_network
    cfg: CompareConfig = shared["cfg"]
    data = data if data is not None else shared["data"]
    key = seed if shared["data"] is None else None   # the model sizing depends on the data only
    specs = shared["specs"].get(key) or shared["specs"].setdefault(key, _model_specs(data, cfg))
    row: dict[str, Any] = {"model": name, "seed": seed, "epochs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "params": 0}
    seed_curve: dict[str, Any] = {}
    gates, network_epochs = None, []
    for model, subset in specs[name](seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, curve, g = _train_one(model, subset, data, cfg, seed, [bar.callback()] if bar else [])
        if bar is not None:
            bar.finished(out["epochs"])
        network_epochs.append(out["epochs"])
        add_network(row, out)
        seed_curve.update(curve)
        if g is not None and seed == 0:
            gates = g
    return row, seed_curve, gates, network_epochs


def _one_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` with scikit-learn's OpenMP / BLAS pools at one thread: the baselines train beside the worker
    processes, which hold every core; more threads only spin (the trees took 3x the CPU time that way)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        return fn()


def run_comparison(data_factory: Callable[[int], PreparedData] | PreparedData, cfg: CompareConfig | None = None,
                   progress: bool = True) -> ComparisonResult:
    """Train every model for every seed and summarise.

    Args:
        data_factory: prepared data (same split for every seed), or ``seed -> PreparedData`` for data drawn
            anew per seed (the synthetic experiment).
        cfg: shared settings.
    """
    cfg = cfg or CompareConfig()
    t_start = time.perf_counter()
    fixed = data_factory if isinstance(data_factory, PreparedData) else None
    make = cast(Callable[[int], PreparedData], data_factory)  # called only when it is not a PreparedData
    first = fixed or make(0)
    specs = _model_specs(first, cfg)
    from .baselines import run_baselines
    from .ctr_table import ctr_model_specs, is_ctr_row, run_ctr_models
    ctr_specs = ctr_model_specs(first, cfg.ctr_models)   # built once here: a model the data does not suit fails now
    from .progress import EpochProgress
    from .runner import one_torch_thread, resolve_workers, run_jobs
    networks = sum(len(first.task_names) if name == "Single-Task" else 1 for name in specs)  # a DNN per task
    networks += len(ctr_specs) * len(first.task_names)   # single-task CTR models: one per task
    bar = EpochProgress(cfg.seeds * networks, cfg.max_epochs, disable=not progress)
    seeds = range(cfg.seeds)
    base_seeds = [s for s in seeds if cfg.baselines and (s == 0 or fixed is None)]  # deterministic: once if fixed
    jobs = _run_order(specs, cfg.seeds)
    # runs already made on this very data with these settings (compare.inputs' pilot): reused, not trained again
    trained = fixed.extra.get("trained", {}) if fixed is not None else {}
    results: dict[tuple[str, int], Any] = {j: trained[j] for j in jobs if j in trained}
    for res in results.values():
        for epochs in res[3]:
            bar.finished(epochs)
    todo = [j for j in jobs if j not in results]
    baseline_rows: dict[int, list] = {}
    seed_data: dict[int, PreparedData] = {}   # per-seed data (when not fixed), for the CTR table's models
    workers = resolve_workers(cfg.workers, len(todo))
    if workers == 1:   # in-process, one run after the other, one torch thread
        for seed in seeds:
            data = seed_data[seed] = fixed or (first if seed == 0 else make(seed))
            if data is not first:
                specs = _model_specs(data, cfg)
            for name in specs:
                if (name, seed) in results:
                    continue
                bar.set_postfix_str(f"{name} seed {seed}")
                with one_torch_thread():
                    results[name, seed] = _run_job({"data": data, "cfg": cfg, "specs": {None: specs}}, name, seed,
                                                   bar=bar)
            if seed in base_seeds:
                bar.set_postfix_str(f"baselines seed {seed}")
                baseline_rows[seed] = run_baselines(data, cfg.baselines, seed)
    else:   # (model, seed) runs in worker processes; the baselines in the parent meanwhile
        per_seed = seed_data = {s: (first if s == 0 else make(s)) for s in seeds} if fixed is None else {}
        bar.set_postfix_str(f"{workers} workers")

        def done(i: int, res: Any) -> None:
            for epochs in res[3]:
                bar.finished(epochs)

        out, baseline_rows = run_jobs(_run_job, [(n, s, per_seed.get(s)) for n, s in todo],
                                      {"data": fixed, "cfg": cfg, "specs": {}}, workers, on_done=done,
                                      name=lambda j: f"{j[0]} seed {j[1]}", background=lambda: _one_thread(lambda: {
                                          s: run_baselines(fixed or per_seed[s], cfg.baselines, s)
                                          for s in base_seeds}))
        results.update(zip(todo, out))
    runs: list[dict[str, Any]] = []
    curves: dict[str, list[dict[str, Any]]] = {}
    gates: dict[str, Any] = {}
    for seed in seeds:   # the rows in the sequential order whichever way they ran
        for name in dict.fromkeys(n for n, _ in jobs):
            row, seed_curve, g, _ = results[name, seed]
            curves.setdefault(name, []).append(seed_curve)
            runs.append(row)
            if g is not None:
                gates[name] = g
        runs += baseline_rows.get(seed, [])
        if ctr_specs:   # the single-task CTR table (compare.ctr_table): in this process, after the runs
            with one_torch_thread():
                runs += run_ctr_models(fixed or seed_data[seed], ctr_specs, cfg, seed, _train_one, bar)
    bar.close()
    runs_df = pd.DataFrame(runs)
    summary = summarise(runs_df[~is_ctr_row(runs_df)], first.task_names)
    ctr_rows = runs_df[is_ctr_row(runs_df)]
    ctr_summary = summarise(ctr_rows, first.task_names) if len(ctr_rows) else None
    return ComparisonResult(runs_df, summary, curves, gates, cfg, first, time.perf_counter() - t_start, ctr_summary)


def summarise(runs: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    metric_cols = [c for c in runs.columns if any(c.startswith(t + "_") for t in tasks)]
    agg = runs.groupby("model", sort=False).agg(
        **{f"{c}_mean": (c, "mean") for c in metric_cols}, **{f"{c}_std": (c, "std") for c in metric_cols},
        params=("params", "first"), seconds=("seconds", "mean"), seconds_std=("seconds", "std"),
        **({"cpu_seconds": ("cpu_seconds", "mean")} if "cpu_seconds" in runs else {}),
        epochs=("epochs", "mean"), seeds=("seed", "count"))
    return agg.reset_index()


def config_dict(cfg: CompareConfig) -> dict[str, Any]:
    return asdict(cfg)


# ------------------------------------------------------------------------------------------ synthetic sweep
@dataclass
class SweepResult:
    table: pd.DataFrame       # one row per (p, model): mean/std test MSE (average of both tasks), label corr
    runs: pd.DataFrame
    config: CompareConfig
    wall_seconds: float


def run_synthetic_sweep(ps: Sequence[float] = (0.5, 0.9, 1.0), cfg: CompareConfig | None = None,
                        n_train: int = 10000, progress: bool = True, **gen_kwargs: Any) -> SweepResult:
    """The MMoE paper's Figure 4 experiment: Shared-Bottom, OMoE and MMoE on two regression tasks whose
    correlation is ``p``, fresh data and initialisation per seed; test MSE averaged over the two tasks."""
    from ..datasets import label_correlation, make_mmoe_synthetic
    cfg = cfg or CompareConfig(numeric_embedding=None, inputs=None, num_experts=8, expert_units=16, tower_units=8,
                               batch_size=128, lr=1e-3, max_epochs=200, patience=5,
                               models=("Shared-Bottom", "OMoE", "MMoE"), weight_averaging=None)
    t0 = time.perf_counter()
    rows = []
    for p in ps:
        def factory(seed: int, p: float = p) -> PreparedData:
            return prepare_synthetic(p, 1000 + seed, n_train=n_train, **gen_kwargs)

        res = run_comparison(factory, cfg, progress=progress)
        r = res.runs.copy()
        r["p"] = p
        r["mse"] = r[["task1_mse", "task2_mse"]].mean(axis=1)
        rows.append(r)
    runs = pd.concat(rows, ignore_index=True)
    corr = {p: float(np.mean([label_correlation(make_mmoe_synthetic(10000, p, seed=s, **gen_kwargs)[1])
                              for s in range(5)])) for p in ps}
    table = runs.groupby(["p", "model"], sort=False).agg(mse_mean=("mse", "mean"), mse_std=("mse", "std"),
                                                          seeds=("seed", "count"), params=("params", "first"),
                                                          epochs=("epochs", "mean")).reset_index()
    table["label_corr"] = table["p"].map(corr)
    return SweepResult(table, runs, cfg, time.perf_counter() - t0)
