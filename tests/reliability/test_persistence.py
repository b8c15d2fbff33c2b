"""Saves that are interrupted at every step still leave a loadable model (or checkpoint) at the path.

Fault injection: every file-system call a save makes (each file write, rename, fsync, directory operation, the
weights and JSON serialisers) is wrapped; the n-th call is made to fail, in turn for every n, with an ``OSError``,
a ``KeyboardInterrupt``, a failure that persists for the rest of the save (a disk that went read-only: the
roll-back fails too), or a ``SIGKILL`` of the saving process (a forked child). A byte budget on every write
simulates a full disk. After each interruption the path must hold the complete old model or the complete new one
(predictions equal to one of them) and, once loaded, nothing may be left next to it.

``pytest -s tests/reliability/test_persistence.py -k points`` prints how many interruption points each case tried.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pytest
import torch

from ctrkit import DNN, BackupAndRestore, ModelFormatError, load_model
from ctrkit.io import load_checkpoint, save_checkpoint, save_model
from ctrkit.io.atomic import RecoveryWarning

# Every call a save makes to the file system, by name.
TARGETS = {name: (mod, name.split(".")[-1]) for mod, name in [
    (os, "os.makedirs"), (os, "os.mkdir"), (os, "os.listdir"), (os, "os.scandir"), (os, "os.open"), (os, "os.close"),
    (os, "os.fsync"), (os, "os.fdopen"), (os, "os.replace"), (os, "os.rename"), (os, "os.rmdir"), (os, "os.unlink"),
    (os, "os.remove"), (shutil, "shutil.rmtree"), (tempfile, "tempfile.mkdtemp"), (tempfile, "tempfile.mkstemp"),
    (builtins, "builtins.open"), (torch, "torch.save"), (json, "json.dump")]}
DIR_OPS = ["os.makedirs", "os.mkdir", "os.listdir", "tempfile.mkdtemp", "builtins.open", "json.dump", "torch.save",
           "os.open", "os.fsync", "os.close", "os.replace", "shutil.rmtree", "os.scandir", "os.unlink", "os.rmdir"]
FILE_OPS = ["os.makedirs", "os.mkdir", "os.listdir", "tempfile.mkstemp", "os.open", "os.fdopen", "torch.save",
            "os.fsync", "os.replace", "os.close"]
MODES = ["oserror", "keyboard", "persistent", "sigkill"]


class Injector:
    """Wraps every target; ``fail(i, name)`` decides what the i-th call (0-based, all targets counted) does."""

    def __init__(self, fail=None):
        self.trace: list[str] = []
        self.fail = fail

    @contextlib.contextmanager
    def active(self):
        saved = []
        for name, (mod, attr) in TARGETS.items():
            orig = getattr(mod, attr)

            def wrapper(*a, _orig=orig, _name=name, **k):
                i = len(self.trace)
                self.trace.append(_name)
                if self.fail is not None:
                    self.fail(i, _name)
                return _orig(*a, **k)
            saved.append((mod, attr, orig))
            setattr(mod, attr, wrapper)
        try:
            yield self
        finally:
            for mod, attr, orig in reversed(saved):
                setattr(mod, attr, orig)


def _raiser(k, mode):
    def fail(i, name):
        if i == k or (mode == "persistent" and i > k):
            if mode == "keyboard":
                raise KeyboardInterrupt
            if mode == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.EIO, f"injected failure of {name} (call {i})")
    return fail


def _interrupted(mode, inj, save):
    """Run ``save`` under ``inj``; True when the injected failure propagated. A KeyboardInterrupt always does; an
    OSError may be absorbed where a save can do without the call (an fsync of a directory, removing the
    previous version after the swap, ``makedirs`` of a parent that exists)."""
    try:
        with inj.active():
            save()
    except KeyboardInterrupt:
        assert mode == "keyboard"
        return True
    except OSError as e:
        assert mode != "keyboard" and "injected failure" in str(e)
        return True
    assert mode != "keyboard", "a KeyboardInterrupt was swallowed"
    return False


def _in_child(fn, timeout=60.0):
    """Run ``fn`` in a forked child; return how it ended ("killed", or the exit code)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            fn()
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked saver hung")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return "killed"
    return os.WEXITSTATUS(status)


@pytest.fixture(scope="module")
def models(byterec_encoded):
    enc, df, _ = byterec_encoded
    x = df.head(256)
    old, new = (DNN(enc.feature_columns, task="binary", dnn_hidden_units=(8,), seed=s) for s in (1, 2))
    for m in (old, new):
        m.compile("adam", metrics=["auc"])
    p_old, p_new = old.predict(x), new.predict(x)
    assert not np.allclose(p_old, p_new)
    return old, new, x, p_old, p_new


def _which(path, x, p_old, p_new):
    """Load ``path`` (recovering what an interrupted save left) and say whether it is the old or the new model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        m = load_model(str(path))
    p = m.predict(x)
    if np.array_equal(p, p_old):
        return "old"
    assert np.array_equal(p, p_new), "the loaded model is neither the old nor the new one"
    return "new"


def _fresh(tmp_path, old):
    shutil.rmtree(tmp_path / "d", ignore_errors=True)
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / "m"
    save_model(old, str(path))
    return path


def _dir_points(tmp_path, old, new, op):
    path = _fresh(tmp_path, old)
    inj = Injector()
    with inj.active():
        save_model(new, str(path))
    points = [i for i, name in enumerate(inj.trace) if name == op]
    assert points, f"a model save never calls {op}: {inj.trace}"
    return points


@pytest.mark.filterwarnings("ignore::ctrkit.io.atomic.RecoveryWarning")  # persistent: the roll-back fails too
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", DIR_OPS)
def test_model_save_interrupted_at_every_call_leaves_old_or_new(tmp_path, models, op, mode):
    old, new, x, p_old, p_new = models
    points = _dir_points(tmp_path, old, new, op)
    seen = []
    for k in points:
        path = _fresh(tmp_path, old)
        inj = Injector(_raiser(k, mode))
        if mode == "sigkill":
            def save(inj=inj, path=path):
                with inj.active():
                    save_model(new, str(path))
            assert _in_child(save) == "killed"
        else:
            raised = _interrupted(mode, inj, lambda path=path: save_model(new, str(path)))
        seen.append(_which(path, x, p_old, p_new))
        if mode != "sigkill" and not raised:  # the failure was one a save may ignore: the save completed
            assert seen[-1] == "new"
        assert os.listdir(path.parent) == ["m"], f"left behind after the interruption at {op} #{k}"
        assert sorted(os.listdir(path)) == ["config.json", "encoder.json", "weights.pt"]
    # the next save after any interruption works and gives the new model
    save_model(new, str(path))
    assert _which(path, x, p_old, p_new) == "new"
    print(f"points model-dir {op} {mode}: {len(points)} interruption points, {len(seen)} loadable "
          f"({seen.count('old')} old, {seen.count('new')} new)")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", FILE_OPS)
def test_checkpoint_save_interrupted_at_every_call_leaves_old_or_new(tmp_path, op, mode):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"epoch": 0, "w": torch.zeros(64)})
    inj = Injector()
    with inj.active():
        save_checkpoint(path, {"epoch": 1, "w": torch.ones(64)})
    points = [i for i, name in enumerate(inj.trace) if name == op]
    assert points, f"a checkpoint save never calls {op}: {inj.trace}"
    seen = []
    for k in points:
        save_checkpoint(path, {"epoch": 0, "w": torch.zeros(64)})
        inj = Injector(_raiser(k, mode))
        if mode == "sigkill":
            def save(inj=inj):
                with inj.active():
                    save_checkpoint(path, {"epoch": 1, "w": torch.ones(64)})
            assert _in_child(save) == "killed"
        else:
            raised = _interrupted(mode, inj, lambda: save_checkpoint(path, {"epoch": 1, "w": torch.ones(64)}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveryWarning)
            c = load_checkpoint(path)
        assert (c["epoch"], float(c["w"].sum())) in ((0, 0.0), (1, 64.0))
        seen.append(c["epoch"])
        if mode != "sigkill" and not raised:
            assert c["epoch"] == 1
        assert os.listdir(tmp_path) == ["ckpt.pt"], f"left behind after the interruption at {op} #{k}"
    print(f"points checkpoint {op} {mode}: {len(points)} interruption points, {len(seen)} loadable")


class _Full(OSError):
    pass


@contextlib.contextmanager
def _disk_with(budget):
    """Writes succeed until ``budget`` bytes are written in all, then fail with ENOSPC (after a partial write)."""
    left = [budget]
    real_open, real_fdopen, real_save = builtins.open, os.fdopen, torch.save

    class Capped:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            if len(data) > left[0]:
                self._fh.write(data[:left[0]])
                left[0] = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            left[0] -= len(data)
            return self._fh.write(data)

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def cap(fh, mode):
        return Capped(fh) if any(c in mode for c in "wax+") else fh

    def opened(file, mode="r", *a, **k):
        return cap(real_open(file, mode, *a, **k), mode)

    def fdopened(fd, mode="r", *a, **k):
        return cap(real_fdopen(fd, mode, *a, **k), mode)

    def save(obj, f, *a, **k):
        buf = io.BytesIO()
        real_save(obj, buf, *a, **k)
        if isinstance(f, (str, os.PathLike)):
            with builtins.open(f, "wb") as fh:
                fh.write(buf.getvalue())
        else:
            f.write(buf.getvalue())
    builtins.open, os.fdopen, torch.save = opened, fdopened, save
    try:
        yield left
    finally:
        builtins.open, os.fdopen, torch.save = real_open, real_fdopen, real_save


BUDGETS = [0, 1, 64, 1024, 4096, 0.5, 0.99]


@pytest.mark.parametrize("budget", BUDGETS)
def test_full_disk_during_model_save_keeps_the_old_model(tmp_path, models, budget):
    old, new, x, p_old, p_new = models
    path = _fresh(tmp_path, old)
    with _disk_with(10 ** 9) as left:
        save_model(new, str(path))
    total = 10 ** 9 - left[0]
    path = _fresh(tmp_path, old)
    n = int(budget * total) if isinstance(budget, float) else budget
    assert n < total
    with pytest.raises(OSError, match="No space left"), _disk_with(n):
        save_model(new, str(path))
    assert _which(path, x, p_old, p_new) == "old"
    assert os.listdir(path.parent) == ["m"]


@pytest.mark.parametrize("budget", BUDGETS)
def test_full_disk_during_checkpoint_keeps_the_old_checkpoint(tmp_path, budget):
    path = str(tmp_path / "c.pt")
    save_checkpoint(path, {"epoch": 0, "w": torch.zeros(4096)})
    with _disk_with(10 ** 9) as left:
        save_checkpoint(path, {"epoch": 1, "w": torch.ones(4096)})
    total = 10 ** 9 - left[0]
    save_checkpoint(path, {"epoch": 0, "w": torch.zeros(4096)})
    n = int(budget * total) if isinstance(budget, float) else budget
    assert n < total
    with pytest.raises(OSError, match="No space left"), _disk_with(n):
        save_checkpoint(path, {"epoch": 1, "w": torch.ones(4096)})
    assert load_checkpoint(path)["epoch"] == 0
    assert os.listdir(tmp_path) == ["c.pt"]


def test_save_killed_at_random_moments_always_leaves_a_model(tmp_path, models):
    """A child saves the two models in turn, without end; it is killed -9 at random moments (real timing)."""
    old, new, x, p_old, p_new = models
    path = _fresh(tmp_path, old)
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(8):
        def loop():
            while True:
                for m in (new, old):
                    save_model(m, str(path))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                loop()
            finally:
                os._exit(1)
        time.sleep(float(rng.uniform(0.05, 0.4)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        seen.append(_which(path, x, p_old, p_new))
        assert os.listdir(path.parent) == ["m"]
    print(f"points random kill: {len(seen)} kills, all loadable ({seen})")


def test_recovery_is_announced_and_names_what_it_restored(tmp_path, models):
    """A save killed between its two renames: the path is missing until the next load puts the old model back."""
    old, new, x, p_old, p_new = models
    path = _fresh(tmp_path, old)
    renames = []

    def fail(i, name):
        if name == "os.replace":
            renames.append(i)
            if len(renames) == 2:  # after `path -> old`, before `tmp -> path`
                os.kill(os.getpid(), signal.SIGKILL)
    inj = Injector(fail)

    def save():
        with inj.active():
            save_model(new, str(path))
    assert _in_child(save) == "killed"
    assert not path.exists()
    left = os.listdir(path.parent)
    assert len(left) == 2 and all(n.startswith(".m.ctrkit-") for n in left), left
    with pytest.warns(RecoveryWarning, match=r"load_model: restored '.*/m' from '\.m\.ctrkit-old-\d+-"):
        m = load_model(str(path))
    np.testing.assert_array_equal(m.predict(x), p_old)
    assert os.listdir(path.parent) == ["m"]


def test_leftovers_of_a_live_save_are_not_touched(tmp_path, models):
    """A save in progress in another (live) process: its temporary directory is left alone by our save."""
    old, _, _, _, _ = models
    path = _fresh(tmp_path, old)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = path.parent / f".m.ctrkit-tmp-{other.pid}-abcd1234"
        busy.mkdir()
        save_model(old, str(path))
        assert busy.exists()
    finally:
        other.kill()
        other.wait()
    with pytest.warns(RecoveryWarning, match="removed '.m.ctrkit-tmp-"):  # now its owner is dead
        save_model(old, str(path))
    assert os.listdir(path.parent) == ["m"]


def test_checkpoint_temp_file_of_a_killed_write_is_removed(tmp_path):
    path = str(tmp_path / "c.pt")
    save_checkpoint(path, {"epoch": 0})

    def killed():
        def fail(i, name):
            if name == "torch.save":
                os.kill(os.getpid(), signal.SIGKILL)
        with Injector(fail).active():
            save_checkpoint(path, {"epoch": 1})
    assert _in_child(killed) == "killed"
    assert len(os.listdir(tmp_path)) == 2
    with pytest.warns(RecoveryWarning, match="load_checkpoint: removed '.c.pt.ctrkit-tmp-"):
        assert load_checkpoint(path)["epoch"] == 0
    assert os.listdir(tmp_path) == ["c.pt"]


def test_model_left_aside_by_an_older_ctrkit_is_pointed_to(tmp_path, models):
    old, _, _, _, _ = models
    path = _fresh(tmp_path, old)
    os.replace(path, path.parent / ".ctrkit-old-k2j4h5g6")  # what the previous atomic_dir left when killed
    with pytest.raises(ModelFormatError, match=r"not a directory.*\.ctrkit-old-k2j4h5g6.*rename it to"):
        load_model(str(path))


def test_model_checkpoint_callback_save_interrupted_keeps_the_previous_epoch(tmp_path, byterec_encoded):
    """ModelCheckpoint writes through the same atomic save: a failed save at epoch 2 keeps epoch 1's model."""
    from ctrkit import ModelCheckpoint
    enc, df, y = byterec_encoded
    x, yy = df.head(512), y["finish"].head(512)
    m = DNN(enc.feature_columns, task="binary", dnn_hidden_units=(8,), seed=3)
    m.compile("adam")
    path = tmp_path / "best"
    m.fit(x, yy, batch_size=128, epochs=1, verbose=0, callbacks=[ModelCheckpoint(str(path), monitor="loss")])
    p1 = load_model(str(path)).predict(x)

    def fail(i, name):
        if name == "os.replace":
            raise OSError(errno.EIO, "injected")
    with pytest.raises(OSError, match="injected"), Injector(fail).active():
        m.fit(x, yy, batch_size=128, epochs=1, verbose=0, callbacks=[ModelCheckpoint(str(path), monitor="loss")])
    np.testing.assert_array_equal(load_model(str(path)).predict(x), p1)
    assert os.listdir(tmp_path) == ["best"]


@pytest.mark.parametrize("fail_at_save", [1, 2, 4])
def test_resume_after_a_failed_checkpoint_write_equals_the_uninterrupted_run(tmp_path, byterec_encoded, fail_at_save):
    """The disk fills at the n-th BackupAndRestore save: fit stops; the next fit resumes from the last good
    checkpoint and ends with the weights of a run that was never interrupted."""
    enc, df, y = byterec_encoded
    x, yy = df.head(640), y.head(640).to_numpy(np.float32)

    def model():
        m = DNN(enc.feature_columns, task="binary", task_names=["finish"], dnn_hidden_units=(8,), seed=5)
        m.compile("adam", lr=3e-3)
        return m

    def fit(m, path):
        return m.fit(x, yy[:, 0], batch_size=64, epochs=2, verbose=0,
                     callbacks=[BackupAndRestore(path, save_freq=3, delete_checkpoint=False)])
    ref = model()
    fit(ref, str(tmp_path / "ref.pt"))
    path = str(tmp_path / "run.pt")
    saves = []

    def fail(i, name):
        if name == "torch.save":
            saves.append(i)
        if len(saves) >= fail_at_save and name in ("torch.save", "os.replace"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match="No space left"), Injector(fail).active():
        fit(model(), path)
    if fail_at_save > 1:
        assert load_checkpoint(path)["format"] == "ctrkit-checkpoint"
    else:
        assert not os.path.exists(path)
    resumed = model()
    fit(resumed, path)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
