"""Training: the Trainer loop, per-task losses, task balancing and optimizers."""
from .balancing import GradNorm, PCGrad, TaskBalancer, UncertaintyWeighting, get_balancer
from .losses import LOSSES, get_loss, resolve_task_losses
from .optim import OPTIMIZERS, MultiOptimizer, build_optimizer
from .trainer import Trainer, log_key

__all__ = ["Trainer", "log_key", "get_loss", "resolve_task_losses", "LOSSES", "build_optimizer", "MultiOptimizer",
           "OPTIMIZERS", "TaskBalancer", "UncertaintyWeighting", "GradNorm", "PCGrad", "get_balancer"]
