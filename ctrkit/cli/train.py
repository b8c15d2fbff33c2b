"""``ctrkit train CONFIG``: from a reviewed config file (:mod:`ctrkit.cli.config`) to a run folder.

The command fits the encoder and the model and writes ``model/`` (the saved model), ``history.csv``,
``train_config.json`` (the config used, every default filled in), ``metrics.json`` and PNG plots (with
matplotlib). :func:`run_train` does the same from Python.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from .data import UsageError, bundled_frame, check_file, check_numeric_labels, check_out_dir, is_bundled, read_frame

__all__ = ["add_train_parser", "run_train", "DEFAULT_METRICS"]

DEFAULT_METRICS = {"binary": ["auc", "logloss"], "regression": ["mse", "mae"], "multiclass": ["accuracy", "logloss"]}
# [model].args may not set these: ctrkit train sets them from [features], [tasks] and [training]
_SET_BY_TRAIN = frozenset({"dnn_feature_columns", "linear_feature_columns", "feature_columns", "task_names",
                           "task_types", "task_name", "task", "seed", "device"})


def add_train_parser(sub: Any) -> None:
    """Register ``ctrkit train`` on ``ctrkit``'s subparsers (argparse only; nothing heavy is imported)."""
    t = sub.add_parser("train", help="train a model from a TOML / YAML / JSON config file",
                       description="Train the model a config file describes and write a run folder: model/, "
                                   "history.csv, train_config.json, metrics.json and plots. See docs/cli.md.")
    t.add_argument("config", help="config file (.toml, .yaml / .yml, .json)")
    t.add_argument("--out", help="run folder (default: [output].dir of the config)")
    t.add_argument("--epochs", type=int, help="override [training].epochs")
    t.add_argument("--max-rows", type=int, help="override [data].max_rows (read only the first N rows)")
    t.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    t.set_defaults(handler=_train)


def _load_table(spec: str, base_dir: str, sep: str | None, max_rows: int | None, what: str):
    """A data spec of the config: ``census:1`` / ``census:2`` or a file path (relative to the config)."""
    if is_bundled(spec):
        return bundled_frame(spec, f"[data].{what}", max_rows)
    path = spec if os.path.isabs(spec) else os.path.join(base_dir, spec)
    return read_frame(path, sep, max_rows, what=f"[data].{what}")


def _check_labels(frame: Any, tasks: list[str], what: str) -> None:
    from .config import ConfigError
    missing = [t for t in tasks if t not in frame.columns]
    if missing:
        raise ConfigError(f"[tasks]: label column(s) {missing} are not in {what}. Columns: {list(frame.columns)[:30]}.")
    check_numeric_labels(frame, tasks, what)


def _abs_spec(spec: str | None, base_dir: str) -> str | None:
    if spec is None or spec.startswith("census:") or os.path.isabs(spec):
        return spec
    return os.path.normpath(os.path.join(base_dir, spec))


def _model_class(cfg: Any) -> Any:
    """The registered class ``[model].name`` names, with ``[model].args`` checked against its constructor."""
    from ..exceptions import suggest
    from ..registry import MODELS, get_model_class, model_arguments
    from .config import ConfigError
    try:
        cls = get_model_class(cfg.model.name)
    except KeyError as e:
        raise ConfigError(f"[model].name: {e.args[0]}") from None
    if getattr(cls, "sequential", False):
        tabular = sorted(n for n, c in MODELS.items() if not getattr(c, "sequential", False))
        raise ConfigError(f"[model].name: {cfg.model.name} is a next-item sequential model; ctrkit train builds "
                          f"tabular models ({tabular}).")
    accepted, takes_kwargs = model_arguments(cls.__name__)
    for k in cfg.model.args:
        if k in _SET_BY_TRAIN:
            raise ConfigError(f"[model].args.{k} is set by ctrkit train (feature columns from [features], tasks "
                              "from [tasks], seed and device from [training]); remove it.")
        if k not in accepted and not takes_kwargs:
            valid = sorted(n for n in accepted if n not in _SET_BY_TRAIN and n != "gpus")
            raise ConfigError(f"Unknown key {k!r} in [model].args for {cls.__name__}.{suggest(k, valid)} "
                              f"Valid keys: {valid}.")
    tasks = list(cfg.tasks)
    if not getattr(cls, "multitask", False) and len(tasks) != 1:
        raise ConfigError(f"[model].name: {cls.__name__} is a single-task model but [tasks] names {len(tasks)} "
                          f"tasks {tasks}. Keep one task, or use a multi-task model (e.g. MMoE).")
    return cls


def _build_model(cfg: Any, feature_columns: Any) -> Any:
    from ..registry import build_model
    from .config import ConfigError
    cls = _model_class(cfg)
    kw = dict(cfg.model.args)
    kw["seed"], kw["device"] = cfg.training.seed, cfg.training.device
    try:
        return build_model(cls.__name__, feature_columns, list(cfg.tasks), list(cfg.tasks.values()), **kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[model].args: {str(e).strip().splitlines()[0]}") from None


def run_train(cfg: Any, out_dir: str | None = None, plots: bool = True, log=print) -> dict[str, Any]:
    """Train as ``cfg`` (a :class:`~ctrkit.cli.config.TrainConfig`) says and write the run folder.

    Returns:
        ``{"out_dir", "model_dir", "files": [...], "metrics": {"validation": {...}, "test": {...}}}``.
    """
    import numpy as np
    import pandas as pd

    from ..callbacks import EarlyStopping, WeightAveraging
    from ..datasets import split_indices
    from ..preprocessing import FeatureEncoder
    from .config import ConfigError, config_to_dict

    d, f, tr = cfg.data, cfg.features, cfg.training
    out_dir_given = out_dir is not None
    out_dir = os.path.abspath(out_dir or cfg.output.dir)
    t0 = time.perf_counter()
    _model_class(cfg)                      # fail on a bad [model] or device before reading any data
    check_out_dir(out_dir, "--out" if out_dir_given else "[output].dir")
    for what in ("train", "validation", "test"):  # every file exists before the first is read
        spec = getattr(d, what)
        if spec is not None and not spec.startswith("census:"):
            check_file(spec if os.path.isabs(spec) else os.path.join(cfg.base_dir, spec), f"[data].{what}")
    from ..training.tasks import resolve_device
    try:
        resolve_device(tr.device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"[training].device: {str(e).strip().splitlines()[0]}") from None
    df = _load_table(d.train, cfg.base_dir, d.sep, d.max_rows, "train")
    tasks = list(cfg.tasks)
    missing = [t for t in tasks if t not in df.columns]
    if missing:
        from ..exceptions import suggest
        hint = suggest(missing[0], df.columns)
        raise ConfigError(f"[tasks]: label column(s) {missing} are not in {d.train!r}.{hint} "
                          f"Columns: {list(df.columns)[:30]}.")
    check_numeric_labels(df, tasks, f"[data].train {d.train!r}")
    if d.validation is not None:
        train_df = df
        val_df = _load_table(d.validation, cfg.base_dir, d.sep, d.max_rows, "validation")
        _check_labels(val_df, tasks, f"[data].validation {d.validation!r}")
        test_df = None
    else:
        parts = split_indices(len(df), d.split, seed=d.seed)
        train_df, val_df = df.iloc[parts[0]], df.iloc[parts[1]]
        test_df = df.iloc[parts[2]] if len(parts) == 3 and len(parts[2]) else None
        if len(val_df) == 0:
            val_df = None
    if d.test is not None:
        test_df = _load_table(d.test, cfg.base_dir, d.sep, d.max_rows, "test")
        _check_labels(test_df, tasks, f"[data].test {d.test!r}")
    if len(train_df) == 0:
        raise ConfigError(f"[data]: no training rows (train file {d.train!r}, split {d.split}).")
    if tr.early_stopping is not None and tr.early_stopping.monitor.startswith("val_") and val_df is None:
        raise ConfigError(f"[training.early_stopping].monitor = {tr.early_stopping.monitor!r} needs validation data: "
                          "give [data].validation or a split with a validation fraction.")
    varlen = {c: v.sep for c, v in f.varlen.items()} or None
    maxlen = {c: v.maxlen for c, v in f.varlen.items() if v.maxlen is not None} or None
    roles_given = f.sparse is not None or f.dense is not None or bool(f.varlen)
    enc = FeatureEncoder(sparse=f.sparse if roles_given else None, dense=f.dense if roles_given else None,
                         varlen=varlen, embedding_dim=f.embedding_dim, min_freq=f.min_freq,
                         hash_buckets=f.hash_buckets, max_vocab=f.max_vocab, scaling=f.scaling, maxlen=maxlen,
                         combiner=f.combiner, ignore=tasks + list(f.ignore))
    if roles_given:
        used = (f.sparse or []) + (f.dense or []) + list(f.varlen)
        absent = [c for c in used if c not in df.columns]
        if absent:
            from ..exceptions import suggest
            raise ConfigError(f"[features]: column(s) {absent} are not in {d.train!r}.{suggest(absent[0], df.columns)}"
                              f" Columns: {list(df.columns)[:30]}.")
    enc.fit(train_df)
    feats = list(enc.feature_names_in_)
    log(f"data: {len(train_df):,} train / {0 if val_df is None else len(val_df):,} validation / "
        f"{0 if test_df is None else len(test_df):,} test rows; features: {len(enc.sparse_columns_)} sparse, "
        f"{len(enc.dense_columns_)} dense, {len(enc.varlen_columns_)} var-length; tasks: {cfg.tasks}")
    model = _build_model(cfg, enc.feature_columns)
    metrics = tr.metrics
    if metrics is None:
        metrics = []
        for typ in cfg.tasks.values():
            metrics += [m for m in DEFAULT_METRICS[typ] if m not in metrics]
    compile_kw: dict[str, Any] = dict(loss=tr.loss, metrics=metrics, loss_weights=tr.loss_weights,
                                      lr=tr.learning_rate, grad_clip_norm=tr.grad_clip_norm,
                                      init_output_bias=tr.init_output_bias, group_by=tr.group_by)
    if tr.task_balancer is not None:
        compile_kw["task_balancer"] = tr.task_balancer
    for key in ("sharding", "embedding_optimizer", "embedding_lr"):   # [model.args] embedding_backend="torchrec"
        if getattr(tr, key) is not None:
            compile_kw[key] = getattr(tr, key)
    try:
        model.compile(tr.optimizer, **compile_kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[training]: {str(e).strip().splitlines()[0]}") from None
    callbacks: list[Any] = [WeightAveraging(tr.weight_averaging)] if tr.weight_averaging else []
    if tr.early_stopping is not None:
        es = tr.early_stopping
        callbacks.append(EarlyStopping(es.monitor, min_delta=es.min_delta, patience=es.patience, mode=es.mode,
                                       restore_best_weights=es.restore_best_weights))
    log(f"model: {type(model).__name__}, {model.count_params():,} parameters; training {tr.epochs} epoch(s)")

    def labels(frame):
        return frame[tasks].apply(pd.to_numeric, errors="coerce").astype("float32")

    # the evaluation frames keep the group column of the grouped metrics (gauc), feature or not
    ev = feats + [tr.group_by] if tr.group_by and tr.group_by not in feats else feats
    for name, frame in (("validation", val_df), ("test", test_df)):
        if tr.group_by and frame is not None and tr.group_by not in frame.columns:
            raise ConfigError(f"[training].group_by = {tr.group_by!r}: the {name} data has no such column.")
    history = model.fit(train_df[feats], labels(train_df), batch_size=tr.batch_size, epochs=tr.epochs,
                        verbose=tr.verbose, callbacks=callbacks, seed=tr.seed,
                        validation_data=None if val_df is None else (val_df[ev], labels(val_df)))
    results: dict[str, Any] = {}
    if val_df is not None:
        results["validation"] = model.evaluate(val_df[ev], labels(val_df))
    if test_df is not None:
        results["test"] = model.evaluate(test_df[ev], labels(test_df))
    reference = _baselines(tr.baselines, enc, train_df, test_df if test_df is not None else val_df,
                           feats, tasks, cfg.tasks, labels, tr.seed or 0)
    os.makedirs(out_dir, exist_ok=True)
    model_dir = os.path.join(out_dir, "model")
    model.save(model_dir)
    files = [model_dir]
    hist_path = os.path.join(out_dir, "history.csv")
    frame = history.to_frame() if hasattr(history, "to_frame") else pd.DataFrame(history.history)
    frame.to_csv(hist_path)
    files.append(hist_path)
    used = config_to_dict(cfg)
    for k in ("train", "validation", "test"):
        used["data"][k] = _abs_spec(used["data"][k], cfg.base_dir)
    used["output"]["dir"] = out_dir
    with open(os.path.join(out_dir, "train_config.json"), "w") as fh:
        json.dump(used, fh, indent=2)
    files.append(os.path.join(out_dir, "train_config.json"))
    with open(os.path.join(out_dir, "metrics.json"), "w") as fh:
        written: dict[str, Any] = {k: {m: (None if not np.isfinite(v) else float(v)) for m, v in r.items()}
                                   for k, r in results.items()}
        if reference:   # the reference rows, scored on the last split above
            written["baselines"] = {n: {m: float(v) for m, v in r.items()} for n, r in reference.items()}
        json.dump(written, fh, indent=2)
    files.append(os.path.join(out_dir, "metrics.json"))
    if plots and cfg.output.plots:
        files += _plots(out_dir, model, history, test_df if test_df is not None else val_df, feats, labels, log)
    for split, r in results.items():
        log(f"{split}: " + ", ".join(f"{k}={v:.4f}" for k, v in r.items()))
    for name, r in reference.items():
        log(f"reference, {name} ({'test' if test_df is not None else 'validation'}): "
            + ", ".join(f"{k}={v:.4f}" for k, v in r.items()))
    log(f"wrote {out_dir} ({time.perf_counter() - t0:.1f} s): " + ", ".join(os.path.basename(p) for p in files))
    return {"out_dir": out_dir, "model_dir": model_dir, "files": files, "metrics": results, "model": model,
            "history": history}


def _baselines(names: list[str], enc: Any, train_df: Any, eval_df: Any, feats: list[str], tasks: list[str],
               types: dict[str, str], labels: Callable[[Any], Any], seed: int) -> dict[str, dict[str, float]]:
    """The reference rows (one-hot LR, gradient-boosted trees; :mod:`ctrkit.compare.baselines`) on the same
    encoded rows as the model, for its binary and regression tasks: ``{name: {metric key: value}}``, keyed like
    ``evaluate`` (no task prefix for a single task)."""
    from ..compare.baselines import run_baselines
    from ..training import log_key
    kept = [t for t in tasks if types[t] in ("binary", "regression")]
    if not names or eval_df is None or not kept:
        return {}
    data = SimpleNamespace(feature_columns=enc.feature_columns, task_names=kept, task_types=[types[t] for t in kept],
                           train=(enc.transform(train_df[feats]), labels(train_df)[kept]), val=None,
                           test=(enc.transform(eval_df[feats]), labels(eval_df)[kept]))
    out = {}
    for row in run_baselines(data, names, seed):
        out[row["model"]] = {log_key(tasks, t, m): row[f"{t}_{m}"] for t in kept for m in ("auc", "logloss", "mse")
                             if f"{t}_{m}" in row}
    return out


def _plots(out_dir: str, model: Any, history: Any, eval_df: Any, feats: list[str], labels: Any, log) -> list[str]:
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        log("plots skipped: matplotlib is not installed (pip install 'ctrkit[viz]')")
        return []
    try:
        from ..viz import save_training_plots
    except ImportError as e:  # pragma: no cover - ctrkit.viz missing from an old install
        log(f"plots skipped: ctrkit.viz is unavailable ({e})")
        return []
    x = y = None
    if eval_df is not None and len(eval_df):
        sub = eval_df.iloc[:20_000]
        x, y = sub[feats], labels(sub)
    return list(save_training_plots(out_dir, model, history, x, y))


def _train(args: argparse.Namespace) -> int:
    from .config import load_config
    cfg = load_config(args.config)
    if args.epochs is not None:
        if args.epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {args.epochs}.")
        cfg.training.epochs = args.epochs
    if args.max_rows is not None:
        if args.max_rows < 10:
            raise UsageError(f"--max-rows must be >= 10, got {args.max_rows}.")
        cfg.data.max_rows = args.max_rows
    run_train(cfg, args.out, plots=not args.no_plots)
    return 0
