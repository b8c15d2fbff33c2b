"""Saving and loading models as plain files: never a pickled module, never code run at load time.

A saved model is a directory::

    config.json      format version, model class name, constructor arguments (feature columns as JSON),
                     compile settings, negative-sampling rates and calibrators ("outputs"), ctrkit / torch
                     versions
    weights.pt       the state dict, written with torch.save and read with torch.load(weights_only=True)
    encoder.json     the fitted FeatureEncoder (vocabularies, scaler statistics), when the model has one

The directory is written next to its destination and renamed into place, so whatever interrupts a save (an
exception, Ctrl-C, ``kill -9``, a full disk) the path holds the complete previous model or the complete new one;
a previous model left aside by a save killed between its two renames is put back by the next save or load, with
a :class:`~ctrkit.io.atomic.RecoveryWarning` (:func:`ctrkit.io.atomic.atomic_dir`).

Saving works on the model contract alone (``type(model).__name__``, ``get_config()``, ``state_dict()``,
``encoder``, ``trainer.spec``), and loading finds the class by name in :mod:`ctrkit.registry`: this module
never imports :mod:`ctrkit.models` or :mod:`ctrkit.training`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import torch

from .._version import __version__
from ..exceptions import ModelFormatError
from ..registry import get_model_class
from .atomic import atomic_dir, recover

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_CONFIG, _WEIGHTS, _ENCODER = "config.json", "weights.pt", "encoder.json"


def save_model(model: Any, path: str) -> None:
    """Write ``model`` (config, weights, encoder) to the directory ``path``, atomically.

    In a distributed run (``torchrun``) only rank 0 writes; on the other ranks this does nothing.
    """
    from ..distributed import is_main_process
    if not is_main_process():
        return
    config = {
        "format_version": FORMAT_VERSION,
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "compile": dict(model.trainer.spec) if getattr(model, "trainer", None) is not None else {},
        # negative-sampling rates and calibrators (numbers only), when the model has any
        "outputs": getattr(model, "output_config", lambda: None)(),
        "ctrkit_version": __version__,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    getattr(model, "check_finite_weights", lambda where: None)("save")  # never write a diverged model
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}

    def write(d: str) -> None:
        with open(os.path.join(d, _CONFIG), "w") as fh:
            json.dump(config, fh, indent=2)
        torch.save(state, os.path.join(d, _WEIGHTS))
        if getattr(model, "encoder", None) is not None:
            with open(os.path.join(d, _ENCODER), "w") as fh:
                json.dump(model.encoder.to_dict(), fh)

    atomic_dir(path, write, "save_model")


def _legacy_leftovers(path: str) -> list[str]:
    """Model directories an interrupted save of an older ctrkit moved aside (named ``.ctrkit-old-*``, with no
    trace of the path it came from)."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    return [os.path.join(parent, n) for n in names
            if n.startswith(".ctrkit-old-") and os.path.isfile(os.path.join(parent, n, _CONFIG))]


def load_model(path: str, device: str | None = None, compile: bool = True) -> Any:
    """Rebuild a model saved by :func:`save_model` (or ``model.save``).

    Args:
        path: the saved directory.
        device: where to put the model (default: the device it was built for if available, else CPU).
        compile: re-apply the saved ``compile`` settings when they were given by name.

    Raises:
        ModelFormatError: the directory is not a ctrkit model, a file is truncated or corrupted, or it was saved
            by a newer format version.
    """
    from ..preprocessing import FeatureEncoder

    path = os.fspath(path)
    recover(path, "load_model")  # a save killed between its two renames: put the previous model back
    cfg_path = os.path.join(path, _CONFIG)
    if not os.path.isdir(path):
        legacy = _legacy_leftovers(path) if not os.path.lexists(path) else []
        hint = (f" Found {legacy} next to it: a model moved aside by an interrupted save of an older ctrkit; if it "
                f"is yours, rename it to {path!r}." if legacy else "")
        raise ModelFormatError(f"load_model: {path!r} is not a directory. Pass the directory written by "
                               f"model.save().{hint}")
    if not os.path.exists(cfg_path):
        raise ModelFormatError(f"load_model: {path!r} has no {_CONFIG}; it is not a ctrkit model directory "
                               f"(found: {sorted(os.listdir(path))[:10]}).")
    try:
        with open(cfg_path) as fh:
            meta = json.load(fh)
        version = int(meta["format_version"])
        class_name, config = meta["class_name"], meta["config"]
        if not isinstance(config, dict):
            raise TypeError(f"'config' must be a JSON object, got {type(config).__name__}")
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFormatError(f"load_model: {cfg_path!r} is corrupted or incomplete ({type(e).__name__}: {e}). "
                               "Save the model again, or restore the file from a copy.") from None
    if version > FORMAT_VERSION:
        raise ModelFormatError(f"load_model: {path!r} was saved with format version {version}, newer than this "
                               f"ctrkit ({__version__}) understands ({FORMAT_VERSION}). Upgrade ctrkit.")
    try:
        cls = get_model_class(class_name)
    except KeyError as e:
        raise ModelFormatError(f"load_model: {e.args[0]}") from None
    from ..features import config_from_json
    try:
        kwargs = config_from_json(config)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFormatError(f"load_model: the constructor arguments in {cfg_path!r} are corrupted "
                               f"({type(e).__name__}: {e}). Save the model again.") from None
    if device is not None:
        kwargs["device"] = device
    elif kwargs.get("device", "cpu") not in ("cpu", "auto") and not torch.cuda.is_available():
        kwargs["device"] = "cpu"
    encoder = None
    enc_path = os.path.join(path, _ENCODER)
    if os.path.exists(enc_path):
        try:
            with open(enc_path) as fh:
                encoder = FeatureEncoder.from_dict(json.load(fh))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelFormatError(f"load_model: {enc_path!r} is corrupted ({type(e).__name__}: {e}). Save the "
                                   "model and its encoder again with model.save().") from None
    try:
        model = cls(**kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFormatError(f"load_model: {class_name} cannot be built from the arguments in {cfg_path!r} "
                               f"({type(e).__name__}: {str(e)[:300]}). The file was edited or comes from another "
                               "ctrkit version; save the model again.") from None
    if encoder is not None:
        enc_cols = {f.name: f for f in encoder.feature_columns}
        bad = [f.name for f in model.feature_columns if f.name in enc_cols and (
            getattr(f, "vocabulary_size", None) != getattr(enc_cols[f.name], "vocabulary_size", None)
            or type(f) is not type(enc_cols[f.name]))]
        missing = [f.name for f in model.feature_columns if f.name not in enc_cols]  # fit/predict would blame the data
        if missing:
            raise ModelFormatError(
                f"load_model: {enc_path!r} does not encode the model's feature columns {missing} (it encodes "
                f"{sorted(enc_cols)}). The file was edited or comes from another save; save the model and its "
                "encoder together with model.save().")
        if bad:
            raise ModelFormatError(
                f"load_model: the encoder in {path!r} does not match the model's feature columns (different "
                f"vocabulary size or type: {bad}). The files come from different saves; save the model and its "
                "encoder together with model.save().")
    model.encoder = encoder
    try:
        state = torch.load(os.path.join(path, _WEIGHTS), map_location=model.device, weights_only=True)
    except FileNotFoundError:
        raise ModelFormatError(f"load_model: {path!r} has no {_WEIGHTS} (found: {sorted(os.listdir(path))}). "
                               "The save did not complete; save the model again.") from None
    except Exception as e:  # truncated zip, bad pickle opcodes, refused globals ...
        raise ModelFormatError(f"load_model: {_WEIGHTS} in {path!r} is truncated or corrupted "
                               f"({type(e).__name__}: {str(e)[:200]}).") from None
    if not isinstance(state, dict):
        raise ModelFormatError(f"load_model: {os.path.join(path, _WEIGHTS)!r} holds a {type(state).__name__}, not a "
                               "state dict (parameter name -> tensor). Save the model again with model.save().")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ModelFormatError(f"load_model: the weights in {os.path.join(path, _WEIGHTS)!r} do not match the saved "
                               f"config {cfg_path!r} ({str(e)[:300]}). The files come from different saves; save "
                               "the model again.") from None
    if meta.get("outputs"):
        try:
            model.load_output_config(meta["outputs"])
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ModelFormatError(f"load_model: the 'outputs' (negative-sampling rates, calibration) in "
                                   f"{cfg_path!r} are corrupted ({type(e).__name__}: {str(e)[:300]}). Save the model "
                                   "again.") from None
    if compile:
        compile_from_spec(model, meta.get("compile") or {})
    return model


def compile_from_spec(model: Any, spec: dict[str, Any]) -> None:
    """``model.compile`` with the settings a trainer recorded (``Trainer.spec``), when the optimizer was given by
    name (an optimizer instance cannot be recorded: the model is left uncompiled)."""
    if not spec.get("optimizer"):
        return
    model.compile(spec["optimizer"], loss=spec.get("loss"), metrics=spec.get("metrics"),
                  loss_weights=spec.get("loss_weights"), lr=spec.get("lr"),
                  grad_clip_norm=spec.get("grad_clip_norm"), task_balancer=spec.get("task_balancer"),
                  **({"init_output_bias": bool(spec["init_output_bias"])} if "init_output_bias" in spec else {}),
                  **({"group_by": spec["group_by"]} if spec.get("group_by") else {}))
