"""The commands on a saved model: ``evaluate``, ``predict``, ``export`` and ``inspect``.

* ``ctrkit evaluate MODEL DATA`` prints the loss and metrics per task on a raw file with label columns.
* ``ctrkit predict MODEL DATA -o OUT`` scores a raw CSV / Parquet file chunk by chunk (files larger than
  memory work) and writes one prediction column per task (CSV or Parquet).
* ``ctrkit export MODEL --format onnx|torch-export -o PATH`` (see :mod:`ctrkit.export`).
* ``ctrkit inspect MODEL`` prints the feature columns, vocabulary sizes, parameters per module and embedding
  memory.

``MODEL`` is a directory written by ``model.save`` or a ``ctrkit train`` run folder (its ``model/`` is used);
``DATA`` is a file or, as in a config's ``[data].train``, the bundled ``census:1`` / ``census:2``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

from .data import (
    UsageError,
    available_columns,
    check_file,
    check_numeric_labels,
    check_out_file,
    is_parquet,
    iter_frames,
)
from .train import DEFAULT_METRICS

__all__ = ["add_model_parsers", "model_summary", "resolve_model_dir"]


def _model_and_data_args(parser: Any, data_help: str) -> None:
    """The arguments ``evaluate`` and ``predict`` share: a saved model, a raw data file read in chunks."""
    parser.add_argument("model", help="saved model directory (or a `ctrkit train` run folder)")
    parser.add_argument("data", help=data_help)
    parser.add_argument("--chunk-size", type=int, default=100_000, help="rows read at a time (default 100000)")
    parser.add_argument("--sep", help="CSV separator (default ',', tab for .tsv)")


def add_model_parsers(sub: Any) -> None:
    """Register ``evaluate``, ``predict``, ``export`` and ``inspect`` on the subparsers (argparse only)."""
    e = sub.add_parser("evaluate", help="loss and metrics per task of a saved model on a raw data file",
                       description="Read DATA in chunks, apply the saved encoder, and print the loss and the "
                                   "metrics of every task over the whole file (labels: the task columns).")
    _model_and_data_args(e, "raw .csv / .parquet file with the feature and label columns, or the bundled "
                            "census:1 / census:2 (the data specs a config's [data].train accepts)")
    e.add_argument("--metrics", help="comma-separated metric names (default: the compiled ones, else "
                                     "auc,logloss for binary tasks and mse,mae for regression)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(handler=_evaluate)

    p = sub.add_parser("predict", help="score a raw data file in chunks and write predictions per task",
                       description="Read DATA in chunks, apply the saved encoder, and write one column per task "
                                   "(probabilities for binary tasks) to OUT (.csv or .parquet); files larger "
                                   "than memory work.")
    _model_and_data_args(p, "raw .csv / .parquet file with the feature columns, or the bundled census:1 / "
                            "census:2")
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
    from ..io import load_model
    return load_model(resolve_model_dir(path))


def _feature_frame_columns(model: Any, data_path: str, sep: str | None, extra: Sequence[str]) -> list[str]:
    from ..exceptions import DataValidationError, suggest
    if model.encoder is None:
        raise UsageError("this model has no bundled encoder (it was built from hand-made feature columns), so it "
                         "cannot read raw files; use model.predict on encoded inputs in Python.")
    feats = list(model.encoder.feature_names_in_)
    check_file(data_path, "DATA")
    available = available_columns(data_path, sep)
    missing = [c for c in feats + list(extra) if c not in available]
    if missing:
        raise DataValidationError(f"DATA: {data_path!r} lacks column(s) {missing}.{suggest(missing[0], available)} "
                                  f"Columns in the file: {available[:30]}.")
    return feats


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from ..data.inputs import to_targets
    from ..metrics import get_metric
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
    if model.trainer is None:
        model.compile("adam")
    trainer = model.trainer
    trainer.metrics = [m.lower() for m in metrics]
    group_by = trainer.group_by if any(get_metric(m).grouped for m in trainer.metrics) else None
    if any(get_metric(m).grouped for m in trainer.metrics) and group_by is None:
        raise UsageError(f"--metrics {args.metrics!r}: gauc needs the group column the model was compiled with "
                         "(compile(group_by=...), [training].group_by); this model has none.")
    extra = [group_by] if group_by and group_by not in feats + tasks else []
    logits, ys, groups = [], [], []
    n = 0
    for chunk in iter_frames(args.data, args.chunk_size, args.sep, columns=feats + tasks + extra, what="DATA"):
        check_numeric_labels(chunk, tasks, f"DATA {args.data!r}")
        if group_by:
            groups.append(chunk[group_by].to_numpy())
        logits.append(model.predict_logits(chunk[feats]))
        ys.append(to_targets(chunk[tasks].apply(pd.to_numeric, errors="coerce"), tasks, model.task_types,
                             len(chunk), where="DATA labels"))
        n += len(chunk)
    if n == 0:
        raise UsageError(f"DATA: {args.data!r} has no rows.")
    Y = torch.cat(ys)
    trainer.loss.masked = bool(torch.isnan(Y).any())
    res = trainer.compute_metrics(torch.cat(logits), Y, None, groups=np.concatenate(groups) if groups else None)
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
    fmt = "parquet" if is_parquet(out) else "csv" if out.lower().endswith((".csv", ".csv.gz", ".tsv")) else None
    if fmt is None:
        raise UsageError(f"-o/--output: {out!r} must end in .csv, .csv.gz, .tsv or .parquet.")
    check_out_file(out, "-o/--output")
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
    from ..export import export_onnx, export_torch
    check_out_file(args.output, "-o/--output")
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
    from ..features import DenseFeat, SparseFeat, VarLenSparseFeat
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
