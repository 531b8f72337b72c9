"""Run one function per item in isolated, killable child processes.

:func:`run_isolated` forks one child per item (at most ``workers`` at once) and yields results in
input order. Isolation is what makes per-item limits real for compiled engines (PySCF, xtb):

* a child that exceeds ``timeout_s`` of wall time is killed (SIGKILL) → ``Failure("timeout")``;
* an exception in a child → ``Failure("engine_error", "<Type>: <text>")``; raising
  :class:`StageFailure` picks another ledger reason (``scf_not_converged``, ``embed_failed``…);
* a child that dies without answering (segfault, ``os._exit``, OOM kill)
  → ``Failure("engine_error", "worker died: signal SIGSEGV")``.

Children are forked (``multiprocessing`` "fork" context), so ``fn`` and items need not be
picklable; only the result travels back, pickled through a pipe. Each child limits its own
threading (OpenMP runtimes and OpenBLAS already loaded, plus ``OMP_NUM_THREADS`` etc. for
libraries loaded later) to ``threads_per_worker``. This also matters for correctness: a forked
child that reuses an OpenMP pool started by its parent (GNU libgomp) hangs, with one thread it
does not.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_OMP_LIBRARY_PREFIXES = ("libgomp", "libomp", "libiomp")
_OPENBLAS_SETTERS = (
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
)


@dataclass(frozen=True)
class Failure:
    """Why one item produced no result: a ledger ``reason`` and a free-text ``message``."""

    reason: str
    message: str = ""


class StageFailure(Exception):
    """Raise inside an isolated function to fail its item with a specific ledger reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _Job:
    process: Any  # multiprocessing.Process
    conn: Any  # receiving end of the pipe
    deadline: float  # time.monotonic() seconds


def run_isolated(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    timeout_s: float,
    workers: int = 1,
    desc: str = "items",
    threads_per_worker: int = 1,
) -> Iterator[tuple[T, R | Failure]]:
    """Yield ``(item, fn(item))`` or ``(item, Failure)`` for every item, in input order.

    Each call runs in its own forked child; at most ``workers`` run at once. ``timeout_s`` is the
    wall-time limit of one call (seconds). ``fn`` may also return a :class:`Failure` itself.
    Progress goes to stderr. Children still running when the generator is closed are killed.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    items = list(items)
    ctx = mp.get_context("fork")
    pending = deque(enumerate(items))
    running: dict[int, _Job] = {}
    finished: dict[int, Any] = {}
    next_out = 0
    with tqdm(total=len(items), desc=desc, unit="item", file=sys.stderr, mininterval=1) as bar:
        try:
            while next_out < len(items):
                while pending and len(running) < workers:
                    index, item = pending.popleft()
                    running[index] = _start(ctx, fn, item, timeout_s, threads_per_worker)
                for index, outcome in _collect(running, timeout_s):
                    finished[index] = outcome
                    bar.update(1)
                while next_out in finished:
                    yield items[next_out], finished.pop(next_out)
                    next_out += 1
        finally:
            for job in running.values():
                _kill(job)


def _start(ctx: Any, fn: Callable[[Any], Any], item: Any, timeout_s: float, threads: int) -> _Job:
    """Fork a child computing ``fn(item)``; return its handle."""
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(fn, item, send_conn, threads), daemon=True)
    process.start()
    send_conn.close()  # the child holds the only sending end: EOF when it dies
    return _Job(process, recv_conn, time.monotonic() + timeout_s)


def _collect(running: dict[int, _Job], timeout_s: float) -> list[tuple[int, Any]]:
    """Wait until a child answers, dies or reaches its deadline; return what finished."""
    wait_s = max(0.0, min(job.deadline for job in running.values()) - time.monotonic())
    handles = [job.conn for job in running.values()]
    handles += [job.process.sentinel for job in running.values()]
    ready = set(mp_connection.wait(handles, timeout=wait_s))
    done: list[tuple[int, Any]] = []
    for index, job in list(running.items()):
        if job.conn in ready or job.process.sentinel in ready:
            done.append((index, _receive(job)))
        elif time.monotonic() >= job.deadline:
            _kill(job)
            done.append((index, Failure("timeout", f"exceeded {timeout_s:g} s wall time")))
        else:
            continue
        del running[index]
    return done


def _receive(job: _Job) -> Any:
    """Result (or Failure) of a child that answered or exited."""
    try:
        status, payload = job.conn.recv() if job.conn.poll() else (None, None)
    except (EOFError, OSError):
        status, payload = None, None
    job.conn.close()
    job.process.join(timeout=10)
    if job.process.is_alive():
        job.process.kill()
        job.process.join()
    if status == "ok":
        return payload
    if status == "fail":
        return Failure(*payload)
    return Failure("engine_error", f"worker died: {_exit_description(job.process.exitcode)}")


def _exit_description(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode} without a result"


def _kill(job: _Job) -> None:
    if job.process.is_alive():
        job.process.kill()
    job.process.join()
    job.conn.close()


def _child_main(fn: Callable[[Any], Any], item: Any, conn: Any, threads: int) -> None:
    """Body of a child process: compute, then send ``(status, payload)`` back."""
    limit_threads(threads)
    try:
        message: tuple[str, Any] = ("ok", fn(item))
    except StageFailure as exc:
        message = ("fail", (exc.reason, exc.message))
    except BaseException as exc:  # noqa: BLE001 - every error becomes a Failure
        message = ("fail", ("engine_error", f"{type(exc).__name__}: {exc}"))
    try:
        conn.send(message)
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
        conn.send(("fail", ("engine_error", f"result could not be sent back: {exc}")))
    conn.close()


def limit_threads(n: int) -> None:
    """Limit this process to ``n`` threads in OpenMP, OpenBLAS and friends.

    Sets the usual environment variables (read by libraries loaded later) and calls
    ``omp_set_num_threads`` / ``openblas_set_num_threads`` in every such library already
    loaded (found in ``/proc/self/maps``; skipped where that file does not exist).
    """
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    for path in _loaded_libraries():
        name = os.path.basename(path)
        if name.startswith(_OMP_LIBRARY_PREFIXES):
            _call_setter(path, ("omp_set_num_threads",), n)
        elif "openblas" in name:
            _call_setter(path, _OPENBLAS_SETTERS, n)


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process."""
    try:
        with open("/proc/self/maps") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    fields = (line.split(maxsplit=5) for line in lines)
    paths = {f[5] for f in fields if len(f) == 6 and f[5].startswith("/") and ".so" in f[5]}
    return sorted(paths)


def _call_setter(path: str, names: tuple[str, ...], n: int) -> None:
    """Call the first of ``names`` that the loaded library at ``path`` exports with ``n``."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return
    for name in names:
        setter = getattr(lib, name, None)
        if setter is not None:
            setter(ctypes.c_int(n))
            return
