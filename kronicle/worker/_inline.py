"""When a workflow activation may run on the worker's event loop instead of a workflow thread.

Handing an activation to a thread and its completion back costs a thread pool
submit, a wake-up of the pool thread, a wake-up of the loop and two GIL hand-offs;
for the usual activation (a few hundred microseconds of workflow code) that is
more than the activation itself. Running it on the loop's own thread saves all
of that, but workflow code that computes for long (or blocks, which it must not)
would then stall the worker's other tasks meanwhile.

So each workflow type earns its place on the loop: its first live activations
run on the workflow threads as before, timed there; once ``probation`` of them
took under ``cpu_budget`` of CPU each, the type's live activations run inline
(still timed, still under the deadlock detector, which interrupts whichever thread
runs the code). An inline activation that held the loop past ``wall_limit`` by
its own doing (it waited in the kernel, or computed; not when the machine's load
merely pre-empted it) sends the type back to the threads, and so do
``strikes`` activations over the CPU budget (or, inline, the wall limit); one strike is forgiven per
``forgive_after`` cheap activations, because a lone slow one is usually not the
workflow's doing (the first activation of a type imports and warms up). A type
sent back returns to the loop after ``readmit_after`` cheap activations in a row on
the threads, at most ``returns`` times: on a machine loaded far beyond its cores
a wait for a core or for the GIL looks like a stall, and a type sent back for
that would otherwise pay the hand-offs for the rest of the process's life, while
code that really blocks stalls the loop at most ``returns + 1`` times. An
activation during which the garbage collector ran an older-generation collection
gets ten times the CPU budget: the collector runs in whatever code happens to
allocate, and in a busy worker that takes several milliseconds. Replays of
history always run on the threads: a long history replays many activations in a
row.
"""

from __future__ import annotations

import gc
import itertools
import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["InlinePolicy"]

if sys.platform != "win32":
    import resource

    _RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)
else:  # pragma: no cover
    _RUSAGE_THREAD = None
_CALLS = itertools.count()

_log = logging.getLogger("kronicle.worker")

T = TypeVar("T")
A = TypeVar("A")


class InlinePolicy:
    """Decides, for one workflow type, whether live activations run inline (see the module docstring).

    Args:
        name: The workflow type (for the log line when it moves back to the threads).
        cpu_budget: CPU seconds one activation may use and still count as cheap.
        wall_limit: Wall-clock seconds one activation may take and still count as cheap.
        probation: Cheap activations on the threads before the type runs inline.
        strikes: Activations over the CPU budget that send the type back to the threads.
        forgive_after: Cheap activations that cancel one strike.
        readmit_after: Cheap activations in a row on the threads that bring a type sent back to the loop again.
        returns: How often a type may come back to the loop.
    """

    def __init__(
        self,
        name: str,
        *,
        cpu_budget: float = 0.005,
        wall_limit: float = 0.5,
        probation: int = 20,
        strikes: int = 3,
        forgive_after: int = 1000,
        readmit_after: int = 1000,
        returns: int = 3,
    ) -> None:
        self.name = name
        self._cpu_budget = cpu_budget
        self._gc_budget = cpu_budget * 10
        self._wall_limit = wall_limit
        self._probation = probation
        self._max_strikes = strikes
        self._forgive_after = forgive_after
        self._readmit_after = readmit_after
        self._returns_left = returns
        self._cheap = 0
        self._cheap_in_a_row = 0
        self._strikes = 0
        self.offloaded = False
        """True while the type's activations run on the threads because one was too slow."""

    @property
    def inline(self) -> bool:
        """Whether the next live activation may run on the calling (event loop) thread."""
        return not self.offloaded and self._cheap >= self._probation

    def run(self, fn: Callable[[A], T], arg: A) -> T:
        """Call ``fn(arg)`` on this thread and record how long it took."""
        mark = _gc_mark()
        wall = time.perf_counter()
        cpu, waits = _thread_usage()
        try:
            return fn(arg)
        finally:
            wall = time.perf_counter() - wall
            if wall <= self._cpu_budget:
                # A thread's CPU time never exceeds its wall time, so this one was cheap whatever the
                # kernel says; asking it again (two system calls) is what nearly every activation skipped.
                self._cheap_one()
            else:
                cpu_after, waits_after = _thread_usage()
                budget = self._gc_budget if _older_collected(mark) else self._cpu_budget
                self._observe(cpu_after - cpu, wall, budget, blocked=waits_after > waits)

    def _cheap_one(self) -> None:
        self._cheap += 1
        if self._strikes and self._cheap % self._forgive_after == 0:
            self._strikes -= 1
        if self.offloaded:
            self._cheap_in_a_row += 1
            if self._cheap_in_a_row >= self._readmit_after and self._returns_left > 0:
                self._returns_left -= 1
                self._strikes = 0
                self.offloaded = False
                _log.debug("Workflow type %s: back on the event loop after %d cheap activations", self.name,
                           self._cheap_in_a_row)  # fmt: skip

    def _observe(self, cpu: float, wall: float, budget: float, *, blocked: bool) -> None:
        # Called from the workflow threads and the loop; the races are on counters that only
        # decide where the next activation runs, never what it does.
        inline = self.inline
        # On the threads the wall clock counts waits for the GIL and for the loaded machine, not
        # the workflow's doing; there only CPU is judged.
        if cpu <= budget and not (inline and wall > self._wall_limit):
            self._cheap_one()
            return
        # An inline activation that held the loop past the wall limit by its own doing (it waited
        # in the kernel, or computed) stalled the whole worker: one is enough. Merely pre-empted by
        # the machine's load, it is a strike.
        stalled_loop = inline and wall > self._wall_limit and (blocked or cpu > budget)
        self._cheap_in_a_row = 0
        self._strikes += 1
        if self.offloaded or (not stalled_loop and self._strikes < self._max_strikes):
            return
        self.offloaded = True
        self._cheap_in_a_row = 0
        _log.debug(
            "Workflow type %s: an activation took %.1f ms CPU, %.1f ms wall (%d over the budget); its "
            "activations run on the workflow threads (returns left: %d)",
            self.name,
            cpu * 1000,
            wall * 1000,
            self._strikes,
            self._returns_left,
        )


def _gc_mark() -> tuple[int, int]:
    """A mark for :func:`_older_collected` (``gc.get_count()``: ``gc.get_stats()`` costs ten times more)."""
    _, young_since, middle_since = gc.get_count()
    return young_since, middle_since


def _older_collected(mark: tuple[int, int]) -> bool:
    """Whether a middle or oldest generation collection ran since ``mark``.

    The second figure of ``gc.get_count()`` counts youngest collections since the last middle
    one (a middle or oldest collection sets it back to zero); the third counts middle collections
    since the last oldest one (a middle collection adds one, an oldest one sets it to zero).
    """
    _, young_since, middle_since = gc.get_count()
    return middle_since != mark[1] or young_since < mark[0]


def _thread_usage() -> tuple[float, int]:
    """CPU seconds and voluntary context switches of the calling thread so far."""
    if _RUSAGE_THREAD is None:
        # Not Linux: no switch count; a counter that always moves makes every long activation count as blocked.
        return time.thread_time(), next(_CALLS)
    # rusage's own CPU times are tick-sampled (a millisecond off either way); the thread clock is exact.
    return time.thread_time(), resource.getrusage(_RUSAGE_THREAD).ru_nvcsw
