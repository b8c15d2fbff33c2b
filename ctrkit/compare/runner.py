"""Independent jobs of a comparison, in worker processes with one torch thread each.

The networks of a comparison are small: torch's intra-op threads gain them little, while independent
(model, seed) runs side by side on separate cores do. :func:`run_jobs` runs ``fn(shared, *job)`` for every job
of a list in a pool of ``spawn`` processes (``fork`` after torch has started its threads is unsafe). ``shared``
(the prepared data, the settings) is sent once per worker through the pool's initializer, not once per job; each
worker sets ``torch.set_num_threads(1)`` and ignores Ctrl-C, which the parent handles by stopping them.

The module knows nothing about models: :mod:`ctrkit.compare.tabular` passes it a module-level job function.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any

__all__ = ["resolve_workers", "run_jobs"]

_SHARED: Any = None   # in a worker process: what the initializer received


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Train in this process with one torch thread, restoring the count after: the comparison's networks are
    small, and torch's intra-op threads cost more in waiting for each other than they gain (measured on a 2-core
    machine: 8 min 31 s with torch's 2 threads against 47 s with one, same results; ``benchmarks/RESULTS.md``)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None, jobs: int) -> int:
    """``None`` -> one worker per available core, at most one per job; otherwise ``workers`` (at most ``jobs``).

    Example:
        >>> resolve_workers(4, 3), resolve_workers(1, 10), resolve_workers(None, 1)
        (3, 1, 1)
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for one per core), got {workers}.")
    return max(1, min(available_cpus() if workers is None else workers, jobs))


def _init_worker(shared: Any) -> None:
    global _SHARED
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops the pool on Ctrl-C
    import torch
    torch.set_num_threads(1)
    _SHARED = shared


def _call(fn: Callable[..., Any], job: tuple) -> Any:
    return fn(_SHARED, *job)


def _named(exc: BaseException, name: str) -> BaseException:
    """The worker's exception, same type, its message prefixed with the job's name."""
    if exc.args and isinstance(exc.args[0], str):
        exc.args = (f"{name}: {exc.args[0]}",) + exc.args[1:]
    else:
        exc.args = (f"{name}: {exc!r}",)
    return exc


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], shared: Any, workers: int,
             on_done: Callable[[int, Any], None] | None = None, name: Callable[[tuple], str] = str,
             background: Callable[[], Any] | None = None,
             more: Callable[[int, Any], Sequence[tuple]] | None = None) -> tuple[list[Any], Any]:
    """Run ``fn(shared, *job)`` for every job in ``workers`` spawned processes (``workers=1``: in this process,
    one after the other); results in job order.

    Args:
        fn: a module-level function (it is pickled by name).
        jobs: the argument tuples.
        shared: sent once to every worker.
        workers: pool size.
        on_done: ``on_done(index, result)`` in the parent as each job finishes (a progress bar).
        name: how an error names its job (``name(job)`` prefixes the worker's exception message).
        background: run in a thread of the parent while the workers train (the baselines); its result is
            returned second.
        more: ``more(index, result)`` in the parent as each job finishes, after ``on_done``: further jobs to
            run (their results follow the others', in the order given), e.g. one job per worker that fell
            idle. Only with ``workers > 1``; one after the other there is never an idle worker to fill.

    Example:
        >>> run_jobs(pow, [(2,), (3,)], 10, workers=2)[0]   # pow(shared, *job): 10 ** 2, 10 ** 3
        [100, 1000]
    """
    results: list[Any] = [None] * len(jobs)
    if workers == 1:   # in this process, one job after the other, one torch thread
        for i, job in enumerate(jobs):
            with one_torch_thread():
                try:
                    results[i] = fn(shared, *job)
                except Exception as err:
                    raise _named(err, name(job)) from None
            if on_done is not None:
                on_done(i, results[i])
        return results, background() if background is not None else None
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(shared,))
    side = ThreadPoolExecutor(max_workers=1) if background is not None else None
    try:
        futures: dict[Future, int] = {pool.submit(_call, fn, job): i for i, job in enumerate(jobs)}
        extra = side.submit(background) if side is not None and background is not None else None
        pending = set(futures)
        jobs = list(jobs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=futures.__getitem__):
                i = futures[f]
                exc = f.exception()
                if exc is not None:
                    raise _named(exc, name(jobs[i]))
                results[i] = f.result()
                if on_done is not None:
                    on_done(i, results[i])
                for job in (more(i, results[i]) if more is not None else ()):
                    jobs.append(job)
                    results.append(None)
                    nf = pool.submit(_call, fn, job)
                    futures[nf] = len(jobs) - 1
                    pending.add(nf)
        out = extra.result() if extra is not None else None
    except BaseException:   # an error in a job, or Ctrl-C: stop the workers now, not after the queued jobs
        for p in list(getattr(pool, "_processes", {}).values()):
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if side is not None:   # after Ctrl-C a running baseline still finishes (a thread cannot be stopped)
            side.shutdown(wait=False, cancel_futures=True)
    pool.shutdown(wait=True)
    return results, out
