"""Training: the Trainer loop, per-task losses and optimizers."""
from .losses import LOSSES, get_loss, resolve_task_losses
from .optim import OPTIMIZERS, MultiOptimizer, build_optimizer
from .trainer import Trainer

__all__ = ["Trainer", "get_loss", "resolve_task_losses", "LOSSES", "build_optimizer", "MultiOptimizer",
           "OPTIMIZERS"]
