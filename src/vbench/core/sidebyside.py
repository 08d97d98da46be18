"""Jobs that each bring something up (a guest), ``width`` at a time, from threads of their own.

The caller's thread stays in charge: it starts a job only while nothing stops the run, handles
each finished job in its own thread (``finish``: record it, pause its guest, or say the error that
stops the run), and owns the teardown: the ExitStack each job filled joins the caller's as soon as
the job ends, also when the run stops or is interrupted (Ctrl-C, SIGTERM) while jobs are still
running. Stopping sets ``cancel``: a job still
waiting (a guest's boot polls it) gives up, and the error is raised once every thread has ended.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from typing import Callable, Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")
Start = Callable[[J, contextlib.ExitStack, threading.Event], R]
Finish = Callable[[J, concurrent.futures.Future], "BaseException | None"]


class _Jobs(Generic[J, R]):
    def __init__(self, stack: contextlib.ExitStack, start: Start) -> None:
        self.stack, self.start = stack, start
        self.cancel = threading.Event()
        self.pending: dict[concurrent.futures.Future, J] = {}

    def run_one(self, job: J) -> tuple[R, contextlib.ExitStack]:
        own = contextlib.ExitStack()
        try:
            return self.start(job, own, self.cancel), own
        except BaseException:
            own.close()
            raise

    def hand_over(self, fut: concurrent.futures.Future) -> None:
        """What a job brought up is torn down with the caller's stack."""
        if not fut.cancelled() and fut.exception() is None:
            self.stack.enter_context(fut.result()[1])


def side_by_side(stack: contextlib.ExitStack, jobs: list[J], width: int, start: Start,
                 finish: Finish) -> None:
    """Run ``start(job, own_stack, cancel)`` for each job, ``width`` at a time; as each ends, its
    ``own_stack`` joins ``stack`` and ``finish(job, future)`` runs in this thread (the future's
    result is ``(value, own_stack)``). The first error ``finish`` returns, or an exception here,
    cancels the rest and is raised when every thread has ended."""
    js: _Jobs = _Jobs(stack, start)
    waiting, stop = list(jobs), None
    with concurrent.futures.ThreadPoolExecutor(max(1, width), thread_name_prefix="boot") as pool:
        try:
            while js.pending or (waiting and stop is None):
                while waiting and len(js.pending) < width and stop is None:
                    job = waiting.pop(0)
                    js.pending[pool.submit(js.run_one, job)] = job
                done, _ = concurrent.futures.wait(js.pending, timeout=0.5,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:   # dropped from pending once handled
                    js.hand_over(fut)
                    if stop is None:
                        stop = finish(js.pending[fut], fut)
                        if stop is not None:
                            js.cancel.set()
                    del js.pending[fut]
        except BaseException as exc:   # Ctrl-C (SIGTERM arrives as one) while waiting
            js.cancel.set()
            stop = exc
            for fut in js.pending:
                fut.cancel()
            concurrent.futures.wait(js.pending)
            for fut in js.pending:
                js.hand_over(fut)   # came up meanwhile (or ended unhandled): torn down all the same
    if stop is not None:
        raise stop
