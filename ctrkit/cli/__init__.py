"""The ``ctrkit`` command line. Exit codes: 0 success, 2 usage or data errors (one line), 1 runtime failure.

``ctrkit compare`` — the main job: compare Single-Task, Shared-Bottom, OMoE, MMoE (and every other registered
multi-task model) side by side on the bundled Census-Income data, the MMoE paper's synthetic data, or any
CSV / Parquet file (:mod:`ctrkit.cli.comparison`).

``ctrkit train CONFIG`` (:mod:`ctrkit.cli.train`, configs: :mod:`ctrkit.cli.config`),
``evaluate MODEL DATA``, ``predict MODEL DATA -o OUT``, ``export MODEL --format onnx|torch-export -o PATH``
and ``inspect MODEL`` (:mod:`ctrkit.cli.model_commands`): from a config file to batch scores and exported
graphs. Input files are read by :mod:`ctrkit.cli.data`.

Importing this package is cheap (argparse only): the commands import torch, pandas and the models when they
run.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "add_subcommands", "run_command"]


def add_subcommands(sub: Any) -> None:
    """Register ``train``, ``evaluate``, ``predict``, ``export`` and ``inspect`` on ``ctrkit``'s subparsers
    (argparse only; nothing heavy is imported)."""
    from .model_commands import add_model_parsers
    from .train import add_train_parser
    add_train_parser(sub)
    add_model_parsers(sub)


def _build_parser() -> argparse.ArgumentParser:
    from .comparison import add_compare_parser
    p = argparse.ArgumentParser(prog="ctrkit", description="ctrkit: CTR prediction and multi-task ranking.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_compare_parser(sub)
    add_subcommands(sub)
    return p


def run_command(args: argparse.Namespace) -> int:
    """Run a subcommand's handler and map errors to exit codes (2: usage / config / input, 1: runtime)."""
    from ..exceptions import CtrkitError
    from .data import UsageError
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ctrkit ARGV`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "compare":
            from .comparison import run_compare
            return run_compare(args)
        if getattr(args, "handler", None) is not None:
            return run_command(args)
    except KeyboardInterrupt:
        print("ctrkit: interrupted", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
