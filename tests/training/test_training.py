import math
import threading

import numpy as np
import pandas as pd
import pytest
import torch

from ctrkit import (
    CSVLogger,
    DataValidationError,
    EarlyStopping,
    LearningRateScheduler,
    LRScheduler,
    MMoE,
    ModelCheckpoint,
    TerminateOnNaN,
    load_model,
)
from ctrkit.callbacks import Callback


def make(enc, **kw):
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
             task_names=["finish", "like"], **kw)
    return m


def test_history_logs_and_validation_names(byterec_encoded):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam", metrics=["auc", "logloss"], loss_weights={"finish": 1.0, "like": 0.5})
    h = m.fit(df, y, batch_size=32, epochs=3, verbose=0, validation_split=0.25)
    for k in ("loss", "finish_loss", "like_loss", "finish_auc", "val_loss", "val_finish_auc", "val_like_logloss"):
        assert k in h.history and len(h.history[k]) == 3, k
    ev = m.evaluate(df, y)
    assert ev["loss"] == pytest.approx(ev["finish_loss"] + 0.5 * ev["like_loss"], rel=1e-5)
    # evaluate's AUC is the whole-set AUC of predict (not a mean over batches)
    from sklearn.metrics import roc_auc_score
    assert ev["like_auc"] == pytest.approx(roc_auc_score(y["like"], m.predict(df, batch_size=7)[:, 1]), abs=1e-6)


def test_target_formats_are_equivalent(byterec_encoded):
    enc, df, y = byterec_encoded
    results = []
    for target in (y, {"finish": y["finish"].to_numpy(), "like": y["like"].to_numpy()}, y.to_numpy()):
        m = make(enc)
        m.compile("adam")
        m.fit(df, target, batch_size=64, epochs=1, verbose=0)
        results.append(m.predict(df))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_early_stopping_restores_best(byterec_encoded):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam", lr=0.05, metrics=["auc"])
    es = EarlyStopping("val_finish_auc", patience=1, restore_best_weights=True)
    assert es.mode == "max" and EarlyStopping("val_like_logloss").mode == "min"
    h = m.fit(df, y, batch_size=16, epochs=40, verbose=0, validation_split=0.3, callbacks=[es])
    assert len(h.epoch) < 40
    best = max(h.history["val_finish_auc"])
    val = df.iloc[int(len(df) * 0.7):]
    assert m.evaluate(val, y.iloc[int(len(df) * 0.7):])["finish_auc"] == pytest.approx(best, abs=1e-6)
    with pytest.raises(ValueError, match="cannot infer"):
        EarlyStopping("val_something")


def test_checkpoint_csv_and_lr_callbacks(byterec_encoded, tmp_path):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam", lr=0.01, metrics=["auc"])
    seen = []
    sched = LRScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    cbs = [ModelCheckpoint(str(tmp_path / "best"), monitor="val_finish_auc", save_best_only=True),
           CSVLogger(str(tmp_path / "log.csv")), sched,
           LearningRateScheduler(lambda e, lr: lr) ]
    m.fit(df, y, batch_size=32, epochs=3, verbose=0, validation_split=0.2, callbacks=cbs)
    assert load_model(str(tmp_path / "best")).predict(df).shape == (len(df), 2)
    log = pd.read_csv(tmp_path / "log.csv")
    assert len(log) == 3 and "val_finish_auc" in log.columns
    assert log["lr"].tolist() == pytest.approx([0.01, 0.005, 0.0025])

    class Counter(Callback):
        def on_train_batch_end(self, step, logs=None):
            seen.append(float(logs["loss"]))
    m.fit(df, y, batch_size=50, epochs=1, verbose=0, callbacks=[Counter()])
    assert len(seen) == 4 and all(math.isfinite(v) for v in seen)


def test_terminate_on_nan_names_epoch_and_step(byterec_encoded, tmp_path):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("sgd", lr=1e30)
    with pytest.warns(RuntimeWarning, match=r"epoch 1, step \d+"):
        h = m.fit(df, y, batch_size=16, epochs=5, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(h.epoch) <= 1


def test_divergence_without_callback_stops_with_message(byterec_encoded):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("sgd", lr=1e30)
    with pytest.warns(RuntimeWarning, match="training loss became"):
        h = m.fit(df, y, batch_size=16, epochs=5, verbose=0)
    assert len(h.epoch) == 1


def test_sample_weight_zero_rows_are_ignored(byterec_encoded):
    enc, df, y = byterec_encoded
    w = np.ones(len(df))
    w[100:] = 0
    a, b = make(enc), make(enc)
    for m in (a, b):
        m.compile("sgd", lr=0.1)
    a.fit(df, y, batch_size=len(df), epochs=2, verbose=0, sample_weight=w, shuffle=False)
    yb = y.copy()
    yb.iloc[100:] = 1 - yb.iloc[100:]           # flipped labels carry zero weight: no effect
    b.fit(df, yb, batch_size=len(df), epochs=2, verbose=0, sample_weight=w, shuffle=False)
    np.testing.assert_allclose(a.predict(df), b.predict(df), atol=1e-6)


def test_missing_labels_are_masked(byterec_encoded):
    enc, df, y = byterec_encoded
    y2 = y.copy()
    y2.loc[y2.index[::2], "like"] = np.nan
    m = make(enc)
    m.compile("adam", metrics=["auc"])
    with pytest.warns(UserWarning, match="NaN"):
        h = m.fit(df, y2, batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(h.history["loss"]).all() and np.isfinite(h.history["like_auc"]).all()


def test_verbose_modes(byterec_encoded, capsys):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam", metrics=["auc"])
    m.fit(df, y, batch_size=64, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "finish_auc" in out
    m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    m.fit(df, y, batch_size=64, epochs=1, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().err            # tqdm writes to stderr


def test_concurrent_fit_is_refused(byterec_encoded):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam")
    errors = []
    started = threading.Event()

    class Slow(Callback):
        def on_epoch_end(self, epoch, logs=None):
            started.set()
            threading.Event().wait(0.3)

    t = threading.Thread(target=lambda: m.fit(df, y, batch_size=64, epochs=2, verbose=0, callbacks=[Slow()]))
    t.start()
    started.wait(10)
    try:
        m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    except RuntimeError as e:
        errors.append(str(e))
    t.join()
    assert errors and "already being trained" in errors[0]


def test_fit_does_not_touch_global_rng(byterec_encoded):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam")
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("kwargs, text", [
    (dict(batch_size=0), "batch_size must be an int >= 1"),
    (dict(validation_split=1.0), "validation_split must be a float in"),
    (dict(epochs=-1), "epochs must be an int >= 0"),
])
def test_bad_fit_arguments(byterec_encoded, kwargs, text):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam")
    with pytest.raises(ValueError, match=text):
        m.fit(df, y, verbose=0, **kwargs)


def test_bad_targets(byterec_encoded):
    enc, df, y = byterec_encoded
    m = make(enc)
    m.compile("adam")
    with pytest.raises(DataValidationError, match="unknown task"):
        m.fit(df, {"finish": y["finish"], "likes": y["like"]}, verbose=0)
    with pytest.raises(DataValidationError, match="labels must be 0 or 1"):
        m.fit(df, y + 1, verbose=0)
    with pytest.raises(DataValidationError, match=r"index does not match x.s index \(10 labels vs 200"):
        m.fit(df, y.iloc[:10], verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        make(enc).fit(df, y)
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        m.compile("adma")


def test_label_prior_per_task_type():
    """The prior each task type starts from: log-odds, mean, centred log frequencies; NaN and weights honoured."""
    from ctrkit.models.base import label_prior
    y = torch.tensor([1.0, 0.0, 0.0, 0.0, float("nan")])
    assert float(label_prior(y, "binary")) == pytest.approx(np.log(0.25 / 0.75), abs=1e-6)
    w = torch.tensor([3.0, 1.0, 1.0, 1.0, 5.0])                      # weighted rate 3/6
    assert float(label_prior(y, "binary", sample_weight=w)) == pytest.approx(0.0, abs=1e-6)
    assert float(label_prior(torch.tensor([1.0, 2.0, 6.0]), "regression")) == pytest.approx(3.0)
    mc = label_prior(torch.tensor([0.0, 0.0, 1.0, 2.0]), "multiclass", num_classes=3)
    np.testing.assert_allclose(torch.softmax(mc, 0).numpy(), [0.5, 0.25, 0.25], atol=1e-6)
    assert label_prior(torch.tensor([float("nan")]), "binary") is None
    assert float(label_prior(torch.zeros(10), "binary")) == pytest.approx(np.log(1e-4 / (1 - 1e-4)), rel=1e-4)


def test_output_bias_prior_from_a_store(tmp_path):
    """Training from an on-disk store starts from the labels' prior too (read from the store's label array)."""
    from ctrkit import FeatureEncoder
    from ctrkit.data import open_store, write_store
    from ctrkit.datasets import census_feature_types, load_census_income
    X, y = load_census_income(group=1)
    X, y = X.iloc[:3000], y.iloc[:3000].astype("float32")
    sparse, dense = census_feature_types()
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(X)
    path = write_store(str(tmp_path / "c.h5"), X, y[["income", "marital"]], enc.feature_columns)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=["income", "marital"])
    m.compile("sgd", lr=1e-12)
    with open_store(path) as store:
        m.fit(store, batch_size=512, epochs=1, verbose=0)
    rates = y[["income", "marital"]].mean().to_numpy()
    got = [float(m.output_biases()[t].detach()) for t in ("income", "marital")]
    np.testing.assert_allclose(got, np.log(rates / (1 - rates)), atol=1e-4)


def test_predict_from_another_thread_during_fit_is_refused_and_leaves_training_mode():
    """Inference never switches a module that ``fit`` is training to eval mode: ``predict`` / ``evaluate`` from
    another thread while ``fit`` runs raise a RuntimeError saying what to do; from a callback (the fit's own
    thread) they work and the module is back in training mode for the next step."""
    import threading

    from ctrkit import MMoE, SparseFeat
    from ctrkit.callbacks import Callback

    rng = np.random.default_rng(0)
    x = {"u": rng.integers(0, 20, 512)}
    y = {"a": rng.integers(0, 2, 512), "b": rng.integers(0, 2, 512)}
    model = MMoE([SparseFeat("u", 20, 4)], num_experts=2, expert_dnn_hidden_units=(8,), dnn_dropout=0.5,
                 task_names=["a", "b"])
    model.compile("adam", metrics=["auc"])
    seen: dict = {"errors": [], "modes": [], "same_thread": None}

    class Probe(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch != 1:
                return
            def other():
                for call in (lambda: model.predict(x), lambda: model.evaluate(x, y)):
                    try:
                        call()
                    except RuntimeError as e:
                        seen["errors"].append(str(e))
            t = threading.Thread(target=other)
            t.start()
            t.join()
            seen["modes"].append(model.training)
            seen["same_thread"] = model.predict(x).shape
            seen["modes"].append(model.training)

    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[Probe()])
    assert len(seen["errors"]) == 2 and all("another thread" in e for e in seen["errors"]), seen["errors"]
    assert seen["modes"] == [True, True]
    assert seen["same_thread"] == (512, 2)
    assert model.predict(x).shape == (512, 2)   # after fit: fine from any thread
