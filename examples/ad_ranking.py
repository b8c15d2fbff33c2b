"""From pCTR to an auction: train CTR and CVR on a synthetic ad log, replay the auction against the truth.

The whole prototype of an ad-ranking system, on a log whose true click and conversion probabilities are known
(:func:`ctrkit.datasets.make_ad_log`), so every number can be set against its ceiling:

1. generate the log (requests x candidate ads, with bids) and split it by request;
2. keep every click and a share of the non-clicks of the training requests (negative downsampling);
3. train an MMoE with a ``ctr`` task on every impression and a ``cvr`` task on clicked impressions (the CVR
   label is NaN elsewhere, which leaves those rows out of its loss and metrics); the model corrects its pCTR
   for the downsampling, then is calibrated (Platt scaling) on the validation requests;
4. evaluate AUC, gAUC by user, logloss, normalised entropy and calibration next to the oracle's (the true
   probabilities);
5. replay a second-price auction with 3 slots and position bias on the test requests: revenue, clicks and
   conversions of the model's eCPM ranking as fractions of the oracle's, next to an ad-CTR baseline and
   bid-only ranking;
6. save the model for serving and score a raw request's candidates with ``predict_records``.

    python examples/ad_ranking.py
    python examples/ad_ranking.py --requests 50000 --epochs 10 --out ad-mmoe

Prints the test metrics of both tasks with the oracle's, and the replay table.
"""
from __future__ import annotations

import argparse
import tempfile
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss, roc_auc_score

from ctrkit import EarlyStopping, FeatureEncoder, MMoE, load_model
from ctrkit.datasets import make_ad_log
from ctrkit.metrics import calibration_ratio, gauc, normalized_entropy
from ctrkit.preprocessing import downsample_negatives
from ctrkit.ranking import compare_replays, smoothed_rate


def labels(df: pd.DataFrame) -> pd.DataFrame:
    """CTR on every impression; CVR (conversion given click) only where there was a click, NaN elsewhere."""
    return pd.DataFrame({"ctr": df["click"].astype("float32"),
                         "cvr": np.where(df["click"] == 1, df["conversion"], np.nan).astype("float32")})


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000, help="requests in the log (10 candidates each)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--slots", type=int, default=3, help="ad slots per request in the replay")
    ap.add_argument("--out", default=None, help="directory to save the model in (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--negative-rate", type=float, default=0.25,
                    help="share of the training non-clicks kept (1: no downsampling)")
    ap.add_argument("--calibration", default="platt", choices=["isotonic", "platt", "temperature", "none"],
                    help="post-hoc calibration fitted on the validation requests")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    # 1. the log: one row per (request, candidate ad); p_click / p_conv are the truth, click / conversion labels
    log = make_ad_log(n_requests=args.requests, n_users=max(100, args.requests // 10),
                      n_ads=max(50, args.requests // 40), seed=args.seed)
    full_train, val, test = log.split((0.8, 0.1, 0.1), seed=args.seed)
    # 2. every click and a share of the non-clicks (the CVR task lives on clicks: it loses no row)
    train = downsample_negatives(full_train, "click", args.negative_rate, seed=args.seed)
    print(f"ad log: {len(log.impressions):,} candidate impressions of {args.requests:,} requests; "
          f"{len(train):,} training rows after keeping {args.negative_rate:g} of the non-clicks "
          f"(of {len(full_train):,}; {int(train['click'].sum()):,} clicks, "
          f"{int(train['conversion'].sum()):,} conversions), {len(test):,} test rows")

    # 3. features -> model; CTR and CVR as two tasks of one MMoE
    enc = FeatureEncoder(sparse=list(log.sparse_features), dense=list(log.dense_features), embedding_dim=8)
    enc.fit(train)
    model = MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(64,), tower_dnn_hidden_units=(32,),
                 task_names=["ctr", "cvr"], seed=args.seed)
    model.set_negative_sampling({"ctr": args.negative_rate})       # pCTR back on the full traffic
    model.compile("adam", lr=2e-3, metrics=["auc", "logloss", "gauc", "ne", "calibration_ratio"],
                  group_by="user_id")                               # gAUC: AUC per user, impression-weighted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # "some labels are NaN": the CVR label off clicks
        model.fit(train, labels(train), batch_size=1024, epochs=args.epochs, verbose=2,
                  validation_data=(val, labels(val)),
                  callbacks=[EarlyStopping("val_ctr_logloss", patience=1, restore_best_weights=True)])
    if args.calibration != "none":                      # on validation requests, never downsampled
        model.calibrate(val, labels(val), method=args.calibration)

    # 4. test metrics next to the oracle's (the true probabilities of the same rows)
    res = model.evaluate(test, labels(test))
    p = model.predict(test)
    pctr, pcvr = p[:, 0].astype(np.float64), np.clip(p[:, 1].astype(np.float64), 0.0, 1.0)
    clicked = test["click"].to_numpy() == 1
    oracle = {}
    for task, y_true, p_true, rows in (("ctr", test["click"], test["p_click"], slice(None)),
                                       ("cvr", test["conversion"], test["p_conv"], clicked)):
        y_t, p_t, users = y_true[rows], p_true[rows], test["user_id"][rows]
        oracle.update({f"{task}_auc": roc_auc_score(y_t, p_t), f"{task}_logloss": log_loss(y_t, p_t),
                       f"{task}_gauc": gauc(y_t, p_t, users), f"{task}_ne": normalized_entropy(y_t, p_t),
                       f"{task}_calibration_ratio": calibration_ratio(y_t, p_t)})
    for task in ("ctr", "cvr"):
        print(f"{task}: test AUC {res[f'{task}_auc']:.4f}  test gAUC {res[f'{task}_gauc']:.4f}  "
              f"test logloss {res[f'{task}_logloss']:.4f}  test NE {res[f'{task}_ne']:.4f}  "
              f"test calibration {res[f'{task}_calibration_ratio']:.3f}  (oracle: AUC {oracle[f'{task}_auc']:.4f}  "
              f"gAUC {oracle[f'{task}_gauc']:.4f}  logloss {oracle[f'{task}_logloss']:.4f}  "
              f"NE {oracle[f'{task}_ne']:.4f})")
    res.update({f"oracle_{k}": v for k, v in oracle.items()})

    # 5. the auction replay: GSP, top slots with position bias, outcomes from the true probabilities
    base = smoothed_rate(train["ad_id"], train["click"], test["ad_id"])     # each ad's smoothed training CTR
    policies = {"oracle": {"pctr": test["p_click"]}, "model": {"pctr": pctr}, "ad-CTR baseline": {"pctr": base},
                "bid only": {"score": test["bid"]}}
    bias = [0.7 ** j for j in range(args.slots)]
    table = compare_replays(test, policies, bid_type="cpc", pricing="second", slots=args.slots, position_bias=bias)
    cols = ["clicks", "conversions", "revenue", "revenue_vs_oracle", "clicks_vs_oracle", "conversions_vs_oracle",
            "advertiser_value_vs_oracle"]
    print(f"\nauction replay: {test['request_id'].nunique():,} test requests, CPC bids, second price, "
          f"{args.slots} slot(s), position bias {[round(b, 2) for b in bias]}, expected outcomes")
    print(table[cols].round(3).to_string())
    print(f"model: revenue {table.loc['model', 'revenue_vs_oracle']:.3f} of the oracle's, "
          f"clicks {table.loc['model', 'clicks_vs_oracle']:.3f}, advertiser value "
          f"{table.loc['model', 'advertiser_value_vs_oracle']:.3f}")
    # an oCPA auction ranks by bid x pCTR x pCVR and bills conversions
    ocpa = compare_replays(test, {"oracle": {"pctr": test["p_click"], "pcvr": test["p_conv"]},
                                  "model": {"pctr": pctr, "pcvr": pcvr}}, bid_type="ocpa", pricing="second")
    print(f"oCPA, 1 slot: model revenue {ocpa.loc['model', 'revenue_vs_oracle']:.3f}, conversions "
          f"{ocpa.loc['model', 'conversions_vs_oracle']:.3f} of the oracle's")
    res.update({f"{c}_vs_oracle": float(table.loc["model", f"{c}_vs_oracle"])
                for c in ("revenue", "clicks", "advertiser_value")})

    # 6. serving: the saved directory carries the encoder, so raw candidate records can be scored directly
    out = args.out or tempfile.mkdtemp(prefix="ad-mmoe-")
    model.save(out)
    request = test[test["request_id"] == test["request_id"].iloc[0]]
    records = request[list(log.feature_columns)].to_dict("records")
    served = load_model(out).predict_records(records)
    assert np.allclose(served, model.predict(request), atol=1e-5)
    best = int(np.argmax(request["bid"].to_numpy() * served[:, 0]))
    print(f"saved to {out}; served one request's {len(records)} candidates: the top eCPM is ad "
          f"{request['ad_id'].iloc[best]} (pCTR {served[best, 0]:.4f}, bid {request['bid'].iloc[best]:.2f})")
    return res


if __name__ == "__main__":
    main()
