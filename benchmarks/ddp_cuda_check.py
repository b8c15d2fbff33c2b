"""DDP on CUDA with the NCCL backend: the same training script, unchanged, with 1 and N processes.

Run on a machine with GPUs (CI never does)::

    python benchmarks/ddp_cuda_check.py --nprocs 1 2      # torchrun --nproc_per_node=1, then 2

Each run trains MMoE on the bundled Census-Income (group 1; 20k train / 10k test rows) for 2 epochs on
``cuda:LOCAL_RANK`` and reports, per rank: the process group's backend, the rows it trained on, validation AUC
computed over all ranks' predictions, and a checksum of its final weights (identical across ranks under DDP).
With fewer GPUs than processes, ranks share a GPU: NCCL refuses that ("Duplicate GPU detected"); the failure is
reported, not hidden.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ["income", "marital"]


def worker(out: str, on_cpu: bool = False) -> None:
    import torch

    from ctrkit import MMoE
    from ctrkit import distributed as D
    from ctrkit.datasets import census_feature_types, load_census_income, split_indices
    from ctrkit.preprocessing import FeatureEncoder

    local = int(os.environ.get("LOCAL_RANK", "0"))
    n_gpu = torch.cuda.device_count()
    device = "cpu" if on_cpu else f"cuda:{local % max(n_gpu, 1)}"
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    # with one process torchrun's environment still asks for a process group: join it explicitly so that the
    # NCCL code path (collectives for the validation metrics) runs even then
    if "RANK" in os.environ and world_env >= 1:
        D.init_from_env(backend="gloo" if on_cpu else "nccl", device=device)
    X, y = load_census_income(group=1)
    tr, _, te = split_indices(len(X), (0.2, 0.7, 0.1), seed=1)
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X.iloc[tr])
    m = MMoE(enc.feature_columns, num_experts=3, expert_dnn_hidden_units=(32,), tower_dnn_hidden_units=(16,),
             task_names=TASKS, seed=5, device=device)
    m.compile("adam", lr=3e-3, metrics=["auc"])
    t0 = time.perf_counter()
    h = m.fit(X.iloc[tr], y.iloc[tr][TASKS], batch_size=256, epochs=2, verbose=0,
              validation_data=(X.iloc[te], y.iloc[te][TASKS]))
    secs = time.perf_counter() - t0
    checksum = float(sum(p.detach().double().sum().item() for p in m.parameters()))
    rank = D.get_rank()
    import torch.distributed as tdist
    res = {"rank": rank, "world": D.get_world_size(), "device": str(m.device),
           "backend": tdist.get_backend() if tdist.is_initialized() else None,
           "samples": h.params["samples"], "val_income_auc": h.history["val_income_auc"][-1],
           "val_marital_auc": h.history["val_marital_auc"][-1], "fit_seconds": secs, "weight_checksum": checksum}
    with open(os.path.join(out, f"result{rank}.json"), "w") as fh:
        json.dump(res, fh)
    D.cleanup()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cpu", action="store_true", help="dry run of this script on CPU with gloo")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.cpu)
        return 0
    import torch
    if not torch.cuda.is_available() and not args.cpu:
        print("ddp_cuda_check.py: no CUDA device here; nothing to check.", file=sys.stderr)
        return 2
    if torch.cuda.is_available():
        print(f"GPUs: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}; torch {torch.__version__}; "
              f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="2", TQDM_DISABLE="1")
    rc = 0
    for n in args.nprocs:
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--standalone",
                   __file__, "--worker", out] + (["--cpu"] if args.cpu else [])
            t0 = time.perf_counter()
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - t0
            results = [json.loads(f.read_text()) for f in sorted(Path(out).glob("result*.json"))]
        if p.returncode != 0:
            rc = 1
            print(f"nproc {n}: FAILED (exit {p.returncode}, {wall:.0f} s); the end of its output:")
            lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip() and "^^^" not in ln]
            print("\n".join("    " + ln for ln in lines[-25:]))
            continue
        same = len({r["weight_checksum"] for r in results}) == 1
        print(f"nproc {n}: ok in {wall:.0f} s; weights identical across ranks: {same}")
        for r in results:
            print("  " + json.dumps(r))
    return rc


if __name__ == "__main__":
    sys.exit(main())
