"""From pCTR to an auction: train CTR and CVR on a synthetic ad log, replay the auction against the truth.

The whole prototype of an ad-ranking system, on a log whose true click and conversion probabilities are known
(:func:`ctrkit.datasets.make_ad_log`), so every number can be set against its ceiling:

1. generate the log (requests x candidate ads, with bids) and split it by request;
2. train an MMoE with a ``ctr`` task on every impression and a ``cvr`` task on clicked impressions (the CVR
   label is NaN elsewhere, which leaves those rows out of its loss and metrics);
3. evaluate AUC and logloss next to the oracle's (the true probabilities);
4. replay a second-price auction with 3 slots and position bias on the test requests: revenue, clicks and
   conversions of the model's eCPM ranking as fractions of the oracle's, next to an ad-CTR baseline and
   bid-only ranking;
5. save the model for serving and score a raw request's candidates with ``predict_records``.

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
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    # 1. the log: one row per (request, candidate ad); p_click / p_conv are the truth, click / conversion labels
    log = make_ad_log(n_requests=args.requests, n_users=max(100, args.requests // 10),
                      n_ads=max(50, args.requests // 40), seed=args.seed)
    train, val, test = log.split((0.8, 0.1, 0.1), seed=args.seed)
    # TODO(lead, after the merge of `adcal`): downsample the negatives of the training set and tell the model,
    # so that its pCTR stays calibrated on the full traffic:
    #     train = ctrkit.preprocessing.downsample_negatives(train, "click", 0.1, seed=args.seed)
    #     ... and after building the model: model.set_negative_sampling({"ctr": 0.1})
    print(f"ad log: {len(log.impressions):,} candidate impressions of {args.requests:,} requests; "
          f"{len(train):,} training rows ({int(train['click'].sum()):,} clicks, "
          f"{int(train['conversion'].sum()):,} conversions), {len(test):,} test rows")

    # 2. features -> model; CTR and CVR as two tasks of one MMoE
    enc = FeatureEncoder(sparse=list(log.sparse_features), dense=list(log.dense_features), embedding_dim=8)
    enc.fit(train)
    model = MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(64,), tower_dnn_hidden_units=(32,),
                 task_names=["ctr", "cvr"], seed=args.seed)
    # TODO(lead, after the merge of `adcal`): group-wise metrics, normalised entropy and calibration:
    #     model.compile("adam", lr=2e-3, metrics=["auc", "logloss", "gauc", "ne", "calibration_ratio", "ece"],
    #                   group_by="user_id")
    model.compile("adam", lr=2e-3, metrics=["auc", "logloss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # "some labels are NaN": the CVR label off clicks
        model.fit(train, labels(train), batch_size=1024, epochs=args.epochs, verbose=2,
                  validation_data=(val, labels(val)),
                  callbacks=[EarlyStopping("val_ctr_logloss", patience=1, restore_best_weights=True)])
    # TODO(lead, after the merge of `adcal`): calibrate on the validation requests before evaluating:
    #     model.calibrate(val, labels(val), method="isotonic")

    # 3. test metrics next to the oracle's (the true probabilities of the same rows)
    res = model.evaluate(test, labels(test))
    p = model.predict(test)
    pctr, pcvr = p[:, 0].astype(np.float64), np.clip(p[:, 1].astype(np.float64), 0.0, 1.0)
    clicked = test["click"].to_numpy() == 1
    oracle = {"ctr_auc": roc_auc_score(test["click"], test["p_click"]),
              "ctr_logloss": log_loss(test["click"], test["p_click"]),
              "cvr_auc": roc_auc_score(test["conversion"][clicked], test["p_conv"][clicked]),
              "cvr_logloss": log_loss(test["conversion"][clicked], test["p_conv"][clicked])}
    # TODO(lead, after the merge of `adcal`): the oracle's and the model's gAUC by user and NE, e.g.
    #     ctrkit.metrics.gauc(test["click"], pctr, test["user_id"]),
    #     ctrkit.metrics.normalized_entropy(test["click"], pctr), ctrkit.metrics.calibration_ratio(...)
    for task in ("ctr", "cvr"):
        print(f"{task}: test AUC {res[f'{task}_auc']:.4f}  test logloss {res[f'{task}_logloss']:.4f}  "
              f"(oracle: AUC {oracle[f'{task}_auc']:.4f}  logloss {oracle[f'{task}_logloss']:.4f})")
    res.update({f"oracle_{k}": v for k, v in oracle.items()})

    # 4. the auction replay: GSP, top slots with position bias, outcomes from the true probabilities
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

    # 5. serving: the saved directory carries the encoder, so raw candidate records can be scored directly
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
