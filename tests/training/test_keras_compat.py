"""Keras / DeepCTR-Torch behaviour of the trainer and callbacks: log keys, patience, checkpoints, targets."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ctrkit import DNN, MMOE, DenseFeat, EarlyStopping, ModelCheckpoint, SparseFeat, load_model
from ctrkit.callbacks import Callback
from ctrkit.features import feature_from_dict, feature_to_dict


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = {"a": rng.integers(0, 5, n), "d": rng.random(n).astype("float32")}
    y = (x["a"] >= 2).astype("float32")
    cols = [SparseFeat("a", 5, 4, dtype=torch.int32), DenseFeat("d", 1, dtype=torch.float32)]
    return x, y, cols


def test_single_task_keys_have_no_task_prefix_and_keep_logloss():
    x, y, cols = _data()
    m = DNN(cols, dnn_hidden_units=(8,), task_name="click", seed=0)
    m.compile("adam", "binary_crossentropy", metrics=["auc", "logloss", "binary_crossentropy"])
    h = m.fit(x, y, batch_size=50, epochs=2, verbose=0, validation_split=0.25)
    assert {"loss", "auc", "logloss", "binary_crossentropy", "val_loss", "val_auc", "val_logloss"} <= set(h.history)
    assert not any(k.startswith(("click_", "val_click_")) for k in h.history)
    assert set(m.evaluate(x, y)) == {"loss", "auc", "logloss", "binary_crossentropy"}


def test_multitask_keys_name_the_task_and_fit_takes_a_list_per_output():
    x, y, cols = _data()
    m = MMOE(cols, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=("ctr", "cvr"), task_types=("binary", "binary"), seed=0)
    m.compile("adam", metrics=["logloss"])
    h = m.fit(x, [y, 1 - y], batch_size=50, epochs=1, verbose=0, validation_data=(x, [pd.Series(y), 1 - y]))
    assert {"ctr_loss", "ctr_logloss", "cvr_logloss", "val_ctr_logloss", "val_cvr_loss"} <= set(h.history)
    same = m.evaluate(x, np.stack([y, 1 - y], axis=1))
    assert same == pytest.approx(m.evaluate(x, [y, 1 - y]))


class _Flat(Callback):
    """Makes val_auc never improve after the first epoch."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_auc"] = 0.9 if epoch == 0 else 0.5


@pytest.mark.parametrize("patience, epochs_run", [(0, 2), (1, 2), (2, 3), (3, 4)])
def test_early_stopping_has_keras_patience(patience, epochs_run):
    x, y, cols = _data()
    m = DNN(cols, dnn_hidden_units=(4,), seed=0)
    m.compile("adam")
    h = m.fit(x, y, batch_size=100, epochs=10, verbose=0, validation_split=0.5,
              callbacks=[_Flat(), EarlyStopping("val_auc", patience=patience, mode="max")])
    assert len(h.epoch) == epochs_run   # Keras: stops after `patience` epochs without improvement (0 and 1 alike)


def test_missing_monitor_warns_and_does_nothing():
    x, y, cols = _data()
    m = DNN(cols, dnn_hidden_units=(4,), seed=0)
    m.compile("adam")
    with pytest.warns(RuntimeWarning, match="'val_auc' is not in the logs"):
        h = m.fit(x, y, batch_size=100, epochs=3, verbose=0, callbacks=[EarlyStopping("val_auc", mode="max")])
    assert len(h.epoch) == 3


def test_model_checkpoint_weights_only_and_model_dir(tmp_path):
    x, y, cols = _data()
    m = DNN(cols, dnn_hidden_units=(4,), seed=0)
    m.compile("adam", metrics=["acc"])
    w, d = tmp_path / "w" / "model.ckpt", tmp_path / "dir{epoch}"
    cbs = [ModelCheckpoint(str(w), monitor="val_acc", verbose=0, save_best_only=False, save_weights_only=True,
                           mode="max", period=1),
           ModelCheckpoint(str(d), monitor="val_acc", period=2)]
    m.fit(x, y, batch_size=50, epochs=2, verbose=0, validation_split=0.5, callbacks=cbs)
    state = torch.load(w)
    assert set(state) == set(m.state_dict())
    assert not (tmp_path / "dir1").exists()       # period=2: the second epoch only
    np.testing.assert_allclose(load_model(str(tmp_path / "dir2")).predict(x), m.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match="period"):
        ModelCheckpoint("p", period=0)


@pytest.mark.parametrize("dtype", [torch.int32, "int32", np.int32, np.dtype("int32")])
def test_feature_dtypes_serialise_to_json_and_round_trip(dtype):
    f = SparseFeat("a", 5, dtype=dtype)
    assert f.dtype == "int32"
    assert feature_from_dict(json.loads(json.dumps(feature_to_dict(f)))) == f
    assert DenseFeat("d", dtype=torch.float64).dtype == "float64"


def test_embedding_dim_zero_is_a_linear_only_feature():
    """DeepCTR accepts ``SparseFeat(..., embedding_dim=0)`` (its MLR tests build such columns): the feature gets no
    embedding, models still train and predict, and MLR reads it through its linear parts."""
    import numpy as np

    from ctrkit import DNN, MLR, DenseFeat, SparseFeat

    rng = np.random.default_rng(0)
    cols = [SparseFeat("a", 10, 0), SparseFeat("b", 10, 8), DenseFeat("d")]
    x = {"a": rng.integers(0, 10, 2000), "b": rng.integers(0, 10, 2000), "d": rng.random(2000)}
    y = (x["b"] > 4).astype(float)
    m = DNN(cols, dnn_hidden_units=(8,))
    assert m.embedding.output_dim == 8
    m.compile("adam", lr=0.01, metrics=["auc"])
    assert m.fit(x, y, batch_size=512, epochs=3, verbose=0).history["auc"][-1] > 0.9
    lin = MLR([SparseFeat("a", 10, 0), DenseFeat("d")])
    lin.compile("adam", lr=0.05)
    lin.fit(x, (x["a"] > 4).astype(float), batch_size=512, epochs=5, verbose=0)
    p = lin.predict(x)[:, 0]
    assert p[x["a"] > 4].mean() > p[x["a"] <= 4].mean() + 0.2
