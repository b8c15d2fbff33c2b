"""Sequential recommendation: leave-one-out data, full-ranking metrics, SASRec and FAME (their conformance)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from test_conformance import SMALL

from ctrkit import load_model
from ctrkit.data import TensorData
from ctrkit.datasets import load_movielens_sequences
from ctrkit.metrics import history_mask, ranking_metrics
from ctrkit.models.sequential import SASRec, leave_one_out, pad_left, training_windows
from ctrkit.registry import MODELS

SEQUENTIAL = sorted(n for n, c in MODELS.items() if getattr(c, "sequential", False))


@pytest.fixture(scope="module")
def ml_split():
    d = load_movielens_sequences()
    return d, leave_one_out(d["sequences"], d["num_items"])


def small(name, num_items, **kw):
    return MODELS[name](num_items=num_items, **dict(SMALL[name], **kw))


# ------------------------------------------------------------------------------------------------ metrics
def brute_force(scores, target, k, exclude=(), order="average"):
    """HR@k / NDCG@k by sorting every ordering of the items tied with the target (averaged for 'average')."""
    items = [i for i in range(len(scores)) if i == target or i not in exclude]
    ahead = [i for i in items if scores[i] > scores[target]]
    tied = [i for i in items if scores[i] == scores[target]]
    outcomes = []
    for perm in itertools.permutations(tied):
        rank = len(ahead) + perm.index(target)
        outcomes.append((float(rank < k), 1.0 / math.log2(rank + 2) if rank < k else 0.0))
    if order == "pessimistic":
        rank = len(ahead) + len(tied) - 1
        return float(rank < k), (1.0 / math.log2(rank + 2) if rank < k else 0.0)
    if order == "optimistic":
        rank = len(ahead)
        return float(rank < k), (1.0 / math.log2(rank + 2) if rank < k else 0.0)
    return tuple(np.mean(outcomes, axis=0))


@pytest.mark.parametrize("ties", ["average", "pessimistic", "optimistic"])
def test_ranking_metrics_match_brute_force_with_ties_and_exclusion(ties):
    rng = np.random.default_rng(0)
    n, V = 40, 7
    scores = rng.integers(0, 4, (n, V)).astype(np.float32)      # few distinct values: many ties
    targets = rng.integers(0, V, n)
    excl = [set(rng.choice(V, rng.integers(0, 3), replace=False).tolist()) for _ in range(n)]
    mask = torch.zeros(n, V, dtype=torch.bool)
    for i, e in enumerate(excl):
        mask[i, list(e)] = True
    for k in (1, 3, 5):
        got = ranking_metrics(torch.from_numpy(scores), torch.from_numpy(targets), [k], exclude=mask, ties=ties)
        ref = np.mean([brute_force(scores[i], targets[i], k, excl[i], ties) for i in range(n)], axis=0)
        assert got[f"hr@{k}"] == pytest.approx(ref[0], abs=1e-9)
        assert got[f"ndcg@{k}"] == pytest.approx(ref[1], abs=1e-9)


def test_ranking_metrics_constant_scores_and_errors():
    s = torch.zeros(2, 100)
    t = torch.tensor([3, 50])
    assert ranking_metrics(s, t, [10], ties="pessimistic")["hr@10"] == 0.0
    assert ranking_metrics(s, t, [10], ties="optimistic")["hr@10"] == 1.0
    assert ranking_metrics(s, t, [10])["hr@10"] == pytest.approx(0.1)          # random order: 10 of 100
    with pytest.raises(ValueError, match="ties must be one of"):
        ranking_metrics(s, t, ties="random")
    with pytest.raises(ValueError, match=r"expected scores \(n, V\) and targets \(n,\)"):
        ranking_metrics(s, t[:1])


def test_history_mask_excludes_seen_items_but_never_the_target():
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0]])
    m = history_mask([np.array([1, 3])], 4)
    assert m.tolist() == [[False, True, False, True]]
    assert ranking_metrics(scores, torch.tensor([2]), [1], exclude=m)["hr@1"] == 1.0   # item 1 left out
    assert ranking_metrics(scores, torch.tensor([1]), [1], exclude=m)["hr@1"] == 1.0   # the target stays in


# ------------------------------------------------------------------------------------------------ data
def test_leave_one_out_on_movielens(ml_split):
    d, sp = ml_split
    assert len(sp.train) == len(sp.valid) == len(sp.test) == 943 and sp.num_items == 1682
    for u, tr, vh, th, vt, tt in zip(sp.users, sp.train, sp.valid.histories, sp.test.histories, sp.valid.targets,
                                     sp.test.targets):
        s = d["sequences"][u]
        assert tt == s[-1] and vt == s[-2]
        np.testing.assert_array_equal(tr, s[:-2])
        np.testing.assert_array_equal(vh, s[:-2])
        np.testing.assert_array_equal(th, s[:-1])
        assert np.all(np.diff(d["timestamps"][u]) >= 0)             # time order
    # ML-100K has one rating per (user, item): excluding the history can never exclude the target
    assert not any(t in set(h.tolist()) for h, t in zip(sp.test.histories, sp.test.targets))
    assert sum(len(t) for t in sp.train) + 2 * 943 == 100_000
    x, y = training_windows(sp.train, 50)
    assert (y != 0).sum() == sum(len(t) - 1 for t in sp.train)     # every training target once per epoch
    assert np.all((x != 0) | (y == 0))                              # a target only where there is an input


def test_data_errors_name_the_problem():
    with pytest.raises(ValueError, match="item ids start at 1"):
        leave_one_out([[0, 1, 2]])
    with pytest.raises(ValueError, match="min_len must be >= 3"):
        leave_one_out([[1, 2, 3]], min_len=2)
    m = SASRec(num_items=5, **SMALL["SASRec"])
    with pytest.raises(ValueError, match=r"item ids must lie in \[1, 5\]"):
        m.predict([[1, 9]])
    with pytest.raises(RuntimeError, match="call model.compile"):
        m.fit([np.array([1, 2, 3])])


# ------------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_causal_future_items_do_not_change_earlier_positions(name):
    m = small(name, 30, dropout=0.0).eval()
    a = torch.tensor([[0, 0, 3, 7, 9, 11, 2, 5]])
    b = a.clone()
    b[0, 5:] = torch.tensor([29, 28, 27])                            # change the future of position 4
    with torch.no_grad():
        sa, sb = m.states(a), m.states(b)
    torch.testing.assert_close(sa[:, :5], sb[:, :5])
    assert not torch.allclose(sa[:, 5:], sb[:, 5:])


def test_fame_gate_and_router_weights_sum_to_one():
    m = small("FAME", 30).eval()
    seqs = [np.array([1, 2, 3]), np.array([4, 5, 6, 7, 8]), np.array([9])]
    g = m.gate_weights(seqs)
    assert g.shape == (3, 2) and torch.all(g > 0)
    torch.testing.assert_close(g.sum(1), torch.ones(3))
    seq = torch.from_numpy(pad_left(seqs, 20))
    with torch.no_grad():
        _, beta = m.facet_attention(m.encode(seq), __import__("ctrkit.layers.transformer",
                                                              fromlist=["causal_mask"]).causal_mask(seq))
    torch.testing.assert_close(beta.sum(-1), torch.ones_like(beta.sum(-1)))
    p = m.predict(seqs)                                              # the mixture is a distribution over items
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert np.all(p[:, 0] == 0)                                      # padding is never recommended


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_short_training_beats_random_and_popularity_on_validation(name, ml_split):
    _, sp = ml_split
    m = small(name, sp.num_items, dropout=0.1)
    m.compile("adam", lr=5e-3, num_negatives=128)
    recent = [t[-30:] for t in sp.train]                             # every user's 30 latest training items
    h = m.fit(recent, validation_data=sp.valid, batch_size=128, epochs=2, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    counts = np.bincount(np.concatenate(sp.train), minlength=sp.num_items + 1).astype(np.float32)
    counts[0] = -np.inf
    pop = ranking_metrics(torch.from_numpy(counts).expand(len(sp.valid), -1).clone(),
                          torch.from_numpy(sp.valid.targets), [10],
                          exclude=history_mask(sp.valid.histories, sp.num_items + 1))
    random_hr = 10 / sp.num_items                                    # expected HR@10 of a random ranking
    assert h.history["val_hr@10"][-1] > 2 * random_hr, h.history["val_hr@10"]
    if name == "SASRec":   # two tiny epochs already reach the popularity baseline (FAME's 8-dim facets are slower)
        assert h.history["val_hr@10"][-1] > 0.8 * pop["hr@10"], (h.history["val_hr@10"], pop)


# ------------------------------------------------------------------------------------------------ conformance
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_sequential_conformance_batch_of_one_save_load_seed(name, ml_split, tmp_path):
    _, sp = ml_split
    train = sp.train[:60]
    m = small(name, sp.num_items, seed=7)
    m.compile("adam", lr=3e-3, metrics=["hr@10", "ndcg@10"])
    out = m(TensorData(None, None, {"item_seq": torch.tensor([[0] * 17 + [1, 2, 3]])}))
    assert list(out) == ["next_item"] and out["next_item"].shape == (1, sp.num_items + 1)
    assert torch.isinf(out["next_item"][0, 0]) and torch.isfinite(out["next_item"][0, 1:]).all()
    assert m.predict([np.array([5])]).shape == (1, sp.num_items + 1)            # batch of one, history of one
    h = m.fit(train[:2], batch_size=1, epochs=1, verbose=0, validation_data=sp.valid)  # batches of one window
    assert np.isfinite(h.history["loss"]).all() and set(h.history) >= {"val_hr@10", "val_ndcg@10", "val_loss"}
    m.fit(train, batch_size=100_000, epochs=1, verbose=0)                           # batch larger than the data
    m.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    assert type(back) is type(m) and back.ranking_metrics == ["hr@10", "ndcg@10"]
    np.testing.assert_array_equal(back.predict(sp.test.histories[:50]), m.predict(sp.test.histories[:50]))
    assert back.evaluate(sp.test) == m.evaluate(sp.test)
    states = []
    for _ in range(2):                                                           # same seed: same weights
        mm = small(name, sp.num_items, seed=11)
        mm.compile("adam", lr=3e-3, num_negatives=32)
        mm.fit(train, batch_size=32, epochs=1, verbose=0)
        states.append(mm.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    other = small(name, sp.num_items, seed=12).state_dict()
    assert any(not torch.equal(states[0][k], other[k]) for k in states[0] if states[0][k].is_floating_point())


def test_recommend_leaves_out_history():
    m = small("SASRec", 30).eval()
    hist = [np.array([1, 2, 3, 4]), np.array([5])]
    rec = m.recommend(hist, k=5)
    assert rec.shape == (2, 5)
    assert not set(rec[0]) & {0, 1, 2, 3, 4} and not set(rec[1]) & {0, 5}


# ------------------------------------------------------------------------------------------------ comparison command
def test_compare_command_rejects_unknown_models(capsys):
    from ctrkit.cli import main
    assert main(["compare", "--data", "movielens-seq", "--models", "SASRec,GRU4Rec", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "GRU4Rec" in err and "SASRec" in err and "FAME" in err


def test_sequential_report_has_table_csv_and_gate_plot(tmp_path):
    from ctrkit.compare.sequential import SeqCompareConfig, SeqComparisonResult, write_sequential_report
    rng = np.random.default_rng(0)
    res = SeqComparisonResult(SeqCompareConfig(seeds=2), popularity={"hr@10": .05, "ndcg@10": .02, "hr@20": .08,
                                                                     "ndcg@20": .03})
    for seed in (0, 1):
        for name, base in (("SASRec", 0.05), ("FAME", 0.06)):
            res.runs.append({"model": name, "seed": seed, "hr@10": 2 * base, "ndcg@10": base + seed / 100,
                             "hr@20": 3 * base, "ndcg@20": 1.2 * base, "val_ndcg@10": base, "best_epoch": 3,
                             "epochs": 5, "seconds": 10.0, "params": 1000})
            res.curves[(name, seed)] = [0.01, base, base]
        g = rng.random((20, 2))
        res.gates[seed] = g / g.sum(1, keepdims=True)
    st = res.summary()
    assert st["SASRec"]["ndcg@10"] == pytest.approx((0.055, 0.005))         # mean and std over seeds
    paths = write_sequential_report(res, str(tmp_path / "rep"), command="ctrkit compare --data movielens-seq")
    names = {p.split("/")[-1] for p in paths}
    assert names == {"report.md", "results.csv", "validation_ndcg.png", "gate_weights_FAME.png"}
    report = open(paths[0]).read()
    assert "0.0550 ± 0.0050" in report and "Popularity" in report and "mean per head" in report
