"""Task balancing (ctrkit.training.balancing): uncertainty weighting, GradNorm, PCGrad, fixed weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import constant_logloss

from ctrkit import PLE, MMoE, SharedBottom, load_model
from ctrkit.data import to_tensor_data
from ctrkit.training.balancing import GradNorm, PCGrad, UncertaintyWeighting, get_balancer, project_conflicting

TASKS = ["finish", "like"]


def _mmoe(enc, **kw):
    return MMoE(enc.feature_columns, num_experts=4, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
                task_names=TASKS, seed=3, **kw)


def _train_logloss(m, df, y):
    p = m.predict(df)
    out = {}
    for i, t in enumerate(TASKS):
        yt = y[t].to_numpy()
        q = np.clip(p[:, i], 1e-7, 1 - 1e-7)
        out[t] = float(-np.mean(yt * np.log(q) + (1 - yt) * np.log(1 - q)))
    return out


@pytest.mark.parametrize("balancer", ["uncertainty", "gradnorm", "pcgrad"])
def test_each_balancer_learns_the_real_sample(byterec_encoded, balancer):
    """Training with each balancer beats a constant predictor (the base rate) on the training data."""
    enc, df, y = byterec_encoded
    m = _mmoe(enc)
    m.compile("adam", lr=0.01, task_balancer=balancer)
    h = m.fit(df, y, batch_size=32, epochs=8, verbose=0)
    assert np.isfinite(h.history["loss"]).all()
    ll = _train_logloss(m, df, y)
    for t in TASKS:
        assert ll[t] < constant_logloss(y[t].to_numpy()) - 0.02, (t, ll[t])


def test_uncertainty_weights_move_and_stay_finite(byterec_encoded):
    enc, df, y = byterec_encoded
    m = _mmoe(enc)
    m.compile("adam", lr=0.01, task_balancer=UncertaintyWeighting(lr=0.05))
    h = m.fit(df, y, batch_size=32, epochs=6, verbose=0)
    for t in TASKS:
        w = np.array(h.history[f"loss_weight_{t}"])
        assert len(w) == 6 and np.isfinite(w).all() and (w > 0).all()
        assert abs(w[-1] - 1.0) > 0.05                  # learned: moved away from the initial 1.0
    assert torch.isfinite(m.task_balancer.log_vars).all()
    # classification tasks: the weight exp(-s) tends to 1 / (2 L_t): the lower-loss task ("like") gets more
    assert h.history["loss_weight_like"][-1] > h.history["loss_weight_finish"][-1]


def test_gradnorm_weights_sum_to_the_number_of_tasks(byterec_encoded):
    enc, df, y = byterec_encoded
    m = _mmoe(enc)
    m.compile("adam", lr=0.01, task_balancer=GradNorm(alpha=1.5, lr=0.05))
    h = m.fit(df, y, batch_size=32, epochs=4, verbose=0)
    w = np.stack([h.history[f"loss_weight_{t}"] for t in TASKS], axis=1)   # (epochs, T)
    np.testing.assert_allclose(w.sum(1), len(TASKS), atol=1e-4)
    assert (w > 0).all() and np.abs(w - 1).max() > 0.02                    # they moved
    # the shared layer is MMoE's expert layer (shared by both tasks), not a tower
    assert m.task_balancer.shared_name == "moe.w_in"


def _batch_losses(m, enc, df, y):
    batch = to_tensor_data(enc.transform(df), m.feature_columns)
    Y = torch.tensor(y[TASKS].to_numpy(), dtype=torch.float32)
    _, per_task = m.compute_loss(m(batch), Y)
    return per_task


def test_pcgrad_projected_gradients_do_not_conflict(byterec_encoded):
    """After the surgery, each task's projected gradient has no negative inner product with the other task's
    (shared coordinates); the sample has conflicting steps, so the projection really ran."""
    enc, df, y = byterec_encoded
    m = _mmoe(enc)
    m.compile("adam", lr=0.01, task_balancer=PCGrad(keep_last=True))
    bal = m.task_balancer
    seen_conflict = False
    for start in range(0, 200, 25):
        m.optimizer.zero_grad(set_to_none=True)
        bal.backward(_batch_losses(m, enc, df.iloc[start:start + 25], y.iloc[start:start + 25]), None, None)
        m.optimizer.step()
        G, P = bal.last_grads, bal.last_projected
        raw = float(G[0] @ G[1])
        seen_conflict |= raw < 0
        scale = float(G[0].norm() * G[1].norm())
        assert float(P[0] @ G[1]) >= -1e-5 * scale
        assert float(P[1] @ G[0]) >= -1e-5 * scale
        if raw >= 0:   # no conflict: left unchanged
            torch.testing.assert_close(P, G)
    assert seen_conflict


def test_pcgrad_task_specific_parameters_get_plain_gradients(byterec_encoded):
    enc, df, y = byterec_encoded
    m = SharedBottom(enc.feature_columns, bottom_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
                     task_names=TASKS, seed=1)
    m.compile("adam", lr=0.01)
    m.zero_grad()
    per_task = _batch_losses(m, enc, df.iloc[:64], y.iloc[:64])
    per_task.sum().backward()
    plain = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.compile("adam", lr=0.01, task_balancer="pcgrad")
    m.zero_grad(set_to_none=True)
    m.task_balancer.backward(_batch_losses(m, enc, df.iloc[:64], y.iloc[:64]), None, None)
    towers = [n for n, _ in m.named_parameters() if n.startswith("towers.")]
    assert towers
    for n, p in m.named_parameters():
        if n in towers:
            torch.testing.assert_close(p.grad, plain[n])


def test_project_conflicting_by_hand():
    g = torch.tensor([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pc, n = project_conflicting(g, order=[[1, 2], [0, 2], [0, 1]])
    # task 0 conflicts with task 1 only: g0 - (g0.g1)/|g1|^2 g1 = [1,0,2] + 0.5*[-1,1,0]
    torch.testing.assert_close(pc[0], torch.tensor([0.5, 0.5, 2.0]))
    # task 1 against task 0: |g0|^2 = 5, g1.g0 = -1, so g1 + g0 / 5
    torch.testing.assert_close(pc[1], torch.tensor([-0.8, 1.0, 0.4]))
    torch.testing.assert_close(pc[2], g[2])
    assert int(n) == 2
    assert float(pc[0] @ g[1]) >= -1e-6 and float(pc[1] @ g[0]) >= -1e-6


def test_balancer_survives_save_and_load(byterec_encoded, tmp_path):
    enc, df, y = byterec_encoded
    m = _mmoe(enc)
    m.compile("adam", lr=0.01, metrics=["auc"], task_balancer=GradNorm(alpha=0.5))
    m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    m.save(str(tmp_path / "m"))
    m2 = load_model(str(tmp_path / "m"))
    assert isinstance(m2.task_balancer, GradNorm) and m2.task_balancer.alpha == 0.5
    np.testing.assert_allclose(m2.predict(df), m.predict(df), atol=1e-6)
    m2.fit(df, y, batch_size=64, epochs=1, verbose=0)     # and it trains again


def test_balancer_checks(byterec_encoded):
    enc, df, y = byterec_encoded
    m = _mmoe(enc)
    with pytest.raises(ValueError, match="learns the task weights"):
        m.compile("adam", loss_weights=[1.0, 2.0], task_balancer="uncertainty")
    with pytest.raises(ValueError, match="Did you mean 'pcgrad'"):
        m.compile("adam", task_balancer="pcgard")
    m.compile("adam", loss_weights=[1.0, 2.0], task_balancer="pcgrad")   # PCGrad uses the fixed weights
    assert m.task_balancer.weights().tolist() == [1.0, 2.0]
    for name in ("pcgrad", "gradnorm"):   # several backward passes: refused under DDP, clearly
        with pytest.raises(RuntimeError, match="DistributedDataParallel"):
            get_balancer(name).check_world(2)
    UncertaintyWeighting().check_world(2)   # one backward pass: fine under DDP
    with pytest.warns(UserWarning, match="one task"):
        p = PLE(enc.feature_columns, task_names=["finish"], task_types=["binary"])
    with pytest.raises(ValueError, match="two or more tasks"):
        p.compile("adam", task_balancer="gradnorm")


def test_resume_restores_the_balancer_state(byterec_encoded, tmp_path):
    """A BackupAndRestore checkpoint carries the learned weights: resuming continues from them, and a run
    resumed after epoch 2 ends where an uninterrupted run ends."""
    from ctrkit.callbacks import BackupAndRestore
    from ctrkit.io import load_checkpoint
    enc, df, y = byterec_encoded
    path = str(tmp_path / "ckpt.pt")

    def run(epochs, resume=False):
        m = _mmoe(enc)
        m.compile("adam", lr=0.01, task_balancer=UncertaintyWeighting(lr=0.05))
        cb = BackupAndRestore(path, delete_checkpoint=False)
        m.fit(df, y, batch_size=50, epochs=epochs, verbose=0, callbacks=[cb], seed=4)
        return m
    full = run(3).task_balancer.log_vars.detach().clone()
    import os
    os.remove(path)
    part = run(2)
    saved = load_checkpoint(path)["task_balancer"]["log_vars"]
    torch.testing.assert_close(saved, part.task_balancer.log_vars.detach())
    resumed = run(3)                       # picks the checkpoint up: epoch 3 only
    torch.testing.assert_close(resumed.task_balancer.log_vars.detach(), full)
