"""Threads: predict / evaluate / fit while another thread trains, copies made during fit, concurrent predicts.

Documented behaviour: inference from another thread while ``fit`` runs raises a RuntimeError (it would switch
dropout / BatchNorm to eval mode mid-training) and leaves the training untouched; a second ``fit`` is refused;
``model.stop_training = True`` from another thread stops the fit after the current step; a ``copy.deepcopy``
taken during fit is an independent model any thread may use; after fit, predicts from many threads agree.
"""
from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from _helpers import two_task_data

from ctrkit import DenseFeat, MMoE, SparseFeat
from ctrkit.callbacks import Callback

N = 512
COLS = [SparseFeat("u", 30, 4), SparseFeat("i", 20, 4), DenseFeat("d", 1)]


pytestmark = pytest.mark.usefixtures("one_thread")


def data(n=N, seed=0):
    return two_task_data(n, seed)


def make(dropout=0.3):
    m = MMoE(COLS, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,), dnn_dropout=dropout,
             task_names=["a", "b"], seed=1)
    m.compile("adam", lr=1e-2, metrics=["auc"])
    return m


def in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out


def weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


CALLS = {
    "predict": lambda m, x, y: m.predict(x),
    "predict_logits": lambda m, x, y: m.predict_logits(x),
    "evaluate": lambda m, x, y: m.evaluate(x, y),
    "fit": lambda m, x, y: m.fit(x, y, epochs=1, verbose=0),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_other_thread_during_fit_is_refused_and_training_is_untouched(call):
    x, y = data()
    ref = make()
    ref.fit(x, y, batch_size=64, epochs=2, verbose=0)
    m = make()
    seen: dict = {}

    class Probe(Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 2 and "out" not in seen:
                seen["out"] = in_thread(lambda: CALLS[call](m, x, y))
                seen["mode"] = self.model.training

    m.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[Probe()])
    err = seen["out"].get("error")
    assert isinstance(err, RuntimeError), seen["out"]
    assert "another thread" in str(err) or "already being trained" in str(err)
    assert seen["mode"] is True
    for k, v in weights(ref).items():                  # the refused call changed nothing in the training
        assert torch.equal(v, m.state_dict()[k]), k


def test_stop_training_from_another_thread_stops_after_the_current_step():
    x, y = data()
    m = make()
    started = threading.Event()

    class Signal(Callback):
        def on_train_batch_end(self, step, logs=None):
            started.set()

    t = threading.Thread(target=lambda: (started.wait(10), setattr(m, "stop_training", True)))
    t.start()
    h = m.fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[Signal()])
    t.join()
    assert len(h.epoch) < 50 and m.trainer._fit_thread is None
    assert np.isfinite(m.predict(x)).all()


def test_a_copy_taken_during_fit_is_usable_from_any_thread():
    x, y = data()
    m = make()
    seen: dict = {}

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                seen["copy"] = copy.deepcopy(self.model)
                seen["weights"] = weights(self.model)

    m.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[Snap()])
    c = seen["copy"]
    out = in_thread(lambda: c.predict(x))
    assert "error" not in out, out.get("error")
    assert np.isfinite(out["value"]).all()
    for k, v in seen["weights"].items():
        assert torch.equal(v, c.state_dict()[k])
    h = in_thread(lambda: c.fit(x, y, batch_size=64, epochs=1, verbose=0))     # and trainable on its own
    assert "error" not in h, h.get("error")


def test_copy_from_another_thread_during_fit_predicts_there():
    """The documented way to score while training: copy.deepcopy(model) in the scoring thread."""
    x, y = data()
    m = make()
    seen: dict = {}

    class Probe(Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 3 and "out" not in seen:
                seen["out"] = in_thread(lambda: copy.deepcopy(m).predict(x))

    m.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[Probe()])
    assert "error" not in seen["out"], seen["out"].get("error")
    assert seen["out"]["value"].shape == (N, 2)


@pytest.mark.parametrize("threads", [2, 8])
def test_concurrent_predicts_after_fit_agree(threads):
    x, y = data()
    m = make(dropout=0.5)               # dropout: a predict that ran in training mode would differ
    m.fit(x, y, batch_size=64, epochs=1, verbose=0)
    m.train()                           # even with the module left in training mode by the user
    expected = copy.deepcopy(m).eval().predict(x)
    results: list = [None] * threads
    barrier = threading.Barrier(threads)

    def work(i):
        barrier.wait()
        results[i] = [m.predict(x) for _ in range(5)]

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        for p in r:
            np.testing.assert_array_equal(p, expected)
    assert m.training


def test_predict_from_another_thread_after_an_interrupted_fit():
    x, y = data()
    m = make()

    class Crash(Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[Crash()])
    out = in_thread(lambda: m.predict(x))
    assert "error" not in out and np.isfinite(out["value"]).all()
    out = in_thread(lambda: m.fit(x, y, batch_size=64, epochs=1, verbose=0))
    assert "error" not in out, out.get("error")


def test_fits_of_two_models_in_two_threads_match_sequential_fits():
    """Without dropout (the torch RNG is process-wide: overlapping fits with dropout share its draws, see
    docs/reliability.md), two models trained in two threads end as if trained one after the other."""
    x, y = data()
    a, b = make(0.0), make(0.0)
    ra, rb = make(0.0), make(0.0)
    ra.fit(x, y, batch_size=64, epochs=1, verbose=0, seed=3)
    rb.fit(x, y, batch_size=64, epochs=1, verbose=0, seed=4)
    ts = [threading.Thread(target=lambda m=m, s=s: m.fit(x, y, batch_size=64, epochs=1, verbose=0, seed=s))
          for m, s in ((a, 3), (b, 4))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for got, ref in ((a, ra), (b, rb)):
        for k, v in weights(ref).items():
            assert torch.equal(v, got.state_dict()[k]), k
