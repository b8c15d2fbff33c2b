"""``ctrkit compare --data movielens-seq``: SASRec vs FAME on MovieLens-100K, leave-one-out, full ranking.

Every model gets the same data, embedding size, number of blocks and heads, optimizer, batch size, epoch budget
and early stopping (on validation NDCG@10, best weights restored), over several seeds. The table reports test
HR@10 / NDCG@10 / HR@20 / NDCG@20 (all items ranked, the user's history excluded) as mean ± std over seeds, with
a popularity baseline for scale. The report folder holds ``report.md``, ``results.csv``, the validation curves
and FAME's per-head gate weights as plots.
"""
from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["SeqCompareConfig", "SeqComparisonResult", "run_sequential_comparison", "write_sequential_report",
           "popularity_scores", "compare_from_args"]

METRIC_NAMES = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


@dataclass
class SeqCompareConfig:
    """The shared budget of the comparison (every model gets the same)."""

    models: tuple = ("SASRec", "FAME")
    seeds: int = 3
    embedding_dim: int = 32
    max_len: int = 50
    num_blocks: int = 2
    num_heads: int = 2
    num_experts: int = 2
    dropout: float = 0.2
    lr: float = 3e-3
    batch_size: int = 128
    max_epochs: int = 8
    patience: int = 2
    num_negatives: int | None = 128   # sampled softmax in training (CPU budget); evaluation ranks all items
    first_seed: int = 0


@dataclass
class SeqComparisonResult:
    config: SeqCompareConfig
    runs: list = field(default_factory=list)        # one dict per (model, seed)
    curves: dict = field(default_factory=dict)      # (model, seed) -> list of val NDCG@10
    gates: dict = field(default_factory=dict)       # seed -> (n_users, H) FAME gate weights on the test inputs
    popularity: dict = field(default_factory=dict)
    data_description: str = ""
    wall_seconds: float = 0.0

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for name in self.config.models:
            rows = [r for r in self.runs if r["model"] == name]
            if not rows:
                continue
            out[name] = {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows])))
                         for k in (*METRIC_NAMES, "epochs", "seconds", "params")}
        return out

    def table(self) -> str:
        s = self.summary()
        head = f"{'model':<12}" + "".join(f"{m:>18}" for m in METRIC_NAMES) + f"{'epochs':>9}{'s/run':>8}{'params':>9}"
        lines = [head, "-" * len(head)]
        if self.popularity:
            lines.append(f"{'Popularity':<12}" + "".join(f"{self.popularity[m]:>18.4f}" for m in METRIC_NAMES))
        for name, st in s.items():
            lines.append(f"{name:<12}" + "".join(f"{st[m][0]:>10.4f} ± {st[m][1]:.4f}" for m in METRIC_NAMES)
                         + f"{st['epochs'][0]:>9.1f}{st['seconds'][0]:>8.0f}{int(st['params'][0]):>9d}")
        return "\n".join(lines)


def popularity_scores(train_sequences, num_items: int) -> np.ndarray:
    """Item counts over the training sequences, ``(num_items + 1,)`` (index = item id)."""
    counts = np.bincount(np.concatenate(list(train_sequences)), minlength=num_items + 1).astype(np.float64)
    counts[0] = -np.inf
    return counts


def run_sequential_comparison(cfg: SeqCompareConfig, progress: bool = True, device: Any = "cpu"
                              ) -> SeqComparisonResult:
    import torch

    from ..callbacks import EarlyStopping
    from ..datasets import load_movielens_sequences
    from ..metrics.ranking import history_mask, ranking_metrics
    from ..models.sequential import FAME, SASRec, leave_one_out

    classes = {"SASRec": SASRec, "FAME": FAME}
    unknown = [m for m in cfg.models if m not in classes]
    if unknown:
        raise ValueError(f"--models: unknown sequential model(s) {unknown}; available: {list(classes)}.")
    t_start = time.perf_counter()
    data = load_movielens_sequences()
    split = leave_one_out(data["sequences"], data["num_items"])
    n_train = sum(len(s) for s in split.train)
    res = SeqComparisonResult(cfg)
    res.data_description = (f"MovieLens-100K sequences: {len(split.train)} users, {split.num_items} items, "
                            f"{n_train} training interactions; leave-one-out (last item test, second-to-last "
                            f"validation); full ranking over all items, the user's history excluded.")
    pop = torch.from_numpy(popularity_scores(split.train, split.num_items)).float()
    tst = split.test
    res.popularity = ranking_metrics(pop.expand(len(tst), -1).clone(), torch.from_numpy(tst.targets), (10, 20),
                                     exclude=history_mask(tst.histories, split.num_items + 1))
    for i in range(cfg.seeds):
        seed = cfg.first_seed + i
        for name in cfg.models:
            kw = dict(num_items=split.num_items, embedding_dim=cfg.embedding_dim, max_len=cfg.max_len,
                      num_blocks=cfg.num_blocks, num_heads=cfg.num_heads, dropout=cfg.dropout, seed=seed,
                      device=device)
            if name == "FAME":
                kw["num_experts"] = cfg.num_experts
            model = classes[name](**kw)
            model.compile("adam", lr=cfg.lr, num_negatives=cfg.num_negatives)
            t0 = time.perf_counter()
            es = EarlyStopping("val_ndcg@10", patience=cfg.patience, restore_best_weights=True)
            h = model.fit(split, batch_size=cfg.batch_size, epochs=cfg.max_epochs, verbose=0, callbacks=[es])
            secs = time.perf_counter() - t0
            test = model.evaluate(split.test)
            curve = [float(v) for v in h.history.get("val_ndcg@10", [])]
            res.curves[(name, seed)] = curve
            run = {"model": name, "seed": seed, **{m: test[m] for m in METRIC_NAMES},
                   "val_ndcg@10": max(curve) if curve else float("nan"),
                   "best_epoch": int(np.argmax(curve)) + 1 if curve else 0, "epochs": len(curve), "seconds": secs,
                   "params": model.count_params()}
            res.runs.append(run)
            if name == "FAME":
                res.gates[seed] = model.gate_weights(split.test).numpy()
            if progress:
                print(f"  seed {seed} {name:<7} test NDCG@10 {test['ndcg@10']:.4f} HR@10 {test['hr@10']:.4f} "
                      f"(best epoch {run['best_epoch']}/{run['epochs']}, {secs:.0f} s)", flush=True)
    res.wall_seconds = time.perf_counter() - t_start
    return res


def _plot_gates(res: SeqComparisonResult, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    seeds = sorted(res.gates)
    H = next(iter(res.gates.values())).shape[1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(seeds)
    for j, s in enumerate(seeds):
        g = res.gates[s]
        axes[0].bar(np.arange(H) + j * width, g.mean(0), width, yerr=g.std(0), capsize=3, label=f"seed {s}")
    axes[0].set_xticks(np.arange(H) + 0.4 - width / 2, [f"head {h}" for h in range(H)])
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("gate weight (mean ± std over users)")
    axes[0].set_title("FAME: mean gate weight per head (test inputs)", fontsize=9)
    axes[0].legend(fontsize=7)
    pooled = np.concatenate([res.gates[s] for s in seeds])
    axes[1].violinplot([pooled[:, h] for h in range(H)], showmedians=True)
    axes[1].set_xticks(range(1, H + 1), [f"head {h}" for h in range(H)])
    axes[1].set_ylim(0, 1)
    axes[1].set_title(f"distribution over {len(pooled)} user-seed pairs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(res: SeqComparisonResult, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.8))
    colors = {"SASRec": "tab:blue", "FAME": "tab:orange"}
    for (name, seed), curve in res.curves.items():
        ax.plot(range(1, len(curve) + 1), curve, color=colors.get(name), alpha=0.8,
                label=name if seed == res.config.first_seed else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NDCG@10")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_sequential_report(res: SeqComparisonResult, out_dir: str, command: str = "") -> list[str]:
    """Write ``report.md``, ``results.csv``, ``validation_ndcg.png`` and ``gate_weights_FAME.png``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "report.md"), os.path.join(out_dir, "results.csv")]
    with open(paths[1], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(res.runs[0]))
        w.writeheader()
        w.writerows(res.runs)
    paths.append(os.path.join(out_dir, "validation_ndcg.png"))
    _plot_curves(res, paths[-1])
    if res.gates:
        paths.append(os.path.join(out_dir, "gate_weights_FAME.png"))
        _plot_gates(res, paths[-1])
    lines = ["# SASRec vs FAME on MovieLens-100K (leave-one-out, full ranking)", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [res.data_description, "", f"Budget (every model): {asdict(res.config)}", "",
              "Test metrics, mean ± std over seeds (early stopping on validation NDCG@10, best weights restored):",
              "", "```text", res.table(), "```", ""]
    if res.gates:
        pooled = np.concatenate(list(res.gates.values()))
        mean, std = pooled.astype(np.float64).mean(0), pooled.astype(np.float64).std(0)
        lines += [f"FAME gate weights on the test inputs: mean per head {[round(float(v), 3) for v in mean]}, "
                  f"std per head {[round(float(v), 3) for v in std]} (see gate_weights_FAME.png).", ""]
    lines += [f"Wall time {res.wall_seconds:.0f} s."]
    with open(paths[0], "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return paths


def compare_from_args(args: Any) -> int:
    """The ``ctrkit compare --data movielens-seq`` command (argparse namespace from :mod:`ctrkit.cli`)."""
    import sys
    cfg = SeqCompareConfig()
    if getattr(args, "quick", False):
        cfg.seeds, cfg.max_epochs, cfg.patience = 1, 2, 1
    for attr, val in (("seeds", args.seeds), ("max_epochs", args.epochs), ("patience", args.patience),
                      ("batch_size", args.batch_size), ("lr", args.lr), ("num_experts", args.experts)):
        if val is not None:
            if isinstance(val, int) and val < (0 if attr == "patience" else 1):
                print(f"ctrkit: error: --{attr.replace('_', '-')} must be >= 1, got {val}.", file=sys.stderr)
                return 2
            setattr(cfg, attr, val)
    if args.models:
        cfg.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    try:
        res = run_sequential_comparison(cfg, progress=not args.no_progress, device=getattr(args, "device", "cpu"))
    except ValueError as e:
        print(f"ctrkit: error: {e}", file=sys.stderr)
        return 2
    print()
    print(res.data_description)
    print(res.table())
    cmd = "ctrkit " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("ctrkit") else ""
    paths = write_sequential_report(res, args.out, command=cmd)
    print(f"\nWall time {res.wall_seconds:.0f} s. Report: {paths[0]} (plots and results.csv beside it)")
    return 0
