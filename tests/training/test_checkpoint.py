"""Checkpoints that survive a crash: atomic writes, and resumed runs that end with the uninterrupted run's weights.

This file is also the worker of the kill test: ``python tests/training/test_checkpoint.py worker OUT_DIR`` trains with a
BackupAndRestore checkpoint every few steps (slowed down so the test can kill it mid-epoch).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

TASKS = ["click", "purchase"]
EPOCHS, BATCH, SAVE_EVERY = 3, 64, 4


def _data():
    from ctrkit import FeatureEncoder
    from ctrkit.datasets import make_criteo_like
    df = make_criteo_like(2000, n_dense=4, n_sparse=6, seed=3)
    enc = FeatureEncoder(sparse=[f"C{i}" for i in range(1, 7)], dense=[f"I{i}" for i in range(1, 5)],
                         embedding_dim=4).fit(df)
    return enc, enc.transform(df), df[TASKS].to_numpy(np.float32)


def _model(enc):
    from ctrkit import MMoE
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
             dnn_dropout=0.2, task_names=TASKS, seed=7)  # dropout: the RNG state must be restored too
    m.compile("adam", lr=3e-3)
    return m


def _callbacks(path, extra=()):
    from ctrkit import BackupAndRestore, EarlyStopping, LRScheduler
    return [LRScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)),
            EarlyStopping("loss", patience=10), *extra,
            BackupAndRestore(path, save_freq=SAVE_EVERY, delete_checkpoint=False)]


def _fit(m, x, y, callbacks, **kw):
    return m.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks, **kw)


def _worker(out: str) -> None:
    from ctrkit.callbacks import Callback

    class Slow(Callback):  # ~30 steps per epoch: give the test time to kill us mid-epoch
        def on_train_batch_end(self, step, logs=None):
            time.sleep(0.03)
    torch.set_num_threads(int(os.environ.get("CTRKIT_TEST_THREADS", "1")))
    enc, x, y = _data()
    m = _model(enc)
    while not os.path.exists(os.path.join(out, "go")):  # start when the test is ready to watch
        time.sleep(0.02)
    _fit(m, x, y, _callbacks(os.path.join(out, "ckpt.pt"), [Slow()]))
    open(os.path.join(out, "finished"), "w").close()


@pytest.fixture(autouse=True)
def one_thread():  # the child process uses one thread too: same arithmetic, and no oversubscribed cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tmp_path):
    from ctrkit import load_checkpoint
    ckpt = str(tmp_path / "ckpt.pt")
    env = {**os.environ, "CTRKIT_TEST_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "worker", str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        enc, x, y = _data()  # the uninterrupted reference, while the child starts
        ref = _model(enc)
        h_ref = _fit(ref, x, y, _callbacks(str(tmp_path / "ref.pt")))
        (tmp_path / "go").touch()
        deadline = time.time() + 120
        while time.time() < deadline:  # wait for a checkpoint inside epoch 2 or 3, then kill -9
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            if os.path.exists(ckpt):
                c = load_checkpoint(ckpt)  # readable at any moment: written atomically
                if c["epoch"] >= 1 and c["step"] > 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("no mid-epoch checkpoint appeared within 120 s")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "finished").exists()
    c = load_checkpoint(ckpt)
    assert c["epoch"] >= 1 and c["epoch"] < EPOCHS

    resumed = _model(enc)
    h = _fit(resumed, x, y, _callbacks(ckpt), resume_from=ckpt)
    _same_weights(ref, resumed)
    assert h.epoch == list(range(EPOCHS))
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-6)
    assert h.history["lr"] == h_ref.history["lr"]


def test_interrupted_in_process_resume_is_exact_and_automatic(tmp_path):
    """An exception mid-epoch (as a crash would) and a new fit with the same BackupAndRestore resumes by itself."""
    from ctrkit.callbacks import Callback
    enc, x, y = _data()
    ref = _model(enc)
    _fit(ref, x, y, _callbacks(str(tmp_path / "ref.pt")))

    class Crash(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, step, logs=None):
            if self.epoch == 1 and step == 13:  # the last checkpoint was after step 12 of epoch 2
                raise KeyboardInterrupt

    path = str(tmp_path / "auto.pt")
    m = _model(enc)
    with pytest.raises(KeyboardInterrupt):
        _fit(m, x, y, _callbacks(path, [Crash()]))
    m2 = _model(enc)
    from ctrkit import BackupAndRestore
    cbs = _callbacks(path)
    cbs[-1] = BackupAndRestore(path, save_freq=SAVE_EVERY)  # delete_checkpoint=True (the default)
    _fit(m2, x, y, cbs)  # no resume_from: the callback's file exists, so fit resumes
    _same_weights(ref, m2)
    assert not os.path.exists(path)  # deleted when fit finished normally


def test_checkpoint_write_is_atomic_and_corruption_is_reported(tmp_path, monkeypatch):
    from ctrkit import ModelFormatError, load_checkpoint, save_checkpoint
    path = str(tmp_path / "c.pt")
    save_checkpoint(path, {"epoch": 1, "w": torch.arange(3.0)})

    def broken_save(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1              # the previous checkpoint is intact
    assert os.listdir(tmp_path) == ["c.pt"]                 # and no temporary file is left behind
    assert torch.load(path, weights_only=True)["epoch"] == 1
    with open(path, "r+b") as fh:                          # a truncated file (e.g. copied half-way)
        fh.truncate(100)
    with pytest.raises(ModelFormatError, match="truncated or corrupted"):
        load_checkpoint(path)
    torch.save({"a": 1}, str(tmp_path / "other.pt"))
    with pytest.raises(ModelFormatError, match="not a ctrkit checkpoint"):
        load_checkpoint(str(tmp_path / "other.pt"))
    with pytest.raises(FileNotFoundError, match="BackupAndRestore"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_resume_mismatches_are_explained(tmp_path):
    from ctrkit import DNN, BackupAndRestore, ModelFormatError
    enc, x, y = _data()
    path = str(tmp_path / "c.pt")
    m = _model(enc)
    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[BackupAndRestore(path, delete_checkpoint=False)])
    with pytest.raises(ValueError, match="same batch_size"):
        _model(enc).fit(x, y, batch_size=32, epochs=2, verbose=0, resume_from=path)
    other = DNN(enc.feature_columns, task="binary")
    other.compile("adam")
    with pytest.raises(ModelFormatError, match="Build the same model"):
        other.fit(x, y[:, 0], batch_size=BATCH, epochs=2, verbose=0, resume_from=path)
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(path, save_freq=0)


def test_model_save_is_atomic(tmp_path, monkeypatch):
    """model.save writes a temporary directory and renames it: a failure mid-save keeps the previous model."""
    from ctrkit import load_model
    enc, x, y = _data()
    m = _model(enc)
    m.save(str(tmp_path / "m"))
    before = load_model(str(tmp_path / "m")).predict(x)

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("killed")
    monkeypatch.setattr(torch, "save", broken_save)
    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    with pytest.raises(OSError):
        m.save(str(tmp_path / "m"))
    monkeypatch.undo()
    np.testing.assert_array_equal(load_model(str(tmp_path / "m")).predict(x), before)
    assert sorted(os.listdir(tmp_path)) == ["m"]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    _worker(sys.argv[2])
