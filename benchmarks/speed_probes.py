"""Micro-benchmarks behind the speed section's "tried and did not help" list (issue #4).

Each probe times alternatives against what ctrkit does, in one process, alternating, 1 thread, and prints
medians:

* ``mixing``: the expert mixing ``(B, G, E) x (B, E, H)`` as ``bmm`` (ctrkit), ``einsum``, broadcast-and-sum,
  and a loop over experts; forward + backward at batch 1024, forward at 4096.
* ``embedding-backward``: the embedding gradient as ``index_add_`` (ctrkit and the hand-written loop),
  ``index_put_(accumulate=True)``, ``scatter_add_``, per-column ``bincount``, at census size (31,744 ids into
  478 rows x 8) and Criteo-like sizes.
* ``folded-training``: one training step of the first layer as the GEMM (ctrkit before, and the hand-written
  loop), through folded tables with ``embedding_bag``'s own backward (a first attempt), and as ctrkit trains
  now (``FoldedTrainingProjection``), census sizes.
* ``fold-crossover``: the same at embedding dims 2-16, 144 / 264 outputs, batch 1024 / 256, with the choice
  ``FoldedTrainingProjection.pays`` makes for each (the cost model's calibration).
* ``paired``: ctrkit's MMoE and the hand-written loop of ``speed.py`` trained 3 epochs each, alternating, 6
  pairs; the ratio of epochs 2-3 throughput per pair.

Usage: ``python benchmarks/speed_probes.py [mixing embedding-backward folded-training fold-crossover paired]``
(default: all).
"""
from __future__ import annotations

import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _median_us(fn, n: int = 50, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


def mixing() -> None:
    B, G, E, H = 1024, 2, 4, 64
    g = torch.softmax(torch.randn(B, G, E), -1).requires_grad_()
    x = torch.relu(torch.randn(B, E, H)).requires_grad_()
    gy = torch.randn(B, G, H)
    ways = {
        "bmm (ctrkit)": lambda g, x: torch.bmm(g, x),
        "einsum": lambda g, x: torch.einsum("bge,beh->bgh", g, x),
        "broadcast-and-sum": lambda g, x: (g.unsqueeze(-1) * x.unsqueeze(1)).sum(2),
        "loop over experts": lambda g, x: sum(g[:, :, e:e + 1] * x[:, None, e] for e in range(E)),
    }
    ref = torch.bmm(g, x)
    g4, x4 = torch.rand(4096, G, E), torch.rand(4096, E, H)
    for name, f in ways.items():
        assert torch.allclose(f(g, x), ref, atol=1e-5)

        def step(f=f):
            g.grad = x.grad = None
            f(g, x).backward(gy)
        with torch.inference_mode():
            infer = _median_us(lambda f=f: f(g4, x4))
        print(f"mixing  {name:20s} train fwd+bwd (1024) {_median_us(step, 200):8.1f} us   predict (4096) "
              f"{infer:8.1f} us")


def embedding_backward() -> None:
    for N, V, d in ((31744, 478, 8), (31744, 100_000, 8), (4096 * 26, 100_000, 16)):
        ids, g = torch.randint(0, V, (N,)), torch.randn(N, d)
        ways = {
            "index_add_ (ctrkit)": lambda: torch.zeros(V, d).index_add_(0, ids, g),
            "index_put_ accumulate": lambda: torch.zeros(V, d).index_put_((ids,), g, accumulate=True),
            "scatter_add_": lambda: torch.zeros(V, d).scatter_add_(0, ids[:, None].expand(N, d), g),
            "bincount per column": lambda: torch.stack(
                [torch.bincount(ids, weights=g[:, k], minlength=V) for k in range(d)], 1).float(),
        }
        ref = ways["index_add_ (ctrkit)"]()
        for name, f in ways.items():
            assert torch.allclose(f(), ref, atol=1e-3), name
            print(f"embedding-backward  {N} ids -> {V} x {d}  {name:22s} {_median_us(f):9.1f} us")


def folded_training() -> None:
    """The first layer's forward + backward at census sizes (the speed benchmark's encoded vocabularies, dim 8,
    7 dense, 264 outputs, batch 1024): the GEMM, the folded tables with ``embedding_bag``'s own backward (a first
    attempt), and ctrkit's training fold (``FoldedTrainingProjection``: padded ``bmm`` + sparse scatter)."""
    from ctrkit import DenseFeat, SparseFeat
    from ctrkit.data import TensorData
    from ctrkit.layers import EmbeddingLayer
    from ctrkit.layers.fold import FoldedTrainingProjection
    V = [11, 54, 49, 5, 26, 17, 7, 12, 4, 5, 8, 10, 8, 8, 53, 37, 10, 12, 11, 12, 5, 6, 7, 45, 45, 45, 7, 5, 5, 5, 4]
    B, J, d, out, n_dense = 1024, len(V), 8, 264, 7
    emb = EmbeddingLayer([SparseFeat(f"f{j}", v, d) for j, v in enumerate(V)] + [DenseFeat("x", n_dense)])
    T = emb.weights[0]
    W = torch.randn(J * d + n_dense, out, requires_grad=True)
    b = torch.zeros(out, requires_grad=True)
    ids = torch.stack([torch.randint(0, v, (B,)) for v in V], 1)
    off = torch.as_tensor(np.concatenate([[0], np.cumsum(V)[:-1]]))
    field = torch.as_tensor(np.repeat(np.arange(J), V))
    batch = TensorData(sparse=ids, dense=torch.rand(B, n_dense))
    gy = torch.randn(B, out)
    plan = FoldedTrainingProjection(emb)
    assert FoldedTrainingProjection.applicable(emb, W) and plan.pays(W, batch)

    def gemm():
        return torch.addmm(b, torch.cat([T[ids + off].reshape(B, -1), batch.dense], 1), W)

    def embedding_bag():
        P = torch.bmm(T.unsqueeze(1), W[:J * d].view(J, d, out).index_select(0, field)).squeeze(1)
        return torch.addmm(F.embedding_bag(ids + off, P, mode="sum") + b, batch.dense, W[J * d:])

    def ctrkit():
        return plan(emb, batch, W, b)

    ways = (("GEMM (before)", gemm), ("embedding_bag", embedding_bag), ("ctrkit fold", ctrkit))
    for _name, f in ways:
        assert torch.allclose(gemm(), f(), atol=1e-3)
    times: dict[str, list[float]] = {}
    for name, f in ways * 5:                  # alternating rounds: drifting load hits every way alike
        def step(f=f):
            T.grad = W.grad = b.grad = None
            f().backward(gy)
        times.setdefault(name, []).append(_median_us(step, 20) / 1e3)
    for name, ts in times.items():
        print(f"folded-training  {name:14s} forward+backward, 5 rounds: " + " / ".join(f"{t:.2f}" for t in ts)
              + f" ms, median {np.median(ts):.2f} ms")


def fold_crossover() -> None:
    """Where the training fold pays: the first layer's forward + backward as the GEMM and through
    ``FoldedTrainingProjection`` at census vocabularies, embedding dims 2-16, 144 / 264 outputs, batch 1024 / 256
    (3 alternating rounds each); and what ``FoldedTrainingProjection.pays`` decides there."""
    from ctrkit import DenseFeat, SparseFeat
    from ctrkit.data import TensorData
    from ctrkit.layers import EmbeddingLayer
    from ctrkit.layers.embedding import _GatherRows
    from ctrkit.layers.fold import FoldedTrainingProjection
    V = [11, 54, 49, 5, 26, 17, 7, 12, 4, 5, 8, 10, 8, 8, 53, 37, 10, 12, 11, 12, 5, 6, 7, 45, 45, 45, 7, 5, 5, 5, 4]
    J = len(V)
    off = torch.as_tensor(np.concatenate([[0], np.cumsum(V)[:-1]]))
    for B in (1024, 256):
        for d in (2, 4, 8, 16):
            for out in (144, 264):
                emb = EmbeddingLayer([SparseFeat(f"f{j}", v, d) for j, v in enumerate(V)] + [DenseFeat("x", 7)])
                T = emb.weights[0]
                W = torch.randn(J * d + 7, out, requires_grad=True)
                b = torch.zeros(out, requires_grad=True)
                ids = torch.stack([torch.randint(0, v, (B,)) for v in V], 1)
                batch = TensorData(sparse=ids, dense=torch.rand(B, 7))
                gy = torch.randn(B, out)
                plan = FoldedTrainingProjection(emb)

                def gemm():
                    x = torch.cat([_GatherRows.apply(T, ids + off).reshape(B, -1), batch.dense], 1)
                    return torch.addmm(b, x, W)

                def fold():
                    return plan(emb, batch, W, b)

                times: dict[str, list[float]] = {"gemm": [], "fold": []}
                for _ in range(3):
                    for name, f in (("gemm", gemm), ("fold", fold)):
                        def step(f=f):
                            T.grad = W.grad = b.grad = None
                            f().backward(gy)
                        times[name].append(_median_us(step, 20) / 1e3)
                g, f = np.median(times["gemm"]), np.median(times["fold"])
                used = FoldedTrainingProjection.applicable(emb, W) and plan.pays(W, batch)
                print(f"fold-crossover  batch {B:4d} dim {d:2d} out {out}: GEMM {g:5.2f} ms, fold {f:5.2f} ms, "
                      f"GEMM/fold {g / f:4.2f}; ctrkit uses {'the fold' if used else 'the GEMM'}", flush=True)


def paired() -> None:
    import speed
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "census.npz"
        speed.prepare_data(path, quick=False)
        D = speed._Data(str(path))
        args = types.SimpleNamespace(device="cpu", epochs=3, seed=1024)
        ratios = []
        for i in range(6):
            order = [("ctrkit", speed.run_ctrkit), ("minimal", speed.run_minimal)]
            secs = {name: sum(fn(D, args)["epoch_seconds"][1:]) for name, fn in (order if i % 2 == 0 else order[::-1])}
            ratios.append(secs["minimal"] / secs["ctrkit"])
            print(f"paired  pair {i + 1}: ctrkit {secs['ctrkit']:.3f} s, minimal {secs['minimal']:.3f} s "
                  f"(epochs 2-3), ctrkit/minimal throughput {ratios[-1]:.3f}", flush=True)
        print(f"paired  median ctrkit/minimal {np.median(ratios):.3f}")


PROBES = {"mixing": mixing, "embedding-backward": embedding_backward, "folded-training": folded_training,
          "fold-crossover": fold_crossover, "paired": paired}


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(PROBES)
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        sys.exit(f"speed_probes.py: unknown probe(s) {unknown}; choose from {list(PROBES)}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for n in names:
        PROBES[n]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
