"""From pCTR to an auction (issue #19): models vs the truth on the synthetic ad log, and the auction replay.

One log from :func:`ctrkit.datasets.make_ad_log` (seed 0), split by request 80/10/10. Per model seed, an MMoE
(tasks ``ctr`` on every impression and ``cvr`` on clicked impressions, NaN elsewhere) and an ESMM (``ctr`` and
``ctcvr``; pCVR from ``predict_cvr``) are trained with ctrkit and scored on the test requests next to the
oracle, i.e. the log's true probabilities:

* CTR: AUC, logloss and gAUC (per-user AUC weighted by the user's impressions, users with both classes);
* CVR: AUC and logloss of pCVR on the clicked test impressions; CTCVR: AUC of pCTR x pCVR on all of them.

Then the auction replay (:func:`ctrkit.ranking.compare_replays`) on the test requests' candidates, with
expected outcomes from the true probabilities, for the oracle, each model, an ad-CTR baseline (each ad's
smoothed training click rate; for oCPA also the advertiser's smoothed conversion rate among clicks) and
bid-only ranking, and the truth blurred by Gaussian noise of standard deviation 0.5 and 1.0 on the logits (how
the replay degrades with the prediction error); revenue, clicks, conversions and advertiser value as fractions
of the oracle's. Means ± standard deviations
over the model seeds (the oracle and the baselines do not depend on them).

    OMP_NUM_THREADS=1 python benchmarks/ad_ranking.py --seeds 3 --write      # what RESULTS.md shows
    python benchmarks/ad_ranking.py --quick                                  # smoke test
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss, roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ctrkit import ESMM, DeepFM, EarlyStopping, FeatureEncoder, MMoE  # noqa: E402
from ctrkit.datasets import make_ad_log  # noqa: E402
from ctrkit.metrics import gauc  # noqa: E402
from ctrkit.ranking import compare_replays, smoothed_rate  # noqa: E402

RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- adranking:begin -->", "<!-- adranking:end -->"
AUCTIONS = {   # name -> compare_replays settings
    "CPC, GSP, 1 slot": dict(bid_type="cpc", pricing="second", slots=1),
    "CPC, GSP, 3 slots, position bias 1/0.7/0.5": dict(bid_type="cpc", pricing="second", slots=3,
                                                        position_bias=(1.0, 0.7, 0.5)),
    "CPC, first price, 1 slot": dict(bid_type="cpc", pricing="first", slots=1),
    "oCPA, GSP, 1 slot": dict(bid_type="ocpa", pricing="second", slots=1),
}


NOISE = (0.5, 1.0)


def _blur(p: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    z = np.log(p) - np.log1p(-p) + rng.normal(0.0, sigma, len(p))
    return 1.0 / (1.0 + np.exp(-z))


def score(test: pd.DataFrame, pctr: np.ndarray, pcvr: np.ndarray) -> dict[str, float]:
    y, clicked = test["click"].to_numpy(), test["click"].to_numpy() == 1
    yc = test["conversion"].to_numpy()
    eps = 1e-7
    return {"ctr_auc": roc_auc_score(y, pctr), "ctr_logloss": log_loss(y, np.clip(pctr, eps, 1 - eps)),
            "ctr_gauc": gauc(y, pctr, test["user_id"].to_numpy()),   # per-user AUC, impression-weighted
            "cvr_auc": roc_auc_score(yc[clicked], pcvr[clicked]),
            "cvr_logloss": log_loss(yc[clicked], np.clip(pcvr[clicked], eps, 1 - eps)),
            "ctcvr_auc": roc_auc_score(yc, pctr * pcvr)}


def train(kind: str, enc: FeatureEncoder, x_tr, tr: pd.DataFrame, x_va, va: pd.DataFrame, seed: int,
          epochs: int) -> tuple[object, float]:
    def labels(df: pd.DataFrame) -> pd.DataFrame:
        if kind == "DeepFM":
            return pd.DataFrame({"ctr": df["click"].astype("float32")})
        if kind == "ESMM":
            return pd.DataFrame({"ctr": df["click"], "ctcvr": df["click"] * df["conversion"]}).astype("float32")
        return pd.DataFrame({"ctr": df["click"].astype("float32"),
                             "cvr": np.where(df["click"] == 1, df["conversion"], np.nan).astype("float32")})
    if kind == "DeepFM":     # CTR only: its FM term models the log's user x ad dot products
        model = DeepFM(enc.feature_columns, enc.feature_columns, dnn_hidden_units=(64, 32), task_names=["ctr"],
                       seed=seed)
    elif kind == "ESMM":
        model = ESMM(enc.feature_columns, tower_dnn_hidden_units=(64, 32), seed=seed)
    else:   # MMoE, or MMoE-FM: with DeepFM's wide part (linear + FM) added to each task's logit
        model = MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(64,),
                     tower_dnn_hidden_units=(32,), task_names=["ctr", "cvr"], seed=seed, use_fm=kind == "MMoE-FM")
    model.compile("adam", lr=2e-3, metrics=["logloss"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # MMoE: "some labels are NaN" (the CVR label off clicks)
        model.fit(x_tr, labels(tr), batch_size=1024, epochs=epochs, verbose=0, shuffle=True,
                  validation_data=(x_va, labels(va)),
                  callbacks=[EarlyStopping("val_logloss" if kind == "DeepFM" else "val_ctr_logloss", patience=1,
                                           restore_best_weights=True)])
    return model, time.perf_counter() - t0


def predict(kind: str, model, x, base_cvr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = model.predict(x)
    pcvr = model.predict_cvr(x) if kind == "ESMM" else base_cvr if kind == "DeepFM" else p[:, 1]
    return p[:, 0].astype(np.float64), np.clip(pcvr.astype(np.float64), 0.0, 1.0)


def fmt(values: list[float], digits: int = 4) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v[0]:.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def run(args) -> str:
    torch.set_num_threads(args.threads)
    log = make_ad_log(n_requests=args.requests, n_users=args.users, n_ads=args.ads, seed=0)
    tr, va, te = log.split((0.8, 0.1, 0.1), seed=0)
    enc = FeatureEncoder(sparse=list(log.sparse_features), dense=list(log.dense_features),
                         embedding_dim=8).fit(tr)
    x_tr, x_va, x_te = enc.transform(tr), enc.transform(va), enc.transform(te)
    truth = {"pctr": te["p_click"].to_numpy(), "pcvr": te["p_conv"].to_numpy()}
    rows: dict[str, list[dict[str, float]]] = {"oracle (true probabilities)": [score(te, **truth)]}
    base_ctr = smoothed_rate(tr["ad_id"], tr["click"], te["ad_id"])
    clicked = tr[tr["click"] == 1]
    base_cvr = smoothed_rate(clicked["advertiser_id"], clicked["conversion"], te["advertiser_id"])
    rows["baseline (ad CTR, advertiser CVR)"] = [score(te, base_ctr, base_cvr)]
    noisy = {}   # the truth blurred by Gaussian noise on the logits: how the replay degrades with the error
    for sigma in NOISE:
        rng = np.random.default_rng(int(sigma * 100))
        noisy[f"oracle + logit noise {sigma}"] = {k: _blur(v, sigma, rng) for k, v in truth.items()}
        rows[f"oracle + logit noise {sigma}"] = [score(te, **noisy[f"oracle + logit noise {sigma}"])]
    replays: dict[str, dict[str, list[pd.DataFrame]]] = {a: {} for a in AUCTIONS}
    fixed = {"oracle": truth, "ad-CTR baseline": {"pctr": base_ctr, "pcvr": base_cvr},
             "bid only": {"pctr": np.full(len(te), tr["click"].mean()),
                          "pcvr": np.full(len(te), clicked["conversion"].mean())}, **noisy}
    seconds: dict[str, list[float]] = {}
    for kind in args.models:
        for seed in range(args.seeds):
            model, sec = train(kind, enc, x_tr, tr, x_va, va, seed, args.epochs)
            seconds.setdefault(kind, []).append(sec)
            pctr, pcvr = predict(kind, model, x_te, base_cvr)
            rows.setdefault(kind, []).append(score(te, pctr, pcvr))
            for name, kw in AUCTIONS.items():
                pol = {**fixed, kind: {"pctr": pctr, "pcvr": pcvr}}
                if kw["bid_type"] == "cpc":
                    pol = {k: {"pctr": v["pctr"]} for k, v in pol.items()}
                replays[name].setdefault(kind, []).append(compare_replays(te, pol, **kw))
            print(f"{kind} seed {seed}: {rows[kind][-1]} ({sec:.0f} s)", file=sys.stderr, flush=True)

    df = log.impressions
    lines = [f"Log: `make_ad_log(n_requests={args.requests}, n_users={args.users}, n_ads={args.ads}, seed=0)`: "
             f"{len(df):,} candidate impressions ({df['click'].mean():.4f} click rate, "
             f"{df['conversion'].sum() / max(df['click'].sum(), 1):.4f} conversions per click); split by request "
             f"80/10/10: {len(tr):,} train, {len(va):,} validation, {len(te):,} test rows "
             f"({te['request_id'].nunique():,} test requests of {log.params['n_candidates']} candidates). Models: "
             f"MMoE (4 experts of (64,), towers (32,); MMoE-FM: with `use_fm=True`), ESMM (towers (64, 32)) and, where "
             f"run, DeepFM (CTR only, DNN (64, 32); its pCVR is the advertiser baseline's), embedding dim 8, Adam lr "
             f"2e-3, "
             f"batch 1024, at most {args.epochs} epochs with early stopping on the validation CTR logloss "
             f"(patience 1, best weights restored); {args.seeds} seed(s), mean ± std.",
             "", "**Prediction quality on the test requests** (CVR on clicked test impressions):", "",
             "| scorer | CTR AUC | CTR gAUC (user) | CTR logloss | CVR AUC | CVR logloss | CTCVR AUC | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res in rows.items():
        cells = [fmt([r[k] for r in res]) for k in ("ctr_auc", "ctr_gauc", "ctr_logloss", "cvr_auc", "cvr_logloss",
                                                      "ctcvr_auc")]
        sec = fmt(seconds[name], 0) if name in seconds else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sec} |")
    lines += ["", "**Auction replay on the test requests** (expected outcomes from the true probabilities; "
              "fractions of the oracle's; the oracle ranks by the true eCPM, which maximises the advertiser value "
              "(bid x expected billed events); GSP revenue depends on the runner-up and may exceed the oracle's):", "",
              "| auction | policy | revenue / oracle | clicks / oracle | conversions / oracle | advertiser value / "
              "oracle | oracle revenue | oracle clicks |", "|---|---|---|---|---|---|---|---|"]
    for name, per_model in replays.items():
        first = next(iter(per_model.values()))[0]
        o = first.loc["oracle"]
        for pol in [*args.models, "ad-CTR baseline", "bid only", *noisy]:
            tabs = per_model[pol] if pol in per_model else [first]
            cells = [fmt([t.loc[pol, f"{c}_vs_oracle"] for t in tabs], 3)
                     for c in ("revenue", "clicks", "conversions", "advertiser_value")]
            lines.append(f"| {name} | {pol} | " + " | ".join(cells) + f" | {o['revenue']:.1f} | {o['clicks']:.1f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared, load average {load:.1f} at the "
              f"end), {args.threads} thread(s); torch {torch.__version__}, Python {platform.python_version()}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--ads", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--models", nargs="+", default=["MMoE", "ESMM"], choices=["MMoE", "MMoE-FM", "ESMM", "DeepFM"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke test: 3,000 requests, 1 seed, 2 epochs")
    ap.add_argument("--write", action="store_true", help=f"update the adranking section of {RESULTS_MD.name}")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.users, args.ads, args.seeds, args.epochs = 3000, 300, 100, 1, 2
    cmd = "python benchmarks/ad_ranking.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:])
                                                         if a != "--write")
    text = f"`{cmd.strip()}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}):\n\n" + run(args)
    print(text)
    if args.write:
        from speed import write_section  # same folder: one implementation for every benchmark
        write_section(text, BEGIN, END, "## From pCTR to an auction: the synthetic ad log (issue #19)")
        print(f"updated {RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
