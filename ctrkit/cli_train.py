"""``ctrkit train | evaluate | predict | export | inspect``: from a reviewed config file to batch scores and exports.

* ``ctrkit train CONFIG`` reads a TOML / YAML / JSON config (:mod:`ctrkit.config`), fits the encoder and the
  model, and writes a run folder: ``model/`` (the saved model), ``history.csv``, ``train_config.json`` (the
  config used, every default filled in), ``metrics.json`` and PNG plots (with matplotlib).
* ``ctrkit evaluate MODEL DATA`` prints the loss and metrics per task on a raw file with label columns.
* ``ctrkit predict MODEL DATA -o OUT`` scores a raw CSV / Parquet file chunk by chunk (files larger than
  memory work) and writes one prediction column per task (CSV or Parquet).
* ``ctrkit export MODEL --format onnx|torch-export -o PATH`` (see :mod:`ctrkit.export`).
* ``ctrkit inspect MODEL`` prints the feature columns, vocabulary sizes, parameters per module and embedding
  memory.

``MODEL`` is a directory written by ``model.save`` or a ``ctrkit train`` run folder (its ``model/`` is used).
Exit codes: 0 success; 2 usage, config or input errors (one line on stderr); 1 runtime failure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["add_subcommands", "run_train", "read_frame", "iter_frames", "model_summary", "resolve_model_dir"]

_PARQUET = (".parquet", ".pq")
# In CSV files only an empty cell is missing: "NA", "null", "None" ... are values (census has a category "NA"),
# so a file scores as the frame it was written from.
_CSV_NA = {"keep_default_na": False, "na_values": [""]}
DEFAULT_METRICS = {"binary": ["auc", "logloss"], "regression": ["mse", "mae"], "multiclass": ["accuracy", "logloss"]}


class UsageError(ValueError):
    """A problem with what the user asked for: exit code 2."""


# ------------------------------------------------------------------------------------------ argument parsing
def _model_and_data_args(parser: Any, data_help: str) -> None:
    """The arguments ``evaluate`` and ``predict`` share: a saved model, a raw data file read in chunks."""
    parser.add_argument("model", help="saved model directory (or a `ctrkit train` run folder)")
    parser.add_argument("data", help=data_help)
    parser.add_argument("--chunk-size", type=int, default=100_000, help="rows read at a time (default 100000)")
    parser.add_argument("--sep", help="CSV separator (default ',', tab for .tsv)")


def add_subcommands(sub: Any) -> None:
    """Register the subcommands on ``ctrkit``'s subparsers (argparse only; nothing heavy is imported)."""
    t = sub.add_parser("train", help="train a model from a TOML / YAML / JSON config file",
                       description="Train the model a config file describes and write a run folder: model/, "
                                   "history.csv, train_config.json, metrics.json and plots. See docs/cli.md.")
    t.add_argument("config", help="config file (.toml, .yaml / .yml, .json)")
    t.add_argument("--out", help="run folder (default: [output].dir of the config)")
    t.add_argument("--epochs", type=int, help="override [training].epochs")
    t.add_argument("--max-rows", type=int, help="override [data].max_rows (read only the first N rows)")
    t.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    t.set_defaults(handler=_train)

    e = sub.add_parser("evaluate", help="loss and metrics per task of a saved model on a raw data file",
                       description="Read DATA in chunks, apply the saved encoder, and print the loss and the "
                                   "metrics of every task over the whole file (labels: the task columns).")
    _model_and_data_args(e, "raw .csv / .parquet file with the feature and label columns")
    e.add_argument("--metrics", help="comma-separated metric names (default: the compiled ones, else "
                                     "auc,logloss for binary tasks and mse,mae for regression)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(handler=_evaluate)

    p = sub.add_parser("predict", help="score a raw data file in chunks and write predictions per task",
                       description="Read DATA in chunks, apply the saved encoder, and write one column per task "
                                   "(probabilities for binary tasks) to OUT (.csv or .parquet); files larger "
                                   "than memory work.")
    _model_and_data_args(p, "raw .csv / .parquet file with the feature columns")
    p.add_argument("-o", "--output", required=True, help="predictions file, .csv or .parquet")
    p.add_argument("--id-column", help="comma-separated columns of DATA copied to the output (e.g. a row id)")
    p.set_defaults(handler=_predict)

    x = sub.add_parser("export", help="export a saved model to ONNX or torch.export",
                       description="Write the model's serving graph (inputs: encoded ids and values; outputs: "
                                   "predictions per task) and a sidecar <PATH>.json describing the inputs. The "
                                   "file is checked against eager PyTorch on random valid inputs.")
    x.add_argument("model", help="saved model directory (or a `ctrkit train` run folder)")
    x.add_argument("--format", choices=("onnx", "torch-export"), default="onnx", help="default onnx")
    x.add_argument("-o", "--output", required=True, help="file to write (e.g. model.onnx, model.pt2)")
    x.add_argument("--opset", type=int, help="ONNX opset (default: PyTorch's)")
    x.add_argument("--no-verify", action="store_true", help="skip the parity check against eager PyTorch")
    x.set_defaults(handler=_export)

    i = sub.add_parser("inspect", help="feature columns, vocabulary sizes, parameters and embedding memory",
                       description="Describe a saved model: tasks, feature columns with vocabulary sizes, "
                                   "parameter counts per module and the memory of the embedding tables.")
    i.add_argument("model", help="saved model directory (or a `ctrkit train` run folder)")
    i.add_argument("--json", action="store_true", help="print the description as JSON")
    i.set_defaults(handler=_inspect)


def run_command(args: argparse.Namespace) -> int:
    """Run a subcommand's handler and map errors to exit codes (2: usage / config / input, 1: runtime)."""
    from .exceptions import CtrkitError
    try:
        return int(args.handler(args) or 0)
    except (CtrkitError, UsageError, ValueError, KeyError, TypeError, FileNotFoundError, ImportError) as e:
        msg = str(e) if isinstance(e, OSError) or not e.args else str(e.args[0])
        line = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
        print(f"ctrkit {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a runtime failure: one line, exit code 1
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"ctrkit {args.command}: failed: {type(e).__name__}: {first}", file=sys.stderr)
        return 1


# ------------------------------------------------------------------------------------------ data files
def _is_parquet(path: str) -> bool:
    return path.lower().endswith(_PARQUET)


def _check_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: file {path!r} does not exist.")
    if os.path.isdir(path):
        raise UsageError(f"{what}: {path!r} is a directory; pass a .csv or .parquet file.")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{what}: {path!r} is empty.")


def _csv_sep(path: str, sep: str | None) -> str:
    if sep is not None:
        return sep
    return "\t" if path.lower().endswith((".tsv", ".tsv.gz", ".tab")) else ","


def read_frame(path: str, sep: str | None = None, max_rows: int | None = None, what: str = "data"):
    """Read a CSV / TSV / Parquet file (optionally only its first ``max_rows`` rows) into a DataFrame."""
    import pandas as pd
    _check_file(path, what)
    if _is_parquet(path):
        if max_rows is None:
            return pd.read_parquet(path)
        return next(iter_frames(path, max_rows, what=what))
    try:
        return pd.read_csv(path, sep=_csv_sep(path, sep), nrows=max_rows, **_CSV_NA)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UsageError(f"{what}: could not parse {path!r} as CSV ({str(e).strip().splitlines()[0]}); check "
                         "the file or pass --sep.") from None


def _available_columns(path: str, sep: str | None) -> list[str]:
    import pandas as pd
    if _is_parquet(path):
        import pyarrow.parquet as pq
        return list(pq.ParquetFile(path).schema_arrow.names)
    return list(pd.read_csv(path, sep=_csv_sep(path, sep), nrows=0).columns)


def iter_frames(path: str, chunk_size: int, sep: str | None = None, columns: Sequence[str] | None = None,
                what: str = "data") -> Iterator[Any]:
    """Yield DataFrames of at most ``chunk_size`` rows of a CSV / Parquet file, reading it piece by piece."""
    import pandas as pd
    _check_file(path, what)
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be >= 1, got {chunk_size}.")
    if _is_parquet(path):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("Reading Parquet needs pyarrow: pip install 'ctrkit[parquet]'.") from None
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=chunk_size, columns=list(columns) if columns else None):
            yield batch.to_pandas()
        return
    try:
        yield from pd.read_csv(path, sep=_csv_sep(path, sep), chunksize=chunk_size,
                               usecols=list(columns) if columns else None, **_CSV_NA)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UsageError(f"{what}: could not parse {path!r} as CSV ({str(e).strip().splitlines()[0]}); check "
                         "the file or pass --sep.") from None


def _load_table(spec: str, base_dir: str, sep: str | None, max_rows: int | None, what: str):
    """A data spec of the config: ``census:1`` / ``census:2`` or a file path (relative to the config)."""
    import pandas as pd
    if spec.startswith("census:"):
        group = spec.split(":", 1)[1]
        if group not in ("1", "2"):
            raise UsageError(f"[data].{what} = {spec!r}: the bundled census data is 'census:1' (income, marital) "
                             "or 'census:2' (education, marital).")
        from .datasets import load_census_income
        X, y = load_census_income(group=int(group))
        df = pd.concat([X, y], axis=1)
        return df.iloc[:max_rows].reset_index(drop=True) if max_rows else df
    path = spec if os.path.isabs(spec) else os.path.join(base_dir, spec)
    return read_frame(path, sep, max_rows, what=f"[data].{what}")


def _abs_spec(spec: str | None, base_dir: str) -> str | None:
    if spec is None or spec.startswith("census:") or os.path.isabs(spec):
        return spec
    return os.path.normpath(os.path.join(base_dir, spec))


# ------------------------------------------------------------------------------------------ train
def _model_class(cfg: Any) -> Any:
    """The registered class ``[model].name`` names, with ``[model].args`` checked against its constructor."""
    import inspect
    from .config import ConfigError
    from .exceptions import suggest
    from .registry import MODELS, get_model_class
    try:
        cls = get_model_class(cfg.model.name)
    except KeyError as e:
        raise ConfigError(f"[model].name: {e.args[0]}") from None
    if getattr(cls, "sequential", False):
        tabular = sorted(n for n, c in MODELS.items() if not getattr(c, "sequential", False))
        raise ConfigError(f"[model].name: {cfg.model.name} is a next-item sequential model; ctrkit train builds "
                          f"tabular models ({tabular}).")
    params = inspect.signature(cls).parameters
    reserved = {"dnn_feature_columns", "linear_feature_columns", "feature_columns", "task_names", "task_types",
                "task_name", "task", "seed", "device"}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for k in cfg.model.args:
        if k in reserved:
            raise ConfigError(f"[model].args.{k} is set by ctrkit train (feature columns from [features], tasks "
                              "from [tasks], seed and device from [training]); remove it.")
        if k not in params and not takes_kwargs:
            valid = sorted(n for n in params if n not in reserved and n != "gpus")
            raise ConfigError(f"Unknown key {k!r} in [model].args for {cls.__name__}.{suggest(k, valid)} "
                              f"Valid keys: {valid}.")
    tasks = list(cfg.tasks)
    if not getattr(cls, "multitask", False) and len(tasks) != 1:
        raise ConfigError(f"[model].name: {cls.__name__} is a single-task model but [tasks] names {len(tasks)} "
                          f"tasks {tasks}. Keep one task, or use a multi-task model (e.g. MMoE).")
    return cls


def _build_model(cfg: Any, feature_columns: Any) -> Any:
    import inspect
    from .config import ConfigError
    cls = _model_class(cfg)
    params = inspect.signature(cls).parameters
    tasks, types = list(cfg.tasks), list(cfg.tasks.values())
    kw = dict(cfg.model.args)
    kw["seed"], kw["device"] = cfg.training.seed, cfg.training.device
    if getattr(cls, "multitask", False):
        kw["task_names"], kw["task_types"] = tasks, types
    else:
        kw["task_name"], kw["task"] = tasks[0], types[0]
    args = ((feature_columns, feature_columns) if "linear_feature_columns" in params and "dnn_feature_columns" in params
            else (feature_columns,))
    try:
        return cls(*args, **kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[model].args: {str(e).strip().splitlines()[0]}") from None


def run_train(cfg: Any, out_dir: str | None = None, plots: bool = True, log=print) -> dict[str, Any]:
    """Train as ``cfg`` (a :class:`~ctrkit.config.TrainConfig`) says and write the run folder.

    Returns:
        ``{"out_dir", "model_dir", "files": [...], "metrics": {"validation": {...}, "test": {...}}}``.
    """
    import numpy as np
    import pandas as pd

    from .callbacks import EarlyStopping
    from .config import ConfigError, config_to_dict
    from .datasets import split_indices
    from .preprocessing import FeatureEncoder

    d, f, tr = cfg.data, cfg.features, cfg.training
    out_dir = os.path.abspath(out_dir or cfg.output.dir)
    t0 = time.perf_counter()
    _model_class(cfg)                      # fail on a bad [model] or device before reading any data
    from .training.tasks import resolve_device
    try:
        resolve_device(tr.device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"[training].device: {str(e).strip().splitlines()[0]}") from None
    df = _load_table(d.train, cfg.base_dir, d.sep, d.max_rows, "train")
    tasks = list(cfg.tasks)
    missing = [t for t in tasks if t not in df.columns]
    if missing:
        from .exceptions import suggest
        hint = suggest(missing[0], df.columns)
        raise ConfigError(f"[tasks]: label column(s) {missing} are not in {d.train!r}.{hint} "
                          f"Columns: {list(df.columns)[:30]}.")
    if d.validation is not None:
        train_df = df
        val_df = _load_table(d.validation, cfg.base_dir, d.sep, d.max_rows, "validation")
        test_df = None
    else:
        parts = split_indices(len(df), d.split, seed=d.seed)
        train_df, val_df = df.iloc[parts[0]], df.iloc[parts[1]]
        test_df = df.iloc[parts[2]] if len(parts) == 3 and len(parts[2]) else None
        if len(val_df) == 0:
            val_df = None
    if d.test is not None:
        test_df = _load_table(d.test, cfg.base_dir, d.sep, d.max_rows, "test")
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
            from .exceptions import suggest
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
                                      init_output_bias=tr.init_output_bias)
    if tr.task_balancer is not None:
        compile_kw["task_balancer"] = tr.task_balancer
    try:
        model.compile(tr.optimizer, **compile_kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[training]: {str(e).strip().splitlines()[0]}") from None
    callbacks = []
    if tr.early_stopping is not None:
        es = tr.early_stopping
        callbacks.append(EarlyStopping(es.monitor, min_delta=es.min_delta, patience=es.patience, mode=es.mode,
                                       restore_best_weights=es.restore_best_weights))
    log(f"model: {type(model).__name__}, {model.count_params():,} parameters; training {tr.epochs} epoch(s)")

    def labels(frame):
        return frame[tasks].apply(pd.to_numeric, errors="coerce").astype("float32")

    history = model.fit(train_df[feats], labels(train_df), batch_size=tr.batch_size, epochs=tr.epochs,
                        verbose=tr.verbose, callbacks=callbacks, seed=tr.seed,
                        validation_data=None if val_df is None else (val_df[feats], labels(val_df)))
    results: dict[str, Any] = {}
    if val_df is not None:
        results["validation"] = model.evaluate(val_df[feats], labels(val_df))
    if test_df is not None:
        results["test"] = model.evaluate(test_df[feats], labels(test_df))
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
        json.dump({k: {m: (None if not np.isfinite(v) else float(v)) for m, v in r.items()}
                   for k, r in results.items()}, fh, indent=2)
    files.append(os.path.join(out_dir, "metrics.json"))
    if plots and cfg.output.plots:
        files += _plots(out_dir, model, history, test_df if test_df is not None else val_df, feats, labels, log)
    for split, r in results.items():
        log(f"{split}: " + ", ".join(f"{k}={v:.4f}" for k, v in r.items()))
    log(f"wrote {out_dir} ({time.perf_counter() - t0:.1f} s): " + ", ".join(os.path.basename(p) for p in files))
    return {"out_dir": out_dir, "model_dir": model_dir, "files": files, "metrics": results, "model": model,
            "history": history}


def _plots(out_dir: str, model: Any, history: Any, eval_df: Any, feats: list[str], labels: Any, log) -> list[str]:
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        log("plots skipped: matplotlib is not installed (pip install 'ctrkit[viz]')")
        return []
    try:
        from .viz import save_training_plots
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


# ------------------------------------------------------------------------------------------ saved models
def resolve_model_dir(path: str) -> str:
    """A saved model directory, or the ``model/`` folder of a ``ctrkit train`` run folder."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    inner = os.path.join(path, "model")
    if os.path.isfile(os.path.join(inner, "config.json")):
        return inner
    if not os.path.exists(path):
        raise FileNotFoundError(f"MODEL: {path!r} does not exist. Pass a directory written by model.save() or "
                                "a `ctrkit train` run folder.")
    raise UsageError(f"MODEL: {path!r} is not a saved model (no config.json in it or in {inner!r}).")


def _load(path: str) -> Any:
    from .io import load_model
    return load_model(resolve_model_dir(path))


def _feature_frame_columns(model: Any, data_path: str, sep: str | None, extra: Sequence[str]) -> list[str]:
    from .exceptions import DataValidationError, suggest
    if model.encoder is None:
        raise UsageError("this model has no bundled encoder (it was built from hand-made feature columns), so it "
                         "cannot read raw files; use model.predict on encoded inputs in Python.")
    feats = list(model.encoder.feature_names_in_)
    _check_file(data_path, "DATA")
    available = _available_columns(data_path, sep)
    missing = [c for c in feats + list(extra) if c not in available]
    if missing:
        raise DataValidationError(f"DATA: {data_path!r} lacks column(s) {missing}.{suggest(missing[0], available)} "
                                  f"Columns in the file: {available[:30]}.")
    return feats


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from .data.inputs import to_targets
    from .metrics import get_metric
    from .training.trainer import Trainer
    model = _load(args.model)
    tasks = list(model.task_names)
    feats = _feature_frame_columns(model, args.data, args.sep, tasks)
    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for m in metrics:
            get_metric(m)
    elif model.compiled_metrics:
        metrics = list(model.compiled_metrics)
    else:
        metrics = []
        for typ in model.task_types:
            metrics += [m for m in DEFAULT_METRICS.get(typ, []) if m not in metrics]
    if not model._loss_fns:
        model.compile("adam")
    model.compiled_metrics = [m.lower() for m in metrics]
    logits, ys = [], []
    n = 0
    for chunk in iter_frames(args.data, args.chunk_size, args.sep, columns=feats + tasks, what="DATA"):
        data = model._to_data(chunk[feats], "evaluate")
        logits.append(Trainer(model).predict_logits(data))
        ys.append(to_targets(chunk[tasks].apply(pd.to_numeric, errors="coerce"), tasks, model.task_types,
                             len(chunk), where="DATA labels"))
        n += len(chunk)
    if n == 0:
        raise UsageError(f"DATA: {args.data!r} has no rows.")
    Y = torch.cat(ys)
    model._mask_labels = bool(torch.isnan(Y).any())
    res = Trainer(model).compute_metrics(torch.cat(logits), Y, None)
    if args.json:
        print(json.dumps({"rows": n, **{k: (float(v) if np.isfinite(v) else None) for k, v in res.items()}}))
    else:
        print(f"{n:,} rows of {args.data}")
        width = max(len(k) for k in res)
        for k, v in res.items():
            print(f"  {k:<{width}}  {v:.6f}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd
    out = args.output
    fmt = "parquet" if _is_parquet(out) else "csv" if out.lower().endswith((".csv", ".csv.gz", ".tsv")) else None
    if fmt is None:
        raise UsageError(f"-o/--output: {out!r} must end in .csv, .csv.gz, .tsv or .parquet.")
    model = _load(args.model)
    ids = [c.strip() for c in (args.id_column or "").split(",") if c.strip()]
    feats = _feature_frame_columns(model, args.data, args.sep, ids)
    columns = model.output_columns() if hasattr(model, "output_columns") else list(model.task_names)
    clash = [c for c in ids if c in columns]
    if clash:
        raise UsageError(f"--id-column {clash} has the name of a prediction column {columns}; rename it first.")
    read_cols = list(dict.fromkeys(ids + feats))
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.part")
    writer = None
    n = 0
    t0 = time.perf_counter()
    try:
        for chunk in iter_frames(args.data, args.chunk_size, args.sep, columns=read_cols, what="DATA"):
            if not len(chunk):
                continue
            pred = model.predict(chunk[feats])
            frame = pd.DataFrame(pred, columns=columns)
            if ids:
                frame = pd.concat([chunk[ids].reset_index(drop=True), frame], axis=1)
            if fmt == "csv":
                frame.to_csv(tmp, mode="w" if n == 0 else "a", header=n == 0, index=False,
                             sep="\t" if out.lower().endswith(".tsv") else ",")
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            n += len(chunk)
        if writer is not None:
            writer.close()
            writer = None
        if n == 0:
            raise UsageError(f"DATA: {args.data!r} has no rows.")
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {n:,} predictions ({', '.join(columns)}) to {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_onnx, export_torch
    model = _load(args.model)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if args.format == "onnx":
            path = export_onnx(model, args.output, opset_version=args.opset, verify=not args.no_verify)
        else:
            if args.opset is not None:
                raise UsageError("--opset applies to --format onnx only.")
            path = export_torch(model, args.output, verify=not args.no_verify)
    check = "" if args.no_verify else " (checked against eager PyTorch on random valid inputs: max abs diff <= 1e-5)"
    print(f"wrote {path} and {path}.json{check} in {time.perf_counter() - t0:.1f} s")
    return 0


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def model_summary(model: Any) -> dict[str, Any]:
    """What ``ctrkit inspect`` prints: tasks, feature columns, parameters per module, embedding tables."""
    from .features import DenseFeat, SparseFeat, VarLenSparseFeat
    enc = getattr(model, "encoder", None)
    hashed = set(getattr(enc, "hash_buckets_", {}) or {})
    feats = []
    for f in model.feature_columns:
        if isinstance(f, VarLenSparseFeat):
            feats.append({"name": f.name, "kind": "varlen", "vocabulary_size": f.vocabulary_size,
                          "embedding_dim": f.embedding_dim, "table": f.embedding_name, "maxlen": f.maxlen,
                          "combiner": f.combiner, "hashed": f.name in hashed or f.use_hash})
        elif isinstance(f, SparseFeat):
            feats.append({"name": f.name, "kind": "sparse", "vocabulary_size": f.vocabulary_size,
                          "embedding_dim": f.embedding_dim, "table": f.embedding_name,
                          "hashed": f.name in hashed or f.use_hash})
        elif isinstance(f, DenseFeat):
            feats.append({"name": f.name, "kind": "dense", "dimension": f.dimension})
    by_module = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    emb = getattr(model, "embedding", None)
    groups = []
    if emb is not None and hasattr(emb, "weights"):
        for d, w in zip(getattr(emb, "group_dims", []), emb.weights):
            groups.append({"dim": int(d), "rows": int(w.shape[0]), "bytes": int(w.numel() * w.element_size())})
    total = sum(p.numel() for p in model.parameters())
    return {"class": type(model).__name__,
            "tasks": [{"name": t, "type": typ} for t, typ in zip(model.task_names, model.task_types)],
            "features": feats,
            "parameters": {"total": int(total),
                           "trainable": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
                           "by_module": {k: int(v) for k, v in by_module.items()}},
            "embedding": {"tables": len(getattr(emb, "table_offsets", {}) or {}), "groups": groups,
                          "rows": sum(g["rows"] for g in groups), "bytes": sum(g["bytes"] for g in groups)},
            "parameter_bytes": int(sum(p.numel() * p.element_size() for p in model.parameters()))}


def _inspect(args: argparse.Namespace) -> int:
    model_dir = resolve_model_dir(args.model)
    model = _load(args.model)
    s = model_summary(model)
    try:
        with open(os.path.join(model_dir, "config.json")) as fh:
            meta = json.load(fh)
        s["saved"] = {k: meta.get(k) for k in ("ctrkit_version", "torch_version", "saved_at")}
    except (OSError, ValueError):
        pass
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['class']} in {model_dir}")
    print("tasks: " + ", ".join(f"{t['name']} ({t['type']})" for t in s["tasks"]))
    print(f"\nfeature columns ({len(s['features'])}):")
    w = max(len(f["name"]) for f in s["features"])
    for f in s["features"]:
        if f["kind"] == "dense":
            print(f"  {f['name']:<{w}}  dense     dimension {f['dimension']}")
        else:
            extra = f"  maxlen {f['maxlen']}, {f['combiner']}" if f["kind"] == "varlen" else ""
            table = f"  table {f['table']!r}" if f["table"] != f["name"] else ""
            print(f"  {f['name']:<{w}}  {f['kind']:<8}  vocabulary {f['vocabulary_size']:>9,}  dim "
                  f"{f['embedding_dim']}{' (hashed)' if f['hashed'] else ''}{table}{extra}")
    p = s["parameters"]
    print(f"\nparameters: {p['total']:,} ({_fmt_bytes(s['parameter_bytes'])})")
    wm = max((len(k) for k in p["by_module"]), default=0)
    for k, v in p["by_module"].items():
        print(f"  {k:<{wm}}  {v:>12,}")
    e = s["embedding"]
    print(f"\nembedding: {e['tables']} table(s), {e['rows']:,} rows, {_fmt_bytes(e['bytes'])}")
    for g in e["groups"]:
        print(f"  dim {g['dim']:>3}: {g['rows']:>10,} rows  {_fmt_bytes(g['bytes'])}")
    return 0
