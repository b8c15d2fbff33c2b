"""Negative downsampling with correction, and post-hoc calibration, on a synthetic ad log (issue #19, parts 2-3).

The log (``tests/calibration/adlog.py``) has known click probabilities: a logistic model with an effect per user,
ad and slot and a linear price term, about 4% clicks. Per seed:

* ``full``: a model trained on the whole training log;
* ``10% neg, corrected``: the same model trained on every click and 10% of the non-clicks
  (``downsample_negatives``), with ``set_negative_sampling({"click": 0.1})``;
* ``10% neg, uncorrected``: that model's raw predictions (the correction removed).

Every model stops on the validation log loss (an unsampled validation log; EarlyStopping with
restore_best_weights, ReduceLROnPlateau) and is scored on an unsampled test log: calibration ratio (sum of
predictions / clicks), the same against the known probabilities (``ratio vs p``: sum of predictions / sum of the
true click probabilities, free of label noise), log loss, NE, AUC, gAUC by user. Then each model is calibrated
on the validation log (isotonic, Platt, temperature) and its test ECE reported.

Usage: ``python benchmarks/ad_calibration.py [--seeds 3] [--train-rows 600000] [--model lr|dnn] [--write]``.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "tests" / "calibration"))
from adlog import make_ad_log  # noqa: E402  (the synthetic log with known probabilities)

from ctrkit import DNN, LR, EarlyStopping, FeatureEncoder, ReduceLROnPlateau  # noqa: E402
from ctrkit.metrics import (  # noqa: E402
    calibration_ratio,
    expected_calibration_error,
    gauc,
    log_loss,
    normalized_entropy,
    roc_auc,
)
from ctrkit.preprocessing import downsample_negatives  # noqa: E402

BEGIN, END = "<!-- adcal:begin -->", "<!-- adcal:end -->"
FEATS = ["user_id", "ad_id", "slot", "price"]
METHODS = ("isotonic", "platt", "temperature")


def scores(frame, p) -> dict[str, float]:
    y = frame.click.to_numpy()
    return {"ratio": calibration_ratio(y, p), "ratio_vs_p": float(p.sum() / frame.p_click.sum()),
            "logloss": log_loss(y, p), "ne": normalized_entropy(y, p), "auc": roc_auc(y, p),
            "gauc": gauc(y, p, frame.user_id.to_numpy()), "ece": expected_calibration_error(y, p)}


def train(a, enc, frame, va, rate: float | None, seed: int):
    if a.model == "lr":
        m = LR(enc.feature_columns, task_name="click", seed=seed)
    else:
        m = DNN(enc.feature_columns, dnn_hidden_units=(64, 32), task_name="click", seed=seed)
    m.compile("adam", lr=a.lr, metrics=["logloss"])
    if rate is not None:
        m.set_negative_sampling({"click": rate})   # validation metrics (and early stopping) on the full log
    t0 = time.perf_counter()
    h = m.fit(frame[FEATS], frame[["click"]], batch_size=a.batch_size, epochs=a.max_epochs, verbose=0, seed=seed,
              validation_data=(va[FEATS], va[["click"]]),
              callbacks=[EarlyStopping("val_logloss", patience=2, restore_best_weights=True),
                         ReduceLROnPlateau("val_logloss", factor=0.3, patience=0)])
    return m, len(h.history["loss"]), time.perf_counter() - t0


def run_seed(a, seed: int) -> dict:
    tr = make_ad_log(a.train_rows, seed=100 + seed)
    va = make_ad_log(a.val_rows, seed=200 + seed)
    te = make_ad_log(a.test_rows, seed=300 + seed)
    enc = FeatureEncoder(sparse=["user_id", "ad_id", "slot"], dense=["price"], embedding_dim=8).fit(tr[FEATS])
    sampled = downsample_negatives(tr, "click", a.rate, seed=seed)
    out: dict = {"seed": seed, "train_rows": len(tr), "sampled_rows": len(sampled), "ctr": float(tr.click.mean()),
                 "bayes_logloss": log_loss(te.click, te.p_click), "rows": {}}
    full, ep_full, s_full = train(a, enc, tr, va, None, seed)
    samp, ep_samp, s_samp = train(a, enc, sampled, va, a.rate, seed)
    x = te[FEATS]
    out["rows"]["full"] = {**scores(te, full.predict(x)[:, 0]), "epochs": ep_full, "fit_s": s_full}
    out["rows"]["corrected"] = {**scores(te, samp.predict(x)[:, 0]), "epochs": ep_samp, "fit_s": s_samp}
    samp_raw = samp.predict_logits(x)[:, 0]
    out["rows"]["uncorrected"] = {**scores(te, torch.sigmoid(samp_raw).numpy()), "epochs": ep_samp, "fit_s": s_samp}
    # post-hoc calibration on the validation log, ECE on the test log
    for name, model, rate in (("full", full, None), ("corrected", samp, a.rate), ("uncorrected", samp, None)):
        model.set_negative_sampling(None if rate is None else {"click": rate})
        for method in METHODS:
            model.calibrate(va[FEATS], va[["click"]], method=method)
            out["rows"][name][f"ece_{method}"] = expected_calibration_error(te.click, model.predict(x)[:, 0])
        model.calibrate(method=None)
    print(f"seed {seed}: " + "; ".join(f"{k}: ratio {v['ratio']:.4f} ll {v['logloss']:.5f} ece {v['ece']:.5f}"
                                       for k, v in out["rows"].items()), flush=True)
    return out


def table(a, runs: list[dict], command: str) -> str:
    def mean(row, key):
        vals = np.array([r["rows"][row][key] for r in runs], dtype=float)
        return vals.mean(), vals.std()

    full_ll = np.array([r["rows"]["full"]["logloss"] for r in runs])
    names = {"full": "full log", "corrected": f"{a.rate:.0%} neg, corrected",
             "uncorrected": f"{a.rate:.0%} neg, uncorrected"}
    lines = [f"Synthetic ad log with known click probabilities (`tests/calibration/adlog.py`): "
             f"{a.train_rows:,} training rows (about {np.mean([r['ctr'] for r in runs]):.1%} clicks; "
             f"{np.mean([r['sampled_rows'] for r in runs]):,.0f} after keeping {a.rate:.0%} of the non-clicks), "
             f"{a.val_rows:,} validation and {a.test_rows:,} test rows, both unsampled. Model: "
             f"{'LR' if a.model == 'lr' else 'DNN (64, 32)'}, Adam lr {a.lr}, batch {a.batch_size}, early stopping "
             f"on the validation log loss (patience 2, best weights), ReduceLROnPlateau(0.3). "
             f"Mean ± std over {len(runs)} seeds; the Bayes log loss (true probabilities) is "
             f"{np.mean([r['bayes_logloss'] for r in runs]):.5f}.", "",
             "| model | calibration ratio | ratio vs true p | log loss | vs full | NE | AUC | gAUC (user) | epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in ("full", "corrected", "uncorrected"):
        ll = np.array([r["rows"][row]["logloss"] for r in runs])
        rel = (ll / full_ll - 1) * 100
        cells = [f"{mean(row, k)[0]:.4f} ± {mean(row, k)[1]:.4f}" for k in ("ratio", "ratio_vs_p")]
        cells.append(f"{mean(row, 'logloss')[0]:.5f}")
        cells.append(f"{rel.mean():+.2f}% ({', '.join(f'{v:+.2f}' for v in rel)})")
        cells += [f"{mean(row, k)[0]:.4f}" for k in ("ne", "auc", "gauc")]
        cells.append(f"{mean(row, 'epochs')[0]:.1f}")
        lines.append(f"| {names[row]} | " + " | ".join(cells) + " |")
    lines += ["", "Post-hoc calibration (fitted on the validation log, after the correction where there is one); "
              "ECE (10 bins) on the test log, mean over seeds, and the calibrated / uncalibrated ratio:", "",
              "| model | ECE uncalibrated | isotonic | Platt | temperature |", "|---|---|---|---|---|"]
    for row in ("full", "corrected", "uncorrected"):
        base = mean(row, "ece")[0]
        cells = [f"{base:.5f}"] + [f"{mean(row, 'ece_' + m)[0]:.5f} ({mean(row, 'ece_' + m)[0] / base:.2f}x)"
                                   for m in METHODS]
        lines.append(f"| {names[row]} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{command}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
              f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
              f"torch.get_num_threads()={torch.get_num_threads()}, Python {platform.python_version()}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train-rows", type=int, default=600_000)
    p.add_argument("--val-rows", type=int, default=200_000)
    p.add_argument("--test-rows", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--model", choices=["lr", "dnn"], default="lr")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the per-seed results here")
    p.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    command = "python benchmarks/ad_calibration.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    runs = [run_seed(a, s) for s in range(a.seeds)]
    text = table(a, runs, command)
    print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(runs, indent=1))
    if a.write:
        from speed import write_section
        write_section(text, BEGIN.replace("adcal", f"adcal-{a.model}"), END.replace("adcal", f"adcal-{a.model}"),
                      f"## Negative downsampling with correction, and post-hoc calibration ({a.model.upper()}, "
                      "issue #19)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
