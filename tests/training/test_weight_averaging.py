"""WeightAveraging: the averaged weights are the ones validated, kept by EarlyStopping and left in the model; training
goes on from the optimizer's own weights; a resumed run ends where the uninterrupted one does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ctrkit import EarlyStopping, MMoE, WeightAveraging
from ctrkit.callbacks import Callback


def _model(enc, seed=3):
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
             task_names=["finish", "like"], seed=seed)
    m.compile("adam", lr=0.01, metrics=["auc"])
    return m


class Spy(Callback):
    """Keeps its own bias-corrected EMA of the weights after every step (the formula, sum of decay ** (n - k) * w_k
    over the sum of the factors, not the callback's code) and the weights seen at the first step of each epoch."""

    def __init__(self, decay):
        super().__init__()
        self.decay, self.ema, self.last, self.first = decay, None, None, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, step, logs=None):
        if step == 0:
            self.first[self.epoch] = {k: v.clone() for k, v in self.model.state_dict().items()}

    def on_train_batch_end(self, step, logs=None):
        w = {k: v.detach().clone().double() for k, v in self.model.state_dict().items() if v.is_floating_point()}
        self.last = {k: v.clone() for k, v in self.model.state_dict().items()}
        if self.ema is None:
            self.sum, self.norm = w, 1.0
        else:
            self.sum = {k: self.decay * self.sum[k] + w[k] for k in w}
            self.norm = self.decay * self.norm + 1.0
        self.ema = {k: v / self.norm for k, v in self.sum.items()}


def _split(df, y):
    n = int(len(df) * 0.75)
    return (df.iloc[:n], y.iloc[:n]), (df.iloc[n:].reset_index(drop=True), y.iloc[n:].reset_index(drop=True))


def test_average_is_validated_kept_and_training_continues_from_raw_weights(byterec_encoded):
    enc, df, y = byterec_encoded
    (xtr, ytr), (xva, yva) = _split(df, y)
    m = _model(enc)
    spy = Spy(0.9)
    h = m.fit(xtr, ytr, batch_size=64, epochs=3, verbose=0, validation_data=(xva, yva), shuffle=False,
              callbacks=[WeightAveraging(0.9), spy])
    sd = m.state_dict()
    for k, v in spy.ema.items():   # the model ends with the average of every step's weights
        np.testing.assert_allclose(sd[k].double().numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    assert any(not torch.equal(sd[k], spy.last[k]) for k in spy.ema)   # ... which are not the last step's weights
    # the last validation was of these weights
    assert m.evaluate(xva, yva)["finish_auc"] == pytest.approx(h.history["val_finish_auc"][-1], abs=1e-7)
    # epoch 2 started from the optimizer's weights of the end of epoch 1, not from the average validated then
    plain = _model(enc)
    plain.fit(xtr, ytr, batch_size=64, epochs=1, verbose=0, shuffle=False)
    for k, v in plain.state_dict().items():
        assert torch.allclose(spy.first[1][k], v, atol=1e-6), k


def test_early_stopping_keeps_the_best_averaged_weights(byterec_encoded):
    enc, df, y = byterec_encoded
    (xtr, ytr), (xva, yva) = _split(df, y)
    m = _model(enc)
    es = EarlyStopping("val_finish_auc", patience=2, restore_best_weights=True)
    h = m.fit(xtr, ytr, batch_size=64, epochs=6, verbose=0, validation_data=(xva, yva), seed=1,
              callbacks=[WeightAveraging(0.95), es])
    best = max(h.history["val_finish_auc"])
    assert m.evaluate(xva, yva)["finish_auc"] == pytest.approx(best, abs=1e-7)


def test_without_validation_the_average_is_left_in_the_model(byterec_encoded):
    enc, df, y = byterec_encoded
    m = _model(enc)
    spy = Spy(0.8)
    m.fit(df, y, batch_size=128, epochs=2, verbose=0, callbacks=[WeightAveraging(0.8), spy])
    sd = m.state_dict()
    for k, v in spy.ema.items():
        np.testing.assert_allclose(sd[k].double().numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1, True, "0.9"])
def test_bad_decay_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be a float in \\(0, 1\\)"):
        WeightAveraging(decay)


@pytest.mark.parametrize("crash_at", [(1, 6), (1, 0)])   # mid-epoch; first step after an epoch-end checkpoint
def test_crash_and_resume_equals_uninterrupted(tmp_path, byterec_encoded, crash_at):
    from ctrkit import BackupAndRestore
    enc, df, y = byterec_encoded
    (xtr, ytr), (xva, yva) = _split(df, y)

    def fit(m, path, extra=()):
        return m.fit(xtr, ytr, batch_size=16, epochs=3, verbose=0, validation_data=(xva, yva), seed=5,
                     callbacks=[WeightAveraging(0.9), *extra, BackupAndRestore(path, save_freq=4)])

    ref = _model(enc)
    h_ref = fit(ref, str(tmp_path / "ref.pt"))

    class Crash(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, step, logs=None):
            if (self.epoch, step) == crash_at:
                raise KeyboardInterrupt

    path = str(tmp_path / "ckpt.pt")
    with pytest.raises(KeyboardInterrupt):
        fit(_model(enc), path, [Crash()])
    m = _model(enc)
    h = fit(m, path)
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    assert h.history["val_finish_auc"][-1] == h_ref.history["val_finish_auc"][-1]
