"""Tagging on every core. Worker processes, forked once the spaCy pipeline is loaded, tag
batches of texts and send back only what the caller keeps (output lines for `immunofeed tag`,
small tag records for `immunofeed tag --rebuild`), never spaCy Docs: pickling whole Docs
back, as spaCy's own n_process does, costs more than the tagging itself.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import AsyncResult
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


def fault(exc: BaseException) -> str:
    """What failed, on one line, for a worker's answer about a text it could not tag: the
    exception's type and the first line of its message."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def die_with_parent() -> None:
    """Ask Linux to kill this worker process when its parent dies, so that a parent killed
    with -9 leaves no workers behind (elsewhere, nothing happens)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_name() -> str:
    """This process as other processes, on this machine or others, can name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_ended(name: str) -> bool | None:
    """Whether the process NAME (process_name(), perhaps with a :suffix) has ended: True or
    False for a process of this machine, None for another machine's (this one cannot tell)."""
    host, _, rest = name.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # running, as another user
        return False
    return False


def _warm_up() -> None:
    from nlp.pipeline import get_pipeline

    die_with_parent()
    get_pipeline()


def map_batches(function: Callable[[list[A]], list[B]], batches: Iterable[list[A]],
                jobs: int = 1) -> Iterator[tuple[list[A], list[B]]]:
    """Each batch with FUNCTION's answer for it, in order; JOBS worker processes when above 1,
    with at most two batches per worker read ahead. FUNCTION must be a module-level function
    (the workers look it up by name)."""
    if jobs <= 1:
        for batch in batches:
            yield batch, function(batch)
        return
    if "fork" in multiprocessing.get_all_start_methods():
        from nlp.pipeline import get_pipeline

        get_pipeline()  # loaded once here; the forked workers share it
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=_warm_up) as pool:
        in_flight: deque[tuple[list[A], AsyncResult[list[B]]]] = deque()
        for batch in batches:
            in_flight.append((batch, pool.apply_async(function, (batch,))))
            if len(in_flight) >= 2 * jobs:
                done, answer = in_flight.popleft()
                yield done, answer.get()
        while in_flight:
            done, answer = in_flight.popleft()
            yield done, answer.get()
