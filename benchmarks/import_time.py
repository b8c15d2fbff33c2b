"""Time `import ctrkit` (and `import torch` as the reference) in fresh interpreters; median of --repeats runs.

    python benchmarks/import_time.py --repeats 7
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys


def _time(stmt: str) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rows = {"import ctrkit": "import ctrkit", "import ctrkit; ctrkit.MMoE (loads torch)": "import ctrkit; ctrkit.MMoE",
            "import torch (reference)": "import torch"}
    print("| statement | median s | min-max s |\n|---|---|---|")
    for label, stmt in rows.items():
        ts = [_time(stmt) for _ in range(args.repeats)]
        print(f"| `{label}` | {statistics.median(ts):.3f} | {min(ts):.3f}-{max(ts):.3f} |")


if __name__ == "__main__":
    main()
