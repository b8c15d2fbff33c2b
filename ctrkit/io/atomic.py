"""Atomic writes: a file or a directory is built next to its destination and renamed into place.

The promise: whatever stops a save (an exception, Ctrl-C, ``kill -9``, a full disk), the destination then holds
either the complete previous version or the complete new one, never a mix and never nothing.

Both end with the modes an ordinary write would give (``0o644`` files, ``0o755`` directories under umask 022),
not the private ones of their temporary names.

* A file (:func:`atomic_file`) is written to a temporary file, fsynced and renamed over the destination: one
  rename, atomic on a local POSIX file system.
* A directory (:func:`atomic_dir`) is written to a temporary directory; then the existing directory is renamed
  aside (``.<name>.ctrkit-old-<pid>-<token>``) and the new one renamed into place. Between these two renames the
  destination is briefly missing: an exception or Ctrl-C there puts the old directory back at once, and a save
  killed there (``kill -9``, power loss) leaves the old directory aside, where the next save or load of the same
  path (:func:`recover`) puts it back, with a warning naming what was restored.

Leftovers (``.<name>.ctrkit-tmp-<pid>-<token>``: a half-written new version; ``.<name>.ctrkit-old-<pid>-<token>``:
the previous version) carry the writing process's id. Those of a process that is no longer running (or of this
process, outside a save in progress) are recovered or removed by the next save or load of that path; those of a
running process (a save in progress elsewhere) are left alone.

Used by :func:`~ctrkit.io.save_model` and :func:`~ctrkit.io.save_checkpoint`.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_dir", "atomic_file", "recover", "RecoveryWarning"]

_LEFTOVER = re.compile(r"ctrkit-(tmp|old)-(\d+)-[A-Za-z0-9_]+")
_active: set[str] = set()  # leftover names of the saves in progress in this process
_active_lock = threading.Lock()


class RecoveryWarning(UserWarning):
    """A save was interrupted earlier: its leftovers were put back (the previous version) or removed."""


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


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's file-mode creation mask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:   # elsewhere: set and restore (os.umask has no read-only form)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _normal_mode(path: str, directory: bool) -> None:
    """Give a temporary file or directory the mode an ordinary ``open`` / ``os.makedirs`` would have
    (``0o644`` / ``0o755`` under the usual umask 022): ``mkstemp`` / ``mkdtemp`` make them private (600 / 700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _prefix(path: str, kind: str) -> str:
    return f".{os.path.basename(path)}.ctrkit-{kind}-{os.getpid()}-"


def _track(name: str, on: bool) -> None:
    with _active_lock:
        (_active.add if on else _active.discard)(name)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's live process (or unknowable): leave its files alone
        return True
    return True


def _stale_leftovers(path: str) -> list[tuple[str, str]]:
    """``(kind, full path)`` of the leftovers of interrupted saves of ``path`` ("tmp" or "old"), newest first."""
    parent, start = os.path.dirname(path), f".{os.path.basename(path)}."
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(start):
            continue
        m = _LEFTOVER.fullmatch(name[len(start):])
        if m is None:
            continue
        full = os.path.join(parent, name)
        pid = int(m.group(2))
        with _active_lock:
            busy = full in _active
        if busy or (pid != os.getpid() and _pid_alive(pid)):
            continue
        out.append((m.group(1), full))

    def mtime(item: tuple[str, str]) -> float:
        try:
            return os.path.getmtime(item[1])
        except OSError:
            return 0.0
    return sorted(out, key=mtime, reverse=True)


def _remove(p: str) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    else:
        os.remove(p)


def recover(path: str, what: str = "load") -> list[str]:
    """Put back or remove what an interrupted save of ``path`` left next to it; returns what was done.

    When ``path`` is missing and a previous version was left aside (``.<name>.ctrkit-old-*``, a save killed
    between its two renames), it is renamed back to ``path``. Half-written new versions (``.<name>.ctrkit-tmp-*``)
    and previous versions made obsolete by a completed save are removed. Each action is reported in one
    :class:`RecoveryWarning` (``what`` names the caller). Failures to remove (a read-only directory) are reported,
    never raised.
    """
    path = os.path.abspath(os.fspath(path))
    leftovers = _stale_leftovers(path)
    if not leftovers:
        return []
    done: list[str] = []
    olds = [p for kind, p in leftovers if kind == "old"]
    rest = [p for kind, p in leftovers if kind == "tmp"]
    if olds and not os.path.lexists(path):
        back, olds = olds[0], olds[1:]
        try:
            os.replace(back, path)
            _fsync_dir(os.path.dirname(path))
            done.append(f"restored {path!r} from {os.path.basename(back)!r}, the previous version left aside by a "
                        "save that was interrupted between its two renames (the new version was not complete)")
        except OSError as e:
            done.append(f"could not restore {path!r} from {back!r} ({e}); rename it to {path!r} by hand")
    for p in olds + rest:
        try:
            _remove(p)
            done.append(f"removed {os.path.basename(p)!r}, left by an interrupted save")
        except OSError as e:
            done.append(f"could not remove {p!r} ({e}), left by an interrupted save; delete it by hand")
    warnings.warn(f"{what}: {'; '.join(done)}.", RecoveryWarning, stacklevel=3)
    return done


def _fsync_tree(d: str) -> None:
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p):
            _fsync_tree(p)
            continue
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(d)


def atomic_dir(path: str, write: Callable[[str], None], what: str = "save_model") -> None:
    """Fill a temporary directory with ``write(tmp_dir)``, fsync its files and rename it to ``path``.

    An existing directory at ``path`` is replaced; an existing file there raises :class:`FileExistsError`
    (``what`` names the caller in that message). Whatever interrupts the save, ``path`` then holds the complete
    previous directory or the complete new one (see the module documentation).
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{what}: {path!r} exists and is not a directory. Pass a directory path (a model is "
                              "saved as a directory), or move the file away.")
    os.makedirs(parent, exist_ok=True)
    recover(path, what)
    old = os.path.join(parent, f"{_prefix(path, 'old')}{uuid.uuid4().hex[:8]}")
    _track(old, True)
    tmp = ""
    try:
        tmp = tempfile.mkdtemp(prefix=_prefix(path, "tmp"), dir=parent)
        _track(tmp, True)
        _normal_mode(tmp, directory=True)
        write(tmp)
        _fsync_tree(tmp)
        if os.path.isdir(path):
            os.replace(path, old)
            os.replace(tmp, path)
            _fsync_dir(parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
            _fsync_dir(parent)
    except BaseException:
        # Interrupted between the two renames: the previous version goes back (judged from the file system, so
        # that an interrupt arriving right after a rename is handled too).
        if not os.path.lexists(path) and os.path.isdir(old):
            try:
                os.replace(old, path)
                _fsync_dir(parent)
            except BaseException as e:  # put back by recover() on the next save or load of this path
                warnings.warn(f"{what}: the save of {path!r} was interrupted and the previous version could not be "
                              f"put back ({e!r}); it is at {old!r}, and the next load or save of {path!r} restores "
                              "it.", RecoveryWarning, stacklevel=2)
        raise
    finally:
        _track(old, False)
        if tmp:
            _track(tmp, False)
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)


def atomic_file(path: str, write: Callable[[IO[bytes]], None], what: str = "save_checkpoint") -> str:
    """Write ``path`` through ``write(binary_file)``: a temporary file, flushed, fsynced and renamed into place.
    Returns the absolute path. Whatever interrupts the write, ``path`` holds the complete previous file or the
    complete new one; a temporary file left by a killed write is removed by the next write (or
    :func:`recover`)."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    recover(path, what)
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path, "tmp"), dir=parent)
        _track(tmp, True)
        _normal_mode(tmp, directory=False)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(parent)
    except BaseException:
        if tmp and os.path.lexists(tmp):
            try:
                os.remove(tmp)
            except OSError:  # removed by the next write to this path
                pass
        raise
    finally:
        if tmp:
            _track(tmp, False)
    return path
