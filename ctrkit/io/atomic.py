"""Atomic writes: a file or a directory is built next to its destination and renamed into place.

A crash (even ``kill -9``) mid-write leaves either the previous version or the new one, never a half-written
file or directory. Used by :func:`~ctrkit.io.save_model` and :func:`~ctrkit.io.save_checkpoint`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_dir", "atomic_file"]


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be fsynced)."""
    try:
        dfd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def atomic_dir(path: str, write: Callable[[str], None], what: str = "save_model") -> None:
    """Fill a temporary directory with ``write(tmp_dir)``, fsync its files and rename it to ``path``.

    An existing directory at ``path`` is replaced; an existing file there raises :class:`FileExistsError`
    (``what`` names the caller in that message).
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".ctrkit-tmp-", dir=parent)
    try:
        write(tmp)
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), "rb") as fh:
                os.fsync(fh.fileno())
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise FileExistsError(f"{what}: {path!r} exists and is not a directory.")
            old = tempfile.mkdtemp(prefix=".ctrkit-old-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_file(path: str, write: Callable[[IO[bytes]], None]) -> str:
    """Write ``path`` through ``write(binary_file)``: a temporary file, flushed, fsynced and renamed into place.
    Returns the absolute path."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(parent)
    return path
