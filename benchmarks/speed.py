#!/usr/bin/env python
"""Speed benchmark (issue #4): MMoE on Census-Income, ctrkit vs DeepCTR-Torch vs torch-rechub vs a minimal loop.

Every contender trains the same MMoE (embedding dim 8 for every categorical column, the 7 dense columns,
4 experts of (64,), linear softmax gates, towers (32,), Adam lr 1e-3, batch 1024, BCE on both tasks,
shuffled) on the same arrays, ctrkit's `FeatureEncoder` output with its defaults (ids with missing / OOV buckets,
z-scored dense columns; fitted on the train split) of the bundled Census-Income file (group 1:
``income``, ``marital``), 80/10/10 split with a fixed seed.

Contenders, run alternately (A B C D A B C D ...) so that drifting machine load hits all of them alike:

* ``ctrkit``  -- the public API: ``MMoE(...).compile("adam", lr=1e-3).fit(x_dict, y, batch_size=1024)``.
* ``deepctr`` -- DeepCTR-Torch's ``MMOE`` (skipped when ``deepctr_torch`` is not installed).
* ``rechub``  -- torch-rechub's ``MMOE`` + ``MTLTrainer`` (skipped when ``torch_rechub`` is not installed).
* ``minimal`` -- a hand-written PyTorch loop: pre-built id/dense tensors, one embedding table with per-field
  offsets, experts + gates as one GEMM, towers as batched matmuls, one ``randperm`` per epoch.

Each (contender, repeat) runs in a fresh subprocess (``--worker NAME``) that prints one JSON line, so the peak
RSS it reports is its own. The parent aggregates: train samples/s from epoch 2 on (epoch 1 includes
warm-up), predict samples/s (batch 4096, median of 5 timed calls after one warm-up call), peak RSS, test
AUC per task, and the per-repeat ratios ctrkit/peer of train and predict throughput (> 1: ctrkit faster).

Usage::

    python benchmarks/speed.py --quick                 # smoke test, < 1 minute
    python benchmarks/speed.py --repeats 3 --write     # full run, updates benchmarks/RESULTS.md
    python benchmarks/speed.py --device cuda           # on a GPU machine

Run it from a venv that has ctrkit (``pip install -e .``) and, optionally, ``deepctr-torch`` and
``torch-rechub`` (see benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import io
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- speed:begin -->", "<!-- speed:end -->"

#: contender name -> the module that must be importable for it to run (None: always available)
CONTENDERS = {"ctrkit": "ctrkit", "deepctr": "deepctr_torch", "rechub": "torch_rechub", "minimal": None,
              "ctrkit-bn": "ctrkit"}
#: run by default; "ctrkit-bn" (the same MMoE with BatchNorm in experts and towers, as torch-rechub forces) on request
DEFAULT_CONTENDERS = ["ctrkit", "deepctr", "rechub", "minimal"]
TASKS = ("income", "marital")

# the model, identical for every contender
EMB_DIM = 8
NUM_EXPERTS = 4
EXPERT_UNITS = (64,)
TOWER_UNITS = (32,)
LR = 1e-3
BATCH = 1024
PRED_BATCH = 4096
PRED_CALLS = 5
SPLIT_SEED = 2024


# ====================================================================================== data (parent side)
def prepare_data(path: Path, quick: bool) -> dict:
    """Encode Census-Income once and save it to ``path`` (npz) for the workers. Returns a summary."""
    import numpy as np

    try:
        from ctrkit.datasets import load_census_income, split_indices
    except ImportError as e:  # pragma: no cover - another engineer may still be writing ctrkit.datasets
        sys.exit(f"speed.py: cannot import ctrkit.datasets ({e}); retry once it exists.")
    from ctrkit import FeatureEncoder
    from ctrkit.datasets import census_feature_types
    X, y = load_census_income(group=1)
    sparse_cols, dense_cols = census_feature_types()
    n = len(X)
    tr, _va, te = split_indices(n, (0.8, 0.1, 0.1), seed=SPLIT_SEED)
    # ctrkit's encoder with its defaults, fitted on the train split: ids 0..V-1 with missing and
    # out-of-vocabulary buckets, dense columns z-scored (missing -> the train mean); every contender gets its output
    enc = FeatureEncoder(sparse=sparse_cols, dense=dense_cols, embedding_dim=EMB_DIM).fit(X.iloc[tr])
    x = enc.transform(X)
    ids = np.stack([np.asarray(x[c], dtype=np.int64) for c in sparse_cols], axis=1)
    dense = np.stack([np.asarray(x[c], dtype=np.float32).reshape(n) for c in dense_cols], axis=1)
    sizes = {f.name: f.vocabulary_size for f in enc.feature_columns if hasattr(f, "vocabulary_size")}
    vocab = [int(sizes[c]) for c in sparse_cols]
    Y = y[list(TASKS)].to_numpy(dtype=np.float32)
    if quick:
        tr, te = tr[:16384], te[:4096]
    np.savez(path, ids_train=ids[tr], dense_train=dense[tr], y_train=Y[tr], ids_test=ids[te],
             dense_test=dense[te], y_test=Y[te], vocab=np.asarray(vocab, dtype=np.int64),
             sparse_names=np.asarray(sparse_cols), dense_names=np.asarray(dense_cols))
    return {"rows": n, "train": len(tr), "test": len(te), "sparse": len(sparse_cols), "dense": len(dense_cols),
            "vocab_total": int(sum(vocab))}


# ====================================================================================== worker helpers
def _rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux); falls back to the peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


class _Clock:
    """Wall-clock and process-CPU seconds of successive intervals (``start()`` ... ``stop()``).

    CPU time (all threads of this process) leaves out the time the process waited for a core on a shared
    machine, but not slowdowns from shared caches or memory bandwidth; with several threads it also counts
    OpenMP's spin-waiting.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device, self.wall, self.cpu = device, [], []

    def start(self) -> None:
        _sync(self.device)
        self._w, self._c = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        _sync(self.device)
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.process_time() - self._c)


def _epoch_timer(base: type, device: str) -> type:
    """A callback class (subclass of the library's own ``base``) that times each epoch with a :class:`_Clock`."""

    class EpochTimer(base):
        def __init__(self):
            super().__init__()
            self.clock = _Clock(device)

        def on_epoch_begin(self, epoch, logs=None):
            self.clock.start()

        def on_epoch_end(self, epoch, logs=None):
            self.clock.stop()

    return EpochTimer


def _time_predict(fn, device: str) -> _Clock:
    """One warm-up call, then ``PRED_CALLS`` timed calls of ``fn()``."""
    fn()
    clock = _Clock(device)
    for _ in range(PRED_CALLS):
        clock.start()
        fn()
        clock.stop()
    return clock


class _Data:
    """The encoded arrays, as the workers see them (contiguous per-column arrays for the dict APIs)."""

    def __init__(self, path: str) -> None:
        import numpy as np
        d = np.load(path, allow_pickle=False)
        self.ids_train, self.dense_train, self.y_train = d["ids_train"], d["dense_train"], d["y_train"]
        self.ids_test, self.dense_test, self.y_test = d["ids_test"], d["dense_test"], d["y_test"]
        self.vocab = [int(v) for v in d["vocab"]]
        self.sparse_names = [str(s) for s in d["sparse_names"]]
        self.dense_names = [str(s) for s in d["dense_names"]]

    def x_dict(self, split: str, sparse_dtype=None) -> dict:
        import numpy as np
        ids, dense = (self.ids_train, self.dense_train) if split == "train" else (self.ids_test, self.dense_test)
        out = {}
        for j, name in enumerate(self.sparse_names):
            col = np.ascontiguousarray(ids[:, j])
            out[name] = col if sparse_dtype is None else col.astype(sparse_dtype)
        for j, name in enumerate(self.dense_names):
            out[name] = np.ascontiguousarray(dense[:, j])
        return out


# ====================================================================================== contenders
def run_ctrkit_bn(D: _Data, args) -> dict:
    """ctrkit's MMoE with ``dnn_use_bn=True``: BatchNorm after every expert and tower layer, like torch-rechub."""
    return run_ctrkit(D, args, use_bn=True)


def run_ctrkit(D: _Data, args, use_bn: bool = False) -> dict:
    import ctrkit
    from ctrkit import DenseFeat, MMoE, SparseFeat
    from ctrkit.callbacks import Callback

    CpuTimer = _epoch_timer(Callback, args.device)  # epoch hooks only, so ctrkit's batch loop is unchanged

    cols = ([SparseFeat(n, v, embedding_dim=EMB_DIM) for n, v in zip(D.sparse_names, D.vocab)]
            + [DenseFeat(n, 1) for n in D.dense_names])
    xtr, xte = D.x_dict("train"), D.x_dict("test")
    rss_before_model = _rss_mb()
    m = MMoE(cols, num_experts=NUM_EXPERTS, expert_dnn_hidden_units=EXPERT_UNITS, gate_dnn_hidden_units=(),
             tower_dnn_hidden_units=TOWER_UNITS, task_names=list(TASKS), task_types=["binary", "binary"],
             seed=args.seed, device=args.device, dnn_use_bn=use_bn)
    m.compile("adam", lr=LR)
    timer = CpuTimer()
    t0 = time.perf_counter()
    h = m.fit(xtr, D.y_train, batch_size=BATCH, epochs=args.epochs, verbose=0, callbacks=[timer])
    fit_wall = time.perf_counter() - t0
    pred = _time_predict(lambda: m.predict(xte, batch_size=PRED_BATCH), args.device)
    probs = m.predict(xte, batch_size=PRED_BATCH)
    return {"epoch_seconds": list(h.history["epoch_seconds"]), "epoch_cpu_seconds": timer.clock.cpu,
            "fit_wall_s": fit_wall, "predict_seconds": pred.wall, "predict_cpu_seconds": pred.cpu, "probs": probs,
            "rss_before_model_mb": rss_before_model, "version": ctrkit.__version__,
            "params": m.count_params(),
            "notes": ("dnn_use_bn=True (BatchNorm in experts and towers, as torch-rechub forces); " if use_bn else "")
            + "public API; epoch wall seconds from history['epoch_seconds'], CPU seconds from an epoch callback"}


def _import_deepctr_quietly():
    """Import deepctr_torch without its import-time PyPI version check (a thread calling requests.get).

    ``deepctr_torch/__init__.py`` starts that thread on every import; the benchmark must not touch the network,
    so ``requests.get`` is made to fail for the duration of the import (the check then just gives up).
    ``requests`` is an undeclared runtime dependency of deepctr-torch 0.3.0: install it next to it.
    """
    import threading

    import requests

    def offline(*a, **k):
        raise requests.ConnectionError("speed.py: no network in benchmarks")

    real_get, requests.get = requests.get, offline
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import deepctr_torch
            for t in threading.enumerate():
                if t is not threading.main_thread():
                    t.join(5)
    finally:
        requests.get = real_get
    return deepctr_torch


def run_deepctr(D: _Data, args) -> dict:
    deepctr_torch = _import_deepctr_quietly()
    from deepctr_torch.callbacks import Callback
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE

    EpochTimer = _epoch_timer(Callback, args.device)

    cols = ([SparseFeat(n, vocabulary_size=v, embedding_dim=EMB_DIM) for n, v in zip(D.sparse_names, D.vocab)]
            + [DenseFeat(n, 1) for n in D.dense_names])
    xtr, xte = D.x_dict("train"), D.x_dict("test")
    rss_before_model = _rss_mb()
    device = "cuda:0" if args.device == "cuda" else args.device
    # l2 set to 0 (DeepCTR's defaults: l2_reg_embedding=1e-5, l2_reg_linear=1e-5); init_std left at its
    # default (1e-4, for embeddings AND all DNN weights) unless --deepctr-init-std is given.
    m = MMOE(cols, num_experts=NUM_EXPERTS, expert_dnn_hidden_units=EXPERT_UNITS, gate_dnn_hidden_units=(),
             tower_dnn_hidden_units=TOWER_UNITS, l2_reg_linear=0.0, l2_reg_embedding=0.0, l2_reg_dnn=0.0,
             init_std=args.deepctr_init_std, seed=args.seed, task_types=["binary", "binary"],
             task_names=list(TASKS), device=device)
    m.compile("adam", loss=["binary_crossentropy", "binary_crossentropy"])  # torch.optim.Adam, lr 1e-3
    timer = EpochTimer()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its fit prints the device and a summary even at verbose=0
        m.fit(xtr, D.y_train, batch_size=BATCH, epochs=args.epochs, verbose=0, shuffle=True, callbacks=[timer])
    fit_wall = time.perf_counter() - t0
    pred = _time_predict(lambda: m.predict(xte, batch_size=PRED_BATCH), args.device)
    probs = m.predict(xte, batch_size=PRED_BATCH)
    return {"epoch_seconds": timer.clock.wall, "epoch_cpu_seconds": timer.clock.cpu, "fit_wall_s": fit_wall,
            "predict_seconds": pred.wall, "predict_cpu_seconds": pred.cpu, "probs": probs,
            "rss_before_model_mb": rss_before_model, "version": deepctr_torch.__version__,
            "params": sum(p.numel() for p in m.parameters()),
            "notes": f"one fit(epochs={args.epochs}) call, epochs timed by a Callback; l2=0; init_std="
                     f"{args.deepctr_init_std:g}; loss = sum over batch (reduction='sum') of both tasks"}


def run_rechub(D: _Data, args) -> dict:
    import torch
    import torch_rechub
    from torch.utils.data import DataLoader
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator, PredictDataset

    torch.manual_seed(args.seed)  # torch-rechub has no seed argument: weights and DataLoader shuffling
    features = ([SparseFeature(n, vocab_size=v, embed_dim=EMB_DIM) for n, v in zip(D.sparse_names, D.vocab)]
                + [DenseFeature(n) for n in D.dense_names])
    xtr, xte = D.x_dict("train"), D.x_dict("test")
    rss_before_model = _rss_mb()
    model = MMOE(features, task_types=["classification", "classification"], n_expert=NUM_EXPERTS,
                 expert_params={"dims": list(EXPERT_UNITS)},
                 tower_params_list=[{"dims": list(TOWER_UNITS)} for _ in TASKS])
    device = "cuda:0" if args.device == "cuda" else args.device
    trainer = MTLTrainer(model, task_types=["classification", "classification"],
                         optimizer_params={"lr": LR, "weight_decay": 0.0}, n_epoch=args.epochs,
                         device=device, model_path=tempfile.gettempdir())  # only fit() saves there
    # its examples: DataGenerator(x, y).generate_dataloader(...) -> DataLoader over a per-row dict Dataset
    dg = DataGenerator(xtr, D.y_train)
    train_dl, _, _ = dg.generate_dataloader(x_val=xte, y_val=D.y_test, x_test=xte, y_test=D.y_test,
                                            batch_size=BATCH)
    test_dl = DataLoader(PredictDataset(xte), batch_size=PRED_BATCH, shuffle=False)
    clock = _Clock(args.device)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # train_one_epoch prints the epoch loss
        for _ in range(args.epochs):
            clock.start()
            trainer.train_one_epoch(train_dl)  # MTLTrainer.fit also evaluates a val loader and saves a file
            clock.stop()
    fit_wall = time.perf_counter() - t0
    import numpy as np
    pred = _time_predict(lambda: trainer.predict(model, test_dl), args.device)
    probs = np.asarray(trainer.predict(model, test_dl), dtype=np.float64)
    return {"epoch_seconds": clock.wall, "epoch_cpu_seconds": clock.cpu, "fit_wall_s": fit_wall,
            "predict_seconds": pred.wall, "predict_cpu_seconds": pred.cpu, "probs": probs,
            "rss_before_model_mb": rss_before_model, "version": getattr(torch_rechub, "__version__", "?"),
            "params": sum(p.numel() for p in model.parameters()),
            "notes": "MTLTrainer.train_one_epoch timed per epoch; BatchNorm forced in experts, gates and towers; "
                     "weight_decay=0 (its default 1e-5); loss = mean of the two task losses"}


def run_minimal(D: _Data, args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    dev = torch.device(args.device)
    torch.manual_seed(args.seed)

    class GatherRows(torch.autograd.Function):
        """``weight[ids]``; backward scatters with ``index_add_`` (faster on CPU than the sorting default)."""

        @staticmethod
        def forward(ctx, weight, ids):
            ctx.save_for_backward(ids)
            ctx.rows = weight.shape[0]
            return weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.shape[1])

        @staticmethod
        def backward(ctx, grad):
            (ids,) = ctx.saved_tensors
            gw = torch.zeros(ctx.rows, grad.shape[-1], dtype=grad.dtype, device=grad.device)
            gw.index_add_(0, ids.reshape(-1), grad.reshape(-1, grad.shape[-1]))
            return gw, None

    class MinimalMMoE(nn.Module):
        def __init__(self, vocab, n_dense):
            super().__init__()
            E, H, T, U = NUM_EXPERTS, EXPERT_UNITS[0], len(TASKS), TOWER_UNITS[0]
            self.E, self.H, self.T = E, H, T
            offs = np.concatenate([[0], np.cumsum(vocab)[:-1]])
            self.register_buffer("offsets", torch.as_tensor(offs, dtype=torch.long))
            self.emb = nn.Parameter(torch.randn(int(sum(vocab)), EMB_DIM) * 0.01)
            d = len(vocab) * EMB_DIM + n_dense
            b = d ** -0.5
            self.w1 = nn.Parameter(torch.empty(d, E * H + T * E).uniform_(-b, b))  # experts' layer 1 | gates
            self.b1 = nn.Parameter(torch.zeros(E * H + T * E))
            b = H ** -0.5
            self.tw1 = nn.Parameter(torch.empty(T, H, U).uniform_(-b, b))
            self.tb1 = nn.Parameter(torch.zeros(T, 1, U))
            b = U ** -0.5
            self.tw2 = nn.Parameter(torch.empty(T, U, 1).uniform_(-b, b))
            self.tb2 = nn.Parameter(torch.zeros(T, 1, 1))

        def forward(self, ids, dense):
            B = ids.shape[0]
            idx = ids + self.offsets
            e = GatherRows.apply(self.emb, idx) if (dev.type == "cpu" and torch.is_grad_enabled()) else \
                F.embedding(idx, self.emb)
            x = torch.cat([e.reshape(B, -1), dense], dim=1)
            h = torch.addmm(self.b1, x, self.w1)
            experts = torch.relu(h[:, : self.E * self.H]).view(B, self.E, self.H)
            gates = torch.softmax(h[:, self.E * self.H:].view(B, self.T, self.E), dim=-1)
            mix = torch.bmm(gates, experts).transpose(0, 1)  # (T, B, H)
            t = torch.relu(torch.baddbmm(self.tb1, mix, self.tw1))
            return torch.baddbmm(self.tb2, t, self.tw2)[:, :, 0].t()  # (B, T) logits

    ids = torch.from_numpy(D.ids_train).to(dev)
    dense = torch.from_numpy(D.dense_train).to(dev)
    y = torch.from_numpy(D.y_train).to(dev)
    ids_te, dense_te = torch.from_numpy(D.ids_test).to(dev), torch.from_numpy(D.dense_test).to(dev)
    rss_before_model = _rss_mb()
    model = MinimalMMoE(D.vocab, D.dense_train.shape[1]).to(dev)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = ids.shape[0]
    clock = _Clock(args.device)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        clock.start()
        perm = torch.randperm(n, device=dev)
        ids_s, dense_s, y_s = ids.index_select(0, perm), dense.index_select(0, perm), y.index_select(0, perm)
        for s in range(0, n, BATCH):
            logits = model(ids_s[s:s + BATCH], dense_s[s:s + BATCH])
            loss = F.binary_cross_entropy_with_logits(logits, y_s[s:s + BATCH], reduction="none").mean(0).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        clock.stop()
    fit_wall = time.perf_counter() - t0

    @torch.inference_mode()
    def predict():
        model.eval()
        out = torch.cat([torch.sigmoid(model(ids_te[s:s + PRED_BATCH], dense_te[s:s + PRED_BATCH]))
                         for s in range(0, ids_te.shape[0], PRED_BATCH)])
        return out.cpu().numpy()

    pred = _time_predict(predict, args.device)
    return {"epoch_seconds": clock.wall, "epoch_cpu_seconds": clock.cpu, "fit_wall_s": fit_wall,
            "predict_seconds": pred.wall, "predict_cpu_seconds": pred.cpu, "probs": predict(),
            "rss_before_model_mb": rss_before_model, "version": torch.__version__,
            "params": sum(p.numel() for p in model.parameters()),
            "notes": "hand-written loop: one table + offsets, index_add_ backward on CPU, experts+gates one GEMM, "
                     "towers baddbmm, fused Adam, one randperm per epoch"}


RUNNERS = {"ctrkit": run_ctrkit, "deepctr": run_deepctr, "rechub": run_rechub, "minimal": run_minimal,
           "ctrkit-bn": run_ctrkit_bn}


def worker(args) -> int:
    """Run one contender once and print one JSON line (the last line of stdout)."""
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"name": args.worker, "error": "CUDA requested but torch.cuda.is_available() is False"}))
        return 2
    D = _Data(args.data)
    res = RUNNERS[args.worker](D, args)
    peak = _peak_rss_mb()  # before sklearn is imported for the AUC
    probs = np.asarray(res.pop("probs"), dtype=np.float64).reshape(len(D.y_test), len(TASKS))
    from sklearn.metrics import roc_auc_score
    n_train = len(D.y_train)
    ep, epc = res["epoch_seconds"], res["epoch_cpu_seconds"]
    steady, steady_cpu = (ep[1:], epc[1:]) if len(ep) > 1 else (ep, epc)
    out = {
        "name": args.worker, "seed": args.seed, "device": args.device, "epochs": args.epochs, "n_train": n_train,
        "n_test": len(D.y_test), "train_sps_epochs": [n_train / s for s in steady],
        "train_sps": statistics.median([n_train / s for s in steady]), "warmup_only": len(ep) == 1,
        "train_sps_cpu": statistics.median([n_train / s for s in steady_cpu]),
        "predict_sps": len(D.y_test) / statistics.median(res["predict_seconds"]),
        "predict_sps_cpu": len(D.y_test) / statistics.median(res["predict_cpu_seconds"]),
        "peak_rss_mb": peak, **res,
        "auc": {t: float(roc_auc_score(D.y_test[:, i], probs[:, i])) for i, t in enumerate(TASKS)},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
    }
    if args.device.startswith("cuda"):
        out["cuda_peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out))
    return 0


# ====================================================================================== parent
def _available(name: str) -> str | None:
    """None when the contender can run here, else why not."""
    mod = CONTENDERS[name]
    if mod is None or importlib.util.find_spec(mod) is not None:
        return None
    return f"{mod} is not installed"


def _fmt_rate(xs: list[float]) -> str:
    if not xs:
        return "-"
    med = statistics.median(xs)
    if len(xs) == 1:
        return f"{med:,.0f}"
    return f"{med:,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"


def _fmt_mb(xs: list[float]) -> str:
    if not xs:
        return "-"
    med = statistics.median(xs)
    return f"{med:,.0f}" if len(xs) == 1 else f"{med:,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"


def _machine(runs: list[dict]) -> str:
    model = platform.processor() or "?"
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^Model name:\s*(.+)$", txt, re.M)
        if m:
            model = m.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    r0 = next((r for r in runs if "torch" in r), {})
    s = (f"{model}, {usable} usable cores (os.cpu_count()={os.cpu_count()}), torch {r0.get('torch', '?')}, "
         f"torch.get_num_threads()={r0.get('threads', '?')}, Python {platform.python_version()}")
    if r0.get("gpu"):
        s += f", GPU {r0['gpu']}"
    return s


def build_report(runs: list[dict], skipped: dict[str, str], args, data_info: dict, command: str) -> str:
    names = [n for n in args.contenders if n not in skipped]
    by = {n: [r for r in runs if r.get("name") == n and "error" not in r] for n in names}
    lines = []
    epochs_note = ("epoch 1 only (includes warm-up)" if args.epochs == 1 else f"epochs 2-{args.epochs}")
    lines.append(f"MMoE on Census-Income (group 1), {data_info['train']:,} train / {data_info['test']:,} test rows, "
                 f"{data_info['sparse']} categorical (total vocabulary {data_info['vocab_total']:,}) + "
                 f"{data_info['dense']} dense columns; batch {BATCH}, {args.epochs} epoch(s), {args.repeats} "
                 f"repeat(s), device {args.device}. Train samples/s over {epochs_note}; predict batch "
                 f"{PRED_BATCH}, median of {PRED_CALLS} calls. Median (min-max) over repeats. \"/s\" is per "
                 "wall-clock second, \"/CPU-s\" per second of the worker's CPU time (all its threads): it leaves "
                 "out time spent waiting for a core, not slowdowns from sharing caches or memory bandwidth.")
    lines.append("")
    lines.append("| contender | version | train samples/s | train samples/CPU-s | predict samples/s | "
                 "predict samples/CPU-s | peak RSS MB | AUC income | AUC marital | params |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        rs = by[n]
        if not rs:
            err = next((r.get("error", "") for r in runs if r.get("name") == n), "")
            lines.append(f"| {n} | - | failed: {err[:80]} | | | | | | | |")
            continue
        auc_i = statistics.median(r["auc"]["income"] for r in rs)
        auc_m = statistics.median(r["auc"]["marital"] for r in rs)
        lines.append(f"| {n} | {rs[0].get('version', '?')} | {_fmt_rate([r['train_sps'] for r in rs])} | "
                     f"{_fmt_rate([r['train_sps_cpu'] for r in rs])} | {_fmt_rate([r['predict_sps'] for r in rs])} | "
                     f"{_fmt_rate([r['predict_sps_cpu'] for r in rs])} | {_fmt_mb([r['peak_rss_mb'] for r in rs])} | "
                     f"{auc_i:.4f} | {auc_m:.4f} | {rs[0].get('params', 0):,} |")
    for n, why in skipped.items():
        lines.append(f"| {n} | - | skipped: {why} | | | | | | | |")
    lines.append("")
    # per-repeat ratios ctrkit / peer
    ck = {r["seed"]: r for r in by.get("ctrkit", [])}
    peers = [n for n in names if n != "ctrkit" and by[n]]
    if ck and peers:
        lines.append("Per-repeat ratios ctrkit / peer of samples per second (> 1: ctrkit faster), repeats in seed "
                     "order, median last:")
        lines.append("")
        lines.append("| ratio | train /s | train /CPU-s | predict /s | predict /CPU-s |")
        lines.append("|---|---|---|---|---|")
        for p in peers:
            cols = []
            for key in ("train_sps", "train_sps_cpu", "predict_sps", "predict_sps_cpu"):
                xs = [ck[r["seed"]][key] / r[key] for r in by[p] if r["seed"] in ck]
                cols.append(f"{', '.join(f'{x:.2f}' for x in xs)} (**{statistics.median(xs):.2f}**)" if xs else "-")
            lines.append(f"| ctrkit / {p} | " + " | ".join(cols) + " |")
        lines.append("")
    lines.append("Notes per contender:")
    lines.append("")
    for n in names:
        if by[n]:
            r = by[n][0]
            rss = statistics.median(x['rss_before_model_mb'] for x in by[n])
            extra = (f"; RSS before the model was built {rss:,.0f}"
                     f" MB; fit() wall incl. data conversion {statistics.median(x['fit_wall_s'] for x in by[n]):.1f} s")
            lines.append(f"- {n}: {r.get('notes', '')}{extra}.")
    lines.append("")
    lines.append(f"Command: `{command}`  ")
    lines.append(f"Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}  ")
    lines.append(f"Machine: {_machine(runs)}")
    return "\n".join(lines)


def write_section(text: str, begin: str = BEGIN, end: str = END, title: str = "## Speed: MMoE on Census-Income",
                  path: Path = RESULTS_MD) -> None:
    """Replace the text between ``begin`` and ``end`` in ``path`` (appending the section if absent)."""
    block = f"{begin}\n{title}\n\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old and old.index(begin) < old.index(end):
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def parent(args) -> int:
    if args.quick:
        args.repeats, args.epochs = 1, 1
    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            print("speed.py: --device cuda was asked for but torch.cuda.is_available() is False here.",
                  file=sys.stderr)
            return 2
    unknown = [c for c in args.contenders if c not in CONTENDERS]
    if unknown:
        print(f"speed.py: unknown contender(s) {unknown}; choose from {list(CONTENDERS)}.", file=sys.stderr)
        return 2
    skipped = {c: why for c in args.contenders if (why := _available(c))}
    order = [c for c in args.contenders if c not in skipped]
    command = "python benchmarks/speed.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    runs: list[dict] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ctrkit-speed-") as tmp:
        data_path = Path(tmp) / "census.npz"
        data_info = prepare_data(data_path, args.quick)
        print(f"data: {data_info}", file=sys.stderr)
        env = dict(os.environ, TQDM_DISABLE="1", PYTHONWARNINGS="ignore")
        for r in range(args.repeats):
            seed = args.seed + r
            for name in order:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--seed", str(seed),
                       "--epochs", str(args.epochs), "--data", str(data_path), "--device", args.device,
                       "--deepctr-init-std", repr(args.deepctr_init_std)]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                t0 = time.perf_counter()
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                    last = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
                    if p.returncode == 0 and last:
                        res = json.loads(last[-1])
                    else:
                        res = {"name": name, "seed": seed,
                               "error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
                        if last:
                            res.update(json.loads(last[-1]))
                except subprocess.TimeoutExpired:
                    res = {"name": name, "seed": seed, "error": f"timed out after {args.timeout}s"}
                runs.append(res)
                if "error" in res:
                    msg = f"ERROR {res['error']}"
                else:
                    msg = (f"train {res['train_sps']:,.0f}/s {res['train_sps_cpu']:,.0f}/CPU-s predict "
                           f"{res['predict_sps']:,.0f}/s {res['predict_sps_cpu']:,.0f}/CPU-s peak RSS "
                           f"{res['peak_rss_mb']:,.0f} MB AUC {res['auc']['income']:.4f}/{res['auc']['marital']:.4f}")
                print(f"[repeat {r + 1}/{args.repeats}] {name:8s} {msg} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
    report = build_report(runs, skipped, args, data_info, command)
    print(report)
    print(f"\n(total {time.perf_counter() - t_all:.0f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    if args.write:
        write_section(report)
        print(f"updated {RESULTS_MD}", file=sys.stderr)
    return 1 if any("error" in r for r in runs) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of A B C D (default 3)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; throughput from epoch 2 on (default 2)")
    ap.add_argument("--seed", type=int, default=1024, help="seed of repeat 1 (repeat r uses seed + r - 1)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS, metavar="NAME",
                    help=f"subset/order of {list(CONTENDERS)}")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 repeat, 1 epoch, 16K train rows")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads in workers (0: torch default)")
    ap.add_argument("--deepctr-init-std", type=float, default=1e-4,
                    help="DeepCTR-Torch init_std (its default 1e-4, used for embeddings and DNN weights)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per worker run")
    ap.add_argument("--write", action="store_true", help=f"update the speed section of {RESULTS_MD.name}")
    ap.add_argument("--json", metavar="PATH", help="also save the raw per-run results as JSON")
    ap.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if not args.data:
            ap.error("--worker needs --data (an npz written by the parent)")
        return worker(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
