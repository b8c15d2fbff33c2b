"""Task balancing: how per-task losses become parameter gradients in a multi-task step.

The :class:`~ctrkit.training.Trainer` never asks which model or balancer it runs. Each step it calls
``balancer.backward(per_task, total, reg)`` (which fills the ``.grad`` of the model's parameters and returns
the loss to log), then ``optimizer.step()``, then ``balancer.after_step()``; at the end of each epoch it adds
``balancer.epoch_logs()`` to the History. ``model.compile(task_balancer=...)`` picks the balancer:

* ``None`` — :class:`FixedWeights`: ``sum_t w_t L_t`` with ``compile(loss_weights=...)`` (default 1 each).
* ``"uncertainty"`` — :class:`UncertaintyWeighting` (Kendall, Gal & Cipolla, CVPR 2018): learned
  log-variances ``s_t``; loss ``sum_t c_t exp(-s_t) L_t + s_t / 2`` with ``c_t = 1`` for classification and
  ``1/2`` for regression tasks.
* ``"gradnorm"`` — :class:`GradNorm` (Chen et al., ICML 2018): weights moved so that the gradient norms of the
  weighted task losses at the last shared layer follow each task's relative training rate (``alpha``);
  renormalised to sum to the number of tasks after every update.
* ``"pcgrad"`` — :class:`PCGrad` (Yu et al., NeurIPS 2020): per-task gradients on the shared parameters; when
  two conflict (negative inner product) one is projected onto the normal plane of the other, in random task
  order; parameters used by one task only get their plain gradient.

GradNorm and PCGrad need one backward pass per task (``torch.autograd.grad``), which
``DistributedDataParallel`` does not synchronise: they raise an error under DDP. Uncertainty weighting is one
backward pass and works under DDP (its log-variances' gradients are averaged over the ranks).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..exceptions import suggest

__all__ = ["TaskBalancer", "FixedWeights", "UncertaintyWeighting", "GradNorm", "PCGrad", "get_balancer",
           "project_conflicting", "BALANCERS"]


class TaskBalancer:
    """Base class: the fixed-weight sum. Subclasses override :meth:`backward` and friends.

    Lifecycle: ``bind(model, trainer)`` in ``compile``; ``check_world(world_size)`` when ``fit`` starts; per step
    ``backward`` → (clip, optimizer step) → ``after_step``; ``epoch_logs()`` at each epoch's end.
    """

    name = "fixed"
    learns_weights = False      # True: the weights are learned (``compile(loss_weights=...)`` is refused)
    per_task_backward = False   # True: one backward pass per task (refused under DDP)

    def __init__(self) -> None:
        self.model: Any = None
        self.trainer: Any = None
        self.world_size = 1

    def bind(self, model: Any, trainer: Any) -> None:
        """Attach to a compiled model and its :class:`~ctrkit.training.Trainer` (made by ``compile``, after the
        optimizer is built): the fixed loss weights and the optimizer are the trainer's."""
        self.model, self.trainer = model, trainer
        self.num_tasks = len(model.task_names)
        if self.per_task_backward and self.num_tasks < 2:
            raise ValueError(f"compile: task_balancer={self.name!r} balances two or more tasks; "
                             f"{type(model).__name__} has one ({model.task_names}). Use task_balancer=None.")
        if self.per_task_backward and getattr(getattr(model, "embedding", None), "sparse", False):
            raise ValueError(f"compile: task_balancer={self.name!r} needs dense gradients; the model was built "
                             "with sparse=True. Build it with sparse=False.")

    def check_world(self, world_size: int) -> None:
        """Called when ``fit`` starts; refuses multi-process training where it would be wrong."""
        self.world_size = int(world_size)
        if self.per_task_backward and world_size > 1:
            raise RuntimeError(
                f"fit: task_balancer={self.name!r} runs one backward pass per task with torch.autograd.grad, which "
                f"DistributedDataParallel does not all-reduce; with {world_size} processes the ranks would drift "
                "apart. Train on one process, or use task_balancer='uncertainty' or fixed loss_weights under DDP.")

    def weights(self) -> torch.Tensor:
        """The current per-task loss weights ``(T,)``."""
        return self.trainer.loss.weights

    def backward(self, per_task: torch.Tensor, total: torch.Tensor, reg: torch.Tensor | float | None
                 ) -> torch.Tensor:
        """Fill the parameters' ``.grad`` (they were zeroed) and return the step's loss for the logs.

        Args:
            per_task: the unweighted per-task losses ``(T,)`` from ``model.compute_loss``.
            total: ``model.compute_loss``'s weighted total (fixed ``loss_weights``).
            reg: the regularisation loss, or None.
        """
        loss = total if reg is None else total + reg
        loss.backward()
        return loss

    def after_step(self) -> None:
        """Called after the optimizer step."""

    def epoch_logs(self) -> dict[str, float]:
        """Values added to the History at the end of each epoch."""
        return {}

    def config(self) -> dict[str, Any] | None:
        """The JSON-ready description saved with the model (None for fixed weights)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def _weight_logs(self) -> dict[str, float]:
        w = self.weights().detach().cpu().tolist()
        return {f"loss_weight_{t}": float(v) for t, v in zip(self.model.task_names, w)}

    def _lr(self, lr: float | None) -> float:
        if lr is not None:
            return float(lr)
        return float(self.trainer.optimizer.param_groups[0]["lr"])


class FixedWeights(TaskBalancer):
    """``sum_t w_t L_t`` with the fixed ``compile(loss_weights=...)`` (the default)."""


class UncertaintyWeighting(TaskBalancer):
    """Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018).

    Learns ``s_t = log sigma_t^2`` per task (initialised to 0) with its own Adam optimizer (learning rate
    ``lr``, default: the model's). The objective is ``sum_t c_t exp(-s_t) L_t + s_t / 2``, ``c_t = 1`` for
    binary / multiclass tasks and ``1/2`` for regression (the paper's eq. 10); the logged weights are
    ``c_t exp(-s_t)``.

    Example:
        >>> b = UncertaintyWeighting(lr=0.01)
        >>> b.config()
        {'name': 'uncertainty', 'lr': 0.01}
    """

    name = "uncertainty"
    learns_weights = True

    def __init__(self, lr: float | None = None) -> None:
        super().__init__()
        self.lr = lr

    def bind(self, model: Any, trainer: Any) -> None:
        super().bind(model, trainer)
        self.log_vars = torch.zeros(self.num_tasks, device=model.device, requires_grad=True)
        self.scale = torch.tensor([0.5 if t == "regression" else 1.0 for t in model.task_types], device=model.device)
        self.opt = torch.optim.Adam([self.log_vars], lr=self._lr(self.lr))

    def weights(self) -> torch.Tensor:
        return self.scale * torch.exp(-self.log_vars.detach())

    def backward(self, per_task, total, reg):
        loss = (self.scale * torch.exp(-self.log_vars) * per_task).sum() + 0.5 * self.log_vars.sum()
        if reg is not None:
            loss = loss + reg
        loss.backward()
        return loss

    def after_step(self) -> None:
        if self.log_vars.grad is not None and self.world_size > 1:
            torch.distributed.all_reduce(self.log_vars.grad)
            self.log_vars.grad /= self.world_size
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def epoch_logs(self) -> dict[str, float]:
        return self._weight_logs()

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        return {"log_vars": self.log_vars.detach().cpu(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])
        self.opt.load_state_dict(state["opt"])


def _per_task_grads(per_task: torch.Tensor, params: list[torch.Tensor], weights: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """``(T, P)``: the flattened gradient of each (weighted) task loss w.r.t. ``params`` (zeros where unused)."""
    rows = []
    for t in range(per_task.shape[0]):
        lt = per_task[t] if weights is None else per_task[t] * weights[t]
        gs = torch.autograd.grad(lt, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(gs, params)]))
    return torch.stack(rows)


def _shared_mask(grads: torch.Tensor) -> torch.Tensor:
    """Coordinates that two or more tasks' gradients touch ``(P,)``."""
    return (grads != 0).sum(0) >= 2


class GradNorm(TaskBalancer):
    """GradNorm (Chen et al., ICML 2018): learned loss weights that equalise the tasks' training rates.

    Each step, for the last shared weight matrix ``W`` (the last non-bias parameter of two or more dimensions,
    in definition order, whose coordinates receive gradient from two or more tasks in the first batch; its
    shared coordinates only; ``shared_name`` tells which):
    ``G_t = ||grad_W w_t L_t||``, ``r_t = (L_t / L_t(0)) / mean_k (L_k / L_k(0))`` and the weights take an
    Adam step (rate ``lr``, default the model's) on ``sum_t |G_t - mean(G) r_t^alpha|`` (the target held
    constant), then are renormalised to sum to the number of tasks. The network is trained on
    ``sum_t w_t L_t`` with the weights of the step.

    Args:
        alpha: the restoring force towards equal training rates (the paper uses 0.12–3; 1.5 is common).
        lr: learning rate of the weights.

    Example:
        >>> GradNorm(alpha=1.0).config()
        {'name': 'gradnorm', 'alpha': 1.0, 'lr': None}
    """

    name = "gradnorm"
    learns_weights = True
    per_task_backward = True

    def __init__(self, alpha: float = 1.5, lr: float | None = None) -> None:
        super().__init__()
        if not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"GradNorm: alpha must be a number >= 0, got {alpha!r}.")
        self.alpha, self.lr = float(alpha), lr

    def bind(self, model: Any, trainer: Any) -> None:
        super().bind(model, trainer)
        self.w = torch.ones(self.num_tasks, device=model.device, requires_grad=True)
        self.opt = torch.optim.Adam([self.w], lr=self._lr(self.lr))
        self.initial_losses: torch.Tensor | None = None
        self.shared: list[torch.Tensor] | None = None
        self.shared_name: str | None = None
        self.mask: torch.Tensor | None = None

    def weights(self) -> torch.Tensor:
        return self.w.detach()

    def _find_shared(self, per_task: torch.Tensor) -> None:
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and p.dim() >= 2
                 and not any("bias" in part for part in n.split("."))]
        grads = _per_task_grads(per_task, [p for _, p in named])
        shared, start = None, 0
        for n, p in named:
            m = _shared_mask(grads[:, start:start + p.numel()])
            if m.any():
                shared = (n, p, m)
            start += p.numel()
        if shared is None:
            raise RuntimeError(f"GradNorm: no weight matrix of {type(self.model).__name__} receives gradient from "
                               "two or more tasks, so there is no shared layer to balance at.")
        self.shared_name, p, self.mask = shared
        self.shared = [p]

    def backward(self, per_task, total, reg):
        if self.shared is None:
            self._find_shared(per_task)
        if self.initial_losses is None:
            self.initial_losses = per_task.detach().clamp_min(1e-12)
        g = _per_task_grads(per_task, self.shared)[:, self.mask].norm(dim=1)        # ||grad_W L_t||  (T,)
        w = self.w.detach()
        loss = (w * per_task).sum()
        if reg is not None:
            loss = loss + reg
        loss.backward()
        with torch.no_grad():
            G = w * g
            ratio = per_task.detach() / self.initial_losses
            target = G.mean() * (ratio / ratio.mean()) ** self.alpha
            self.w.grad = torch.sign(G - target) * g        # d/dw_t of |w_t g_t - target_t|
        return loss

    def after_step(self) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.w.clamp_(min=1e-4)
            self.w.mul_(self.num_tasks / self.w.sum())

    def epoch_logs(self) -> dict[str, float]:
        return self._weight_logs()

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "alpha": self.alpha, "lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach().cpu(), "opt": self.opt.state_dict(),
                "initial_losses": None if self.initial_losses is None else self.initial_losses.cpu()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.opt.load_state_dict(state["opt"])
        il = state.get("initial_losses")
        self.initial_losses = None if il is None else il.to(self.w.device)


def project_conflicting(grads: torch.Tensor, order: list[list[int]] | None = None,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PCGrad's gradient surgery on per-task gradients ``(T, P)`` of shared parameters.

    For each task ``i`` and every other task ``j`` in random order: if ``g_i · g_j < 0``,
    ``g_i ← g_i - (g_i · g_j) / ||g_j||² g_j`` (``g_j`` the original gradient). No data-dependent branch:
    the projection coefficient is ``min(g_i · g_j, 0)``.

    Returns:
        the projected gradients ``(T, P)`` and the number of conflicting pairs met (a 0-d tensor).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
        >>> pc, n = project_conflicting(g, order=[[1], [0]])
        >>> pc.tolist(), int(n)
        ([[0.5, 0.5], [0.0, 1.0]], 2)
    """
    T = grads.shape[0]
    sq = (grads * grads).sum(1).clamp_min(1e-20)
    pc = grads.clone()
    conflicts = grads.new_zeros(())
    for i in range(T):
        others = order[i] if order is not None else \
            [j for j in torch.randperm(T, generator=generator).tolist() if j != i]
        for j in others:
            dot = pc[i] @ grads[j]
            pc[i] = pc[i] - torch.clamp(dot, max=0.0) / sq[j] * grads[j]
            conflicts = conflicts + (dot < 0).to(conflicts.dtype)
    return pc, conflicts


class PCGrad(TaskBalancer):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    Each step computes every task's gradient ``g_t`` of ``w_t L_t`` (fixed ``loss_weights``) w.r.t. all
    parameters (one backward pass per task). Coordinates that two or more tasks touch are shared: on them the
    gradients go through :func:`project_conflicting` and are summed; a coordinate used by one task (its tower,
    its gate, its own experts) gets that task's plain gradient. The History gets ``pcgrad_conflict_rate``, the
    share of (task, other task) pairs whose gradients conflicted during the epoch.

    Costs T backward passes and a ``(T, number of parameters)`` buffer per step: fine for ranking models with
    moderate embedding tables; for very large tables prefer ``"uncertainty"`` or fixed weights.

    Args:
        keep_last: keep the last step's shared gradients before and after projection (``last_grads``,
            ``last_projected``, ``(T, P)``) for inspection.

    Example:
        >>> PCGrad().config()
        {'name': 'pcgrad'}
    """

    name = "pcgrad"
    per_task_backward = True

    def __init__(self, keep_last: bool = False) -> None:
        super().__init__()
        self.keep_last = keep_last
        self.last_grads: torch.Tensor | None = None
        self.last_projected: torch.Tensor | None = None

    def bind(self, model: Any, trainer: Any) -> None:
        super().bind(model, trainer)
        self._conflicts = torch.zeros((), device=model.device)
        self._pairs = 0

    def backward(self, per_task, total, reg):
        params = [p for p in self.model.parameters() if p.requires_grad]
        weights = self.trainer.loss.weights
        G = _per_task_grads(per_task, params, weights)                       # (T, P)
        shared = _shared_mask(G)
        Gs = G * shared
        pc, conflicts = project_conflicting(Gs)
        if self.keep_last:
            self.last_grads, self.last_projected = Gs.detach(), pc.detach()
        final = torch.where(shared, pc.sum(0), G.sum(0))
        start = 0
        for p in params:
            n = p.numel()
            p.grad = final[start:start + n].view_as(p).clone()
            start += n
        T = G.shape[0]
        self._conflicts += conflicts.detach()
        self._pairs += T * (T - 1)
        loss = (per_task * weights).sum().detach()
        if reg is not None:
            reg.backward()
            loss = loss + reg.detach()
        return loss

    def epoch_logs(self) -> dict[str, float]:
        rate = float(self._conflicts) / max(self._pairs, 1)
        self._conflicts.zero_()
        self._pairs = 0
        return {"pcgrad_conflict_rate": rate}

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


BALANCERS = {"fixed": FixedWeights, "uncertainty": UncertaintyWeighting, "gradnorm": GradNorm, "pcgrad": PCGrad}


def get_balancer(spec: Any) -> TaskBalancer:
    """A balancer from None (fixed weights), a name, a saved ``config()`` dict or an instance."""
    if spec is None:
        return FixedWeights()
    if isinstance(spec, TaskBalancer):
        return spec
    if isinstance(spec, Mapping):
        kw = dict(spec)
        name = kw.pop("name", None)
        return _by_name(name)(**kw)
    if isinstance(spec, str):
        return _by_name(spec)()
    raise TypeError(f"compile: task_balancer must be None, a name {sorted(BALANCERS)} or a TaskBalancer, "
                    f"got {type(spec).__name__}.")


def _by_name(name: Any) -> type:
    key = str(name).lower()
    if key not in BALANCERS:
        raise ValueError(f"compile: unknown task_balancer {name!r}.{suggest(key, BALANCERS)} "
                         f"Valid names: {sorted(BALANCERS)} (or pass an instance, e.g. GradNorm(alpha=1.0)).")
    return BALANCERS[key]
