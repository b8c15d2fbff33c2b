"""``ctrkit compare``: multi-task models side by side on census, the MMoE paper's synthetic data or a file.

Single-Task, Shared-Bottom, OMoE, MMoE (and every other registered multi-task model) train on the same data
with the same budget over several seeds (:mod:`ctrkit.compare`); ``--data movielens-seq`` compares the
next-item models instead (:mod:`ctrkit.compare.sequential`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, overload

from .data import read_frame

__all__ = ["add_compare_parser", "run_compare"]


@overload
def _csv_list(s: str) -> list[str]: ...


@overload
def _csv_list(s: None) -> None: ...


def _csv_list(s: str | None) -> list[str] | None:
    return None if s is None else [x.strip() for x in s.split(",") if x.strip()]


def _fail(msg: str) -> int:
    print(f"ctrkit: error: {msg}", file=sys.stderr)
    return 2


def add_compare_parser(sub: Any) -> None:
    """Register ``ctrkit compare`` on ``ctrkit``'s subparsers (argparse only; nothing heavy is imported)."""
    c = sub.add_parser("compare", help="compare multi-task models side by side (default: census, group 1)",
                       description="Train every multi-task model (and one single-task DNN per task) on the same "
                                   "data with the same budget over several seeds; print a table and write a "
                                   "report folder with CSV results and plots.")
    c.add_argument("--data", default="census",
                   help="'census' (bundled Census-Income), 'synthetic' (the MMoE paper's generator), "
                        "'movielens-seq' (SASRec vs FAME, next-item on MovieLens-100K), or a .csv / .parquet file")
    c.add_argument("--group", type=int, default=1, choices=(1, 2), help="census task group (default 1)")
    c.add_argument("--tasks", help="comma-separated label columns of --data FILE")
    c.add_argument("--task-types", help="comma-separated binary|regression per task (default: inferred)")
    c.add_argument("--sparse", help="comma-separated categorical columns (default: inferred)")
    c.add_argument("--dense", help="comma-separated numeric columns (default: inferred)")
    c.add_argument("--sep", default=None, help="CSV separator (default: sniffed)")
    c.add_argument("--models", help="comma-separated subset, e.g. Single-Task,MMoE; on request also ESMM and the "
                   "enhanced MMoE rows MMoE+BN, MMoE+residual, MMoE+attn-gates, MMoE+deep-towers, MMoE+cross, "
                   "MMoE+all")
    c.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; 1 with --quick)")
    c.add_argument("--epochs", type=int, default=None, help="max epochs (early stopping decides; default 50)")
    c.add_argument("--patience", type=int, default=None, help="early-stopping patience (default 1)")
    c.add_argument("--batch-size", type=int, default=None)
    c.add_argument("--lr", type=float, default=None)
    c.add_argument("--experts", type=int, default=None, help="number of experts (default 8)")
    c.add_argument("--expert-units", type=int, default=None, help="units per expert (default 32)")
    c.add_argument("--tower-units", type=int, default=None, help="units of each task tower (default 16)")
    c.add_argument("--embedding-dim", type=int, default=None, help="embedding size of every field (default 4)")
    c.add_argument("--numeric-embedding", choices=("quantile", "ple", "periodic", "none"), default=None,
                   help="embed the numeric columns as fields too, next to their scaled values (default quantile; "
                        "none: scaled values only)")
    c.add_argument("--cross-layers", type=int, default=None,
                   help="layers of a gated cross network (GDCN, low rank) on every deep model's input (default 0)")
    c.add_argument("--inputs", choices=("auto", "compact", "wide", "as-set"), default=None,
                   help="numeric-column embedding, embedding size, input cross network and batch size: auto "
                        "(default) trains MMoE once on each preset (compact: quantile fields, dim 4, no cross, batch "
                        "1024; wide: piecewise-linear fields, dim 16, 2 cross layers, batch 512) and keeps the one "
                        "with the better validation metric; or that preset; setting --numeric-embedding / "
                        "--embedding-dim / --cross-layers / --batch-size means as-set")
    c.add_argument("--n-bins", type=int, default=None, help="bins of --numeric-embedding quantile / ple (default 64)")
    c.add_argument("--weight-averaging", type=float, default=None, metavar="DECAY",
                   help="validate and keep an exponential moving average of each model's weights with this decay "
                        "(default 0.995; 0: the raw weights)")
    c.add_argument("--correlations", default="0.5,0.9,1.0", help="synthetic: task correlations to sweep")
    c.add_argument("--baselines", default="lr,gbdt",
                   help="reference rows trained on the same split and features: lr (one-hot logistic regression), "
                        "gbdt (gradient-boosted trees), comma-separated, or none (default lr,gbdt)")
    c.add_argument("--workers", type=int, default=None,
                   help="processes training the (model, seed) runs side by side, one torch thread each "
                        "(default: one per available core; 1 trains them one after the other in this process)")
    c.add_argument("--metrics", help="extra metrics per binary task in results.csv, e.g. gauc,ne,calibration_ratio,ece")
    c.add_argument("--group-by", help="gauc's group column (a sparse feature of --data), e.g. user_id")
    c.add_argument("--ctr-models", default=None,
                   help="also train single-task CTR models, one per task, with the same budget, as a second table: "
                        "comma-separated (e.g. deepfm,dcn,finalmlp,gdcn,masknet) or all (default: none)")
    c.add_argument("--out", default="ctrkit-report", help="report folder (default ./ctrkit-report)")
    c.add_argument("--device", default="cpu", help="movielens-seq: where to train (cpu, cuda, auto; default cpu)")
    c.add_argument("--quick", action="store_true", help="one seed, few epochs: a smoke test")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_compare(args: argparse.Namespace) -> int:
    """The ``ctrkit compare`` command: exit code 0, or 2 with one line on stderr."""
    from ..compare import (
        PAPER_CENSUS,
        CompareConfig,
        PreparedData,
        choose_inputs,
        format_sweep,
        format_table,
        inputs_line,
        prepare_census,
        prepare_frame_data,
        run_comparison,
        run_synthetic_sweep,
        write_report,
        write_sweep_report,
    )
    from ..exceptions import CtrkitError

    if os.path.exists(args.out) and not os.path.isdir(args.out):  # checked before hours of training
        return _fail(f"--out: {args.out!r} is an existing file, not a folder; pass a new or existing directory.")
    if args.data == "movielens-seq":   # sequential recommendation: its own comparison (ctrkit.compare.sequential)
        from ..compare.sequential import compare_from_args
        return compare_from_args(args)
    if args.data not in ("census", "synthetic") and not os.path.isfile(args.data):
        return _fail(f"--data: {args.data!r} is not 'census', 'synthetic', 'movielens-seq' or an existing "
                     ".csv / .parquet file.")
    cfg = CompareConfig()
    if args.data == "synthetic":
        cfg = CompareConfig(num_experts=8, expert_units=16, tower_units=8, batch_size=128, lr=1e-3, max_epochs=200,
                            patience=5, models=("Shared-Bottom", "OMoE", "MMoE"), numeric_embedding=None,
                            weight_averaging=None, inputs=None)
    if args.quick:
        cfg.seeds, cfg.max_epochs, cfg.patience = 1, 3, 1
        if cfg.inputs == "auto":   # a smoke test: no pilot runs
            cfg.inputs = "compact"
    if args.inputs is not None:
        cfg.inputs = None if args.inputs == "as-set" else args.inputs
    if args.data != "synthetic" and any(v is not None for v in (args.numeric_embedding, args.embedding_dim,
                                                                 args.cross_layers, args.batch_size)):
        if args.inputs not in (None, "as-set"):
            return _fail(f"--inputs {args.inputs} sets --numeric-embedding, --embedding-dim, --cross-layers and "
                         "--batch-size itself; drop one or the other.")
        cfg.inputs = None   # the user's own inputs: no preset, no choice
    for attr, val in (("seeds", args.seeds), ("max_epochs", args.epochs), ("patience", args.patience),
                      ("batch_size", args.batch_size), ("lr", args.lr), ("num_experts", args.experts),
                      ("expert_units", args.expert_units), ("tower_units", args.tower_units),
                      ("embedding_dim", args.embedding_dim), ("n_bins", args.n_bins), ("workers", args.workers),
                      ("cross_layers", args.cross_layers)):
        low = 0 if attr in ("patience", "cross_layers") else 1
        if val is not None:
            if isinstance(val, int) and val < low:
                return _fail(f"--{attr.replace('_', '-')} must be >= {low}, got {val}.")
            setattr(cfg, attr, val)
    if args.weight_averaging is not None:
        if not 0.0 <= args.weight_averaging < 1.0:
            return _fail(f"--weight-averaging must be a decay in [0, 1) (0: off), got {args.weight_averaging}.")
        cfg.weight_averaging = args.weight_averaging or None
    if args.numeric_embedding is not None:
        cfg.numeric_embedding = None if args.numeric_embedding == "none" else args.numeric_embedding
    if args.models:
        cfg.models = tuple(_csv_list(args.models))
    if args.metrics:
        cfg.extra_metrics, cfg.group_by = tuple(m.lower() for m in _csv_list(args.metrics)), args.group_by
        if "gauc" in cfg.extra_metrics and not args.group_by:
            return _fail("--metrics gauc needs --group-by COLUMN (the group of each row, e.g. user_id).")
    from ..compare.baselines import parse_baselines
    try:
        cfg.baselines = parse_baselines(args.baselines)
        from ..compare.ctr_table import ctr_report_lines, parse_ctr_models
        cfg.ctr_models = parse_ctr_models(args.ctr_models)
        if cfg.ctr_models and args.data == "synthetic":
            return _fail("--ctr-models: the synthetic sweep has regression tasks only; use census or a file.")
    except ValueError as e:
        return _fail(str(e))
    progress = not args.no_progress
    t0 = time.perf_counter()
    try:
        if args.data == "synthetic":
            ps = [float(x) for x in _csv_list(args.correlations)]
            sweep = run_synthetic_sweep(ps, cfg, n_train=2000 if args.quick else 10000, progress=progress)
            print(format_sweep(sweep))
            paths = write_sweep_report(sweep, args.out)
            print(f"\nReport: {paths[0]} ({time.perf_counter() - t0:.0f} s)")
            return 0
        if args.data == "census":
            def prepare(c: CompareConfig) -> PreparedData:
                return prepare_census(args.group, c.embedding_dim, c.numeric_embedding, c.n_bins)
            paper = PAPER_CENSUS[args.group]
            title = f"Census-Income group {args.group}: multi-task comparison"
        else:
            if not args.tasks:
                return _fail("--tasks is required with --data FILE (e.g. --tasks click,purchase).")
            df = read_frame(args.data, args.sep, what="--data", sniff=True)
            types = _csv_list(args.task_types)

            def prepare(c: CompareConfig) -> PreparedData:
                return prepare_frame_data(df, _csv_list(args.tasks), sparse=_csv_list(args.sparse),
                                          dense=_csv_list(args.dense), task_types=types,
                                          embedding_dim=c.embedding_dim, name=os.path.basename(args.data),
                                          numeric_embedding=c.numeric_embedding, n_bins=c.n_bins)
            paper, title = None, f"{os.path.basename(args.data)}: multi-task comparison"
        data, cfg = choose_inputs(prepare, cfg, progress=progress)
        if data.extra["inputs"]["pilots"]:
            print(inputs_line(data).strip(), flush=True)
        result = run_comparison(data, cfg, progress=progress)
    except (CtrkitError, ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if e.args else str(e)
        return _fail(str(msg).splitlines()[0])
    print()
    print(data.description)
    print(result.table())
    print("\n".join(["", *ctr_report_lines(result, format_table)]).rstrip())
    paths = write_report(result, args.out, title=title, paper=paper)
    print(f"\nWall time {result.wall_seconds:.0f} s. Report: {paths[0]} (plots and results.csv beside it)")
    return 0
