"""Saving and loading: model directories (:mod:`ctrkit.io.model_dir`) and training checkpoints
(:mod:`ctrkit.io.checkpoint`), both written atomically (:mod:`ctrkit.io.atomic`).

This layer sits below the models and the training loop: it never imports :mod:`ctrkit.models` or
:mod:`ctrkit.training`. A model is saved through its contract (class name, ``get_config()``,
``state_dict()``, ``encoder``) and loaded by class name from :mod:`ctrkit.registry`.
"""
from __future__ import annotations

from .checkpoint import (
                         CHECKPOINT_FORMAT,
                         CHECKPOINT_VERSION,
                         capture_host_rng,
                         load_checkpoint,
                         restore_host_rng,
                         save_checkpoint,
)
from .model_dir import FORMAT_VERSION, load_model, save_model

__all__ = ["save_model", "load_model", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "capture_host_rng", "restore_host_rng"]
