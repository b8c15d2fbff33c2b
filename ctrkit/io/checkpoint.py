"""Resumable training checkpoints: one file, written atomically, readable with ``torch.load(weights_only=True)``.

A checkpoint holds everything ``fit`` needs to continue exactly where it stopped: the model weights, the
optimizer state, the state of stateful callbacks (LR schedulers, early stopping, ...), the history so far, the
position (epoch and step within the epoch), the partial loss sums of the current epoch, the shuffling seed,
and the RNG states (torch per rank, and the main process's NumPy and Python ones). Everything is stored as
tensors and plain Python values, so loading never unpickles code.

Write one with the :class:`~ctrkit.callbacks.BackupAndRestore` callback and continue with
``model.fit(..., resume_from=path)``. On CPU with the same seed, an interrupted-then-resumed run ends with the
same weights as an uninterrupted one.

The file is written next to its destination under a temporary name, flushed to disk and renamed over the
destination, so a crash (even ``kill -9``, or a full disk) mid-write leaves either the previous checkpoint or the
new one, never a truncated file; the temporary file of a killed write is removed by the next save or load.
"""
from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..exceptions import ModelFormatError
from .atomic import atomic_file, recover

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION",
           "capture_host_rng", "restore_host_rng"]

CHECKPOINT_FORMAT = "ctrkit-checkpoint"
CHECKPOINT_VERSION = 1


def capture_host_rng() -> dict[str, Any]:
    """The global NumPy and Python RNG states as tensors / plain values (``weights_only``-safe)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, pgauss = random.getstate()
    return {"numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": int(version), "state": torch.tensor(list(state), dtype=torch.int64),
                       "gauss": None if pgauss is None else float(pgauss)}}


def restore_host_rng(state: Mapping[str, Any]) -> None:
    """Set the global NumPy and Python RNGs from :func:`capture_host_rng` output."""
    npst = state.get("numpy")
    if npst:
        np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), int(npst["pos"]),
                             int(npst["has_gauss"]), float(npst["gauss"])))
    pyst = state.get("python")
    if pyst:
        random.setstate((int(pyst["version"]), tuple(int(v) for v in pyst["state"].tolist()), pyst["gauss"]))


def save_checkpoint(path: str, state: Mapping[str, Any]) -> str:
    """Write a checkpoint dict to ``path`` atomically (temporary file, fsync, rename). Returns ``path``.

    Args:
        path: the file to (re)place.
        state: tensors and plain Python values only (what ``torch.load(weights_only=True)`` can read back);
            the format marker, version and a timestamp are added.

    Example:
        >>> import tempfile, os, torch
        >>> p = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
        >>> _ = save_checkpoint(p, {"epoch": 3, "model": {"w": torch.ones(2)}})
        >>> load_checkpoint(p)["epoch"]
        3
    """
    payload = dict(state)
    payload.setdefault("format", CHECKPOINT_FORMAT)
    payload.setdefault("format_version", CHECKPOINT_VERSION)
    payload.setdefault("ctrkit_version", __version__)
    payload.setdefault("saved_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return atomic_file(path, lambda fh: torch.save(payload, fh), "save_checkpoint")


def load_checkpoint(path: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``: no code runs).

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFormatError: the file is truncated or corrupted, is not a ctrkit checkpoint, or has a newer format.
    """
    path = os.fspath(path)
    recover(path, "load_checkpoint")  # temporary files of a killed write: removed
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path!r}. Pass the file written by "
                                "BackupAndRestore(path) (or save_checkpoint).")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad opcodes, refused globals ...
        raise ModelFormatError(f"load_checkpoint: {path!r} is truncated or corrupted ({type(e).__name__}: "
                               f"{str(e)[:200]}). Resume from an earlier checkpoint or start over.") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFormatError(f"load_checkpoint: {path!r} is not a ctrkit checkpoint (no format marker "
                               f"{CHECKPOINT_FORMAT!r}). A model directory is loaded with ctrkit.load_model.")
    if int(ckpt.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise ModelFormatError(f"load_checkpoint: {path!r} has checkpoint format {ckpt['format_version']}, newer "
                               f"than this ctrkit ({__version__}) reads ({CHECKPOINT_VERSION}). Upgrade ctrkit.")
    return ckpt
