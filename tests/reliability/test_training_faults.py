"""Training faults: a diverged fit, a fit interrupted from a callback, a model whose weights hold NaN.

Nothing is left silently wrong: a diverged fit restores the last finite weights and says so, ``save`` refuses and
``predict`` raises on non-finite weights, and an interrupted fit leaves the model consistent and resumable.
"""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from _helpers import two_task_data

from ctrkit import DNN, LR, BackupAndRestore, DenseFeat, MMoE, SparseFeat, TerminateOnNaN, load_model, save_model
from ctrkit.callbacks import Callback, LearningRateScheduler, ModelCheckpoint

N = 512


pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=N, seed=0):
    return two_task_data(n, seed)


COLS = [SparseFeat("u", 30, 4), SparseFeat("i", 20, 4), DenseFeat("d", 1)]


def make(kind="MMoE", dropout=0.0):
    if kind == "MMoE":
        return MMoE(COLS, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
                    dnn_dropout=dropout, task_names=["a", "b"], seed=1)
    return DNN(COLS, dnn_hidden_units=(8,), dnn_dropout=dropout, task_names=["a"], seed=1)


def targets(model, y):
    return {t: y[t] for t in model.task_names}


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def all_finite(model):
    return all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point())


# ------------------------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("kind", ["MMoE", "DNN"])
@pytest.mark.parametrize("terminate", [False, True], ids=["no-callback", "TerminateOnNaN"])
def test_divergence_in_first_epoch_restores_the_initial_weights(kind, terminate):
    x, y = data()
    m = make(kind)
    m.compile("sgd", lr=1e30, init_output_bias=False)
    before = state(m)
    with pytest.warns(RuntimeWarning, match="restored to those of the start of this fit"):
        h = m.fit(x, targets(m, y), batch_size=32, epochs=3, verbose=0,
                  callbacks=[TerminateOnNaN()] if terminate else [])
    assert len(h.epoch) == 1 and not np.isfinite(h.history["loss"][0])
    same(before, state(m))
    assert "restored" in m.stop_reason and m.stop_reason.startswith("TerminateOnNaN" if terminate else "fit:")
    p = m.predict(x)
    assert np.isfinite(p).all() and p.shape == (N, len(m.task_names))


def test_divergence_after_good_epochs_restores_the_last_good_epoch(tmp_path):
    x, y = data()
    m = make()
    m.compile("sgd", lr=0.01)
    seen = {}

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                seen["after_2"] = state(self.model)

    sched = LearningRateScheduler(lambda epoch, lr: 1e30 if epoch == 2 else 0.01)
    with pytest.warns(RuntimeWarning, match="in epoch 3; training stopped and the weights were restored to those "
                                            "of the end of epoch 2"):
        h = m.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[Keep(), sched])
    assert len(h.epoch) == 3 and np.isfinite(h.history["loss"][:2]).all()
    same(seen["after_2"], state(m))
    m.save(str(tmp_path / "m"))                                   # finite again: it saves, and loads the same
    np.testing.assert_array_equal(load_model(str(tmp_path / "m")).predict(x), m.predict(x))


def test_restored_model_trains_again():
    x, y = data()
    m = make()
    m.compile("sgd", lr=1e30)
    with pytest.warns(RuntimeWarning, match="restored"):
        m.fit(x, y, batch_size=32, epochs=2, verbose=0)
    m.compile("adam", lr=1e-2)
    h = m.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(h.history["loss"]).all() and m.stop_reason is None and all_finite(m)


def test_weights_turned_nan_with_a_finite_loss_are_caught_too():
    """The last step's update can make the weights NaN although every loss was finite: caught at epoch end."""
    x, y = data()
    m = make()
    m.compile("adam", lr=1e-2)
    seen = {}

    class Poison(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                seen["after_1"] = state(self.model)

        def on_train_batch_end(self, step, logs=None):
            if len(seen) == 1 and step == self.params["steps"] - 1:
                with torch.no_grad():
                    next(iter(self.model.parameters())).fill_(float("nan"))

    with pytest.warns(RuntimeWarning, match=r"weights became NaN or infinite \('embedding"):
        h = m.fit(x, y, batch_size=64, epochs=4, verbose=0, callbacks=[Poison()])
    assert len(h.epoch) == 2 and np.isfinite(h.history["loss"]).all()
    same(seen["after_1"], state(m))
    assert "end of epoch 1" in m.stop_reason


def test_checkpoints_written_during_a_diverging_fit_load_and_predict_finite(tmp_path):
    x, y = data()
    m = make()
    m.compile("sgd", lr=0.01)
    sched = LearningRateScheduler(lambda epoch, lr: 1e30 if epoch == 1 else 0.01)
    path = str(tmp_path / "ck-{epoch}")
    with pytest.warns(RuntimeWarning, match="restored"):
        m.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[sched, ModelCheckpoint(path, monitor="loss")])
    for d in os.listdir(tmp_path):
        assert np.isfinite(load_model(str(tmp_path / d)).predict(x)).all(), d


# ------------------------------------------------------------------------------ non-finite weights at rest
def poisoned(value, kind="MMoE"):
    m = make(kind)
    m.compile("adam")
    name, p = next((n, p) for n, p in m.named_parameters() if "tower" in n or "dnn" in n)
    with torch.no_grad():
        p.view(-1)[0] = value
    return m, name


VALUES = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("value", VALUES, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("how", ["model.save", "ctrkit.save_model"])
def test_save_refuses_non_finite_weights_and_writes_nothing(tmp_path, value, how):
    m, name = poisoned(value)
    path = str(tmp_path / "m")
    with pytest.raises(RuntimeError, match=rf"parameter\(s\) \['{name}'\] hold NaN or infinite values"):
        m.save(path) if how == "model.save" else save_model(m, path)
    assert not os.path.exists(path)


@pytest.mark.parametrize("value", VALUES, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("call", ["predict", "predict_logits"])
def test_predict_raises_on_non_finite_weights(value, call):
    m, name = poisoned(value)
    x, _ = data(16)
    with pytest.raises(RuntimeError, match=rf"predict: the model's weights hold NaN or infinite values \('{name}'"):
        getattr(m, call)(x)


def test_predict_records_raises_on_non_finite_weights(byterec_encoded):
    enc, df, y = byterec_encoded
    m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_names=["finish"])
    m.encoder = enc
    records = df.head(5).to_dict("records")
    assert np.isfinite(m.predict_records(records)).all()
    with torch.no_grad():
        next(iter(m.parameters())).fill_(float("nan"))
    with pytest.raises(RuntimeError, match="predict_records: the model's weights hold NaN"):
        m.predict_records(records)


def test_non_finite_outputs_with_finite_weights_name_the_rows():
    """Finite weights, but an input so large the logit overflows: the rows are named, not served as NaN."""
    m = LR([DenseFeat("d", 1)], task_names=["a"])
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(3e38)
    x = {"d": np.array([0.0, 10.0, 0.0, -10.0], dtype="float32")}
    with pytest.raises(RuntimeError, match=r"outputs of 2 of 4 row\(s\) are NaN or infinite \(first rows: \[1, 3\]"):
        m.predict(x)


# ---------------------------------------------------------------------------------------- interruptions
class Boom(Exception):
    pass


def interrupter(hook, kind):
    class Interrupt(Callback):
        def fire(self):
            if kind == "stop_training":
                self.model.stop_training = True
            elif kind == "KeyboardInterrupt":
                raise KeyboardInterrupt
            else:
                raise Boom("from a callback")

        def on_train_begin(self, logs=None):
            if hook == "on_train_begin":
                self.fire()

        def on_epoch_begin(self, epoch, logs=None):
            if hook == "on_epoch_begin" and epoch == 1:
                self.fire()

        def on_train_batch_end(self, step, logs=None):
            if hook == "on_train_batch_end" and step == 3:
                self.fire()

        def on_epoch_end(self, epoch, logs=None):
            if hook == "on_epoch_end" and epoch == 0:
                self.fire()
    return Interrupt()


HOOKS = ["on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_epoch_end"]
KINDS = ["exception", "KeyboardInterrupt", "stop_training"]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hook", HOOKS)
def test_interrupted_fit_leaves_a_consistent_model(hook, kind, mode):
    x, y = data()
    m = make(dropout=0.3)
    m.compile("adam", lr=1e-2)
    m.train(mode == "train")
    cb = interrupter(hook, kind)
    if kind == "stop_training":
        h = m.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[cb])
        assert len(h.epoch) <= 2
    else:
        with pytest.raises(Boom if kind == "exception" else KeyboardInterrupt):
            m.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[cb])
        assert m.stop_reason.startswith(f"fit: interrupted by {'Boom' if kind == 'exception' else kind} in epoch")
    assert m.training == (mode == "train")                       # the mode the model had before fit
    assert m.trainer._fit_thread is None and m.trainer._fit_state is None and m.trainer._good_state is None
    assert all_finite(m)
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(p=m.predict(x)))   # another thread: not "being trained"
    t.start()
    t.join()
    assert out["p"].shape == (N, 2) and np.isfinite(out["p"]).all()
    m.eval()
    np.testing.assert_array_equal(out["p"], m.predict(x))
    h2 = m.fit(x, y, batch_size=64, epochs=1, verbose=0)          # the lock was released: fit again works
    assert len(h2.epoch) == 1 and m.stop_reason is None


@pytest.mark.parametrize("kind", ["exception", "KeyboardInterrupt"])
def test_interrupted_fit_resumes_from_backup_and_restore_exactly(tmp_path, kind):
    x, y = data()

    def fit(model, extra=(), **kw):
        cbs = [*extra, BackupAndRestore(str(tmp_path / f"{kind}.pt"), save_freq=2)]
        return model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=cbs, **kw)

    ref = make(dropout=0.2)
    ref.compile("adam", lr=1e-2)
    ref.fit(x, y, batch_size=64, epochs=3, verbose=0)

    class Crash(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, step, logs=None):
            if self.epoch == 1 and step == 4:   # the last checkpoint was after step 4 of epoch 2
                raise KeyboardInterrupt if kind == "KeyboardInterrupt" else Boom("crash")

    m = make(dropout=0.2)
    m.compile("adam", lr=1e-2)
    with pytest.raises((Boom, KeyboardInterrupt)):
        fit(m, [Crash()])
    assert os.path.exists(tmp_path / f"{kind}.pt")                  # the checkpoint survives the interruption
    fit(m)                                                           # the same model object resumes by itself
    same(state(ref), state(m))
