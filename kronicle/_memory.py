"""The native heap of a Kronicle server process: fewer glibc malloc arenas, freed memory handed back.

A server process (``kronicle server start-dev``, ``kronicle engine run``) runs
many native threads that allocate: the engine's processor, librdkafka's
broker and queue threads, RocksDB's flush and compaction threads, the event
loop. glibc gives each allocating thread its own malloc arena, up to eight per
core, and keeps the memory freed in an arena in that arena's free lists,
resident, for the same arena to reuse. RocksDB's memtables come and go in
64 KiB blocks and librdkafka's buffers in many sizes, so at saturation those
free lists grow for minutes and the process's resident memory with them,
although what the process actually uses is flat.

Two remedies, both on glibc only and both no-ops elsewhere:

* :func:`limit_arenas` caps the arena count (``mallopt(M_ARENA_MAX, n)``), so
  freed memory is reused across threads instead of parked per thread. It must
  run before the process starts its threads: glibc picks a thread's arena on
  its first allocation.
* :class:`MallocTrimmer` calls ``malloc_trim(0)`` every few tens of seconds
  on a thread of its own, which gives the free pages of every arena back to the
  operating system. Each call is timed and exported
  (``kronicle_process_malloc_trim_seconds``), as is the resident memory it
  gave back, so its cost is visible.

:func:`start_tuning` (or the context manager :func:`tune_allocator`) applies
both as :class:`AllocatorOptions` say; the server commands (``kronicle server
start-dev``, ``kronicle engine run``) call it first thing and have options
``--malloc-arena-max`` and ``--malloc-trim-seconds`` to turn either off (0).
:func:`start_tuning` also freezes (``gc.freeze()``) the Python objects alive at
that point (``AllocatorOptions.freeze_startup_objects``): the imported modules,
classes and functions, which Python's full collections would otherwise scan
every time with the GIL held. It also exports, read at scrape time, glibc's
heap in use / free / mmapped (``kronicle_process_malloc_bytes``, from
``mallinfo2``) and CPython's allocated blocks
(``kronicle_process_python_allocated_blocks``), so that a memory run can tell a
growing heap from RocksDB's bounded caches filling.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Final

from prometheus_client import Gauge

from kronicle.engine.metrics import (
    MALLOC_ARENA_MAX,
    MALLOC_TRIM_CPU,
    MALLOC_TRIM_RELEASED,
    MALLOC_TRIM_SECONDS,
    MALLOC_TRIMS,
)

__all__ = [
    "AllocatorOptions",
    "MallocTrimmer",
    "glibc",
    "heap_usage",
    "limit_arenas",
    "malloc_trim",
    "resident_bytes",
    "start_tuning",
    "tune_allocator",
]

log = logging.getLogger(__name__)

# From glibc's malloc.h.
_M_ARENA_MAX: Final = -8

MALLOC_BYTES = Gauge(
    "kronicle_process_malloc_bytes",
    "glibc's heap (mallinfo2): in_use (allocated chunks), free (kept in the arenas' free lists), mmap.",
    ["kind"],
)
PYTHON_BLOCKS = Gauge(
    "kronicle_process_python_allocated_blocks", "CPython's allocated memory blocks (sys.getallocatedblocks())."
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class AllocatorOptions:
    """How a server process tunes glibc's allocator (ignored where the C library is not glibc)."""

    arena_max: int = 2
    """Most malloc arenas (``M_ARENA_MAX``); 0 keeps glibc's default of eight per core. Two keep the
    main thread's arena apart from one that every other thread shares."""
    trim_interval_s: float = 30.0
    """Seconds between ``malloc_trim(0)`` calls; 0 turns the periodic trim off."""
    freeze_startup_objects: bool = True
    """``gc.freeze()`` the Python objects alive when tuning starts (the imported modules, classes and
    functions: ~56k objects in ``kronicle server start-dev``), so that Python's full collections no
    longer scan them: in the engine process one took 34-90 ms of wall time with the GIL held
    (docs/benchmarks.md). Frozen objects are never collected, which is what module-level objects are."""


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The process's glibc, with ``mallopt`` and ``malloc_trim`` typed; None on any other C library."""
    version = ""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if not version.startswith("glibc"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process: its glibc
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError) as err:
        log.warning("glibc's mallopt/malloc_trim are not reachable (%s); allocator tuning is off", err)
        return None
    return libc


def limit_arenas(arena_max: int) -> bool:
    """Cap glibc's malloc arenas at ``arena_max`` for the rest of the process's life.

    Call it before the process starts threads: a thread keeps the arena it got
    on its first allocation.

    Returns:
        True if glibc took the cap; False off glibc, for ``arena_max <= 0``, or
        if ``mallopt`` refused it.
    """
    libc = glibc()
    if libc is None or arena_max <= 0:
        return False
    accepted: bool = libc.mallopt(_M_ARENA_MAX, arena_max) == 1
    if accepted:
        MALLOC_ARENA_MAX.set(arena_max)
    else:
        log.warning("glibc refused mallopt(M_ARENA_MAX, %d); the process keeps glibc's default arenas", arena_max)
    return accepted


def malloc_trim() -> bool | None:
    """Give the free pages of every malloc arena back to the operating system (``malloc_trim(0)``).

    Returns:
        Whether glibc released any memory, or None off glibc.
    """
    libc = glibc()
    if libc is None:
        return None
    return bool(libc.malloc_trim(0))


def heap_usage() -> dict[str, int] | None:
    """glibc's heap now, bytes: ``in_use``, ``free`` (in the arenas' free lists), ``mmap``; None off glibc 2.33+.

    ``mallinfo2`` walks every arena's free lists under its lock: cheap at a scrape's pace, not per request.
    """
    libc = glibc()
    mallinfo2 = getattr(libc, "mallinfo2", None) if libc is not None else None
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {"in_use": int(info.uordblks), "free": int(info.fordblks), "mmap": int(info.hblkhd)}


def _export_heap_metrics() -> None:
    PYTHON_BLOCKS.set_function(sys.getallocatedblocks)
    if heap_usage() is None:
        return
    for kind in ("in_use", "free", "mmap"):
        MALLOC_BYTES.labels(kind).set_function(functools.partial(_heap_part, kind))


def _heap_part(kind: str) -> float:
    return float((heap_usage() or {}).get(kind, 0))


def resident_bytes() -> int | None:
    """This process's resident set size from ``/proc/self/statm``; None where there is no such file."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            fields = statm.read().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


class MallocTrimmer:
    """Calls ``malloc_trim(0)`` every ``interval_s`` seconds on a daemon thread, timed and exported.

    The thread sleeps between calls and does nothing else, so it costs one call's
    time per interval (a few milliseconds at most; the
    ``kronicle_process_malloc_trim_seconds`` histogram shows it). Use it as a
    context manager or call :meth:`start` and :meth:`stop`.

    Args:
        interval_s: Seconds between calls; must be positive.
        trim: The call to make (tests pass their own); default :func:`malloc_trim`.
    """

    def __init__(self, interval_s: float, *, trim: Callable[[], bool | None] = malloc_trim) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}; to turn the trim off, make no trimmer")
        self.interval_s = interval_s
        self._trim = trim
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the trimming thread; a no-op if it runs."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kronicle-malloc-trim", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for a call under way); idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def trim_once(self) -> float:
        """Trim now, on the calling thread; record and return the seconds the call took."""
        before = resident_bytes()
        started, cpu = time.perf_counter(), time.thread_time()
        self._trim()
        elapsed = time.perf_counter() - started
        # Wall time is how long other threads may wait on an arena lock (it includes time this
        # thread was not scheduled, on a loaded machine); CPU time is what the trim costs.
        MALLOC_TRIM_CPU.inc(time.thread_time() - cpu)
        after = resident_bytes()
        MALLOC_TRIMS.inc()
        MALLOC_TRIM_SECONDS.observe(elapsed)
        if before is not None and after is not None and before > after:
            MALLOC_TRIM_RELEASED.inc(before - after)
        return elapsed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.trim_once()
            except Exception:  # a failed trim must not end the process; the next interval tries again
                log.exception("malloc_trim failed")

    def __enter__(self) -> MallocTrimmer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_tuning(options: AllocatorOptions | None = None) -> MallocTrimmer | None:
    """Cap the arenas now and start the periodic trim, as ``options`` say (glibc only).

    Call it at the very start of a server process, before anything starts a
    thread. Off glibc, or with both knobs at 0, it does nothing.

    Returns:
        The running trimmer (a daemon thread; :meth:`MallocTrimmer.stop` it to
        end it early), or None when there is none.
    """
    options = options or AllocatorOptions()
    _export_heap_metrics()
    if options.freeze_startup_objects:
        gc.freeze()
    if glibc() is None:
        return None
    if options.arena_max > 0:
        limit_arenas(options.arena_max)
    if options.trim_interval_s <= 0:
        return None
    trimmer = MallocTrimmer(options.trim_interval_s)
    trimmer.start()
    return trimmer


@contextlib.contextmanager
def tune_allocator(options: AllocatorOptions | None = None) -> Iterator[MallocTrimmer | None]:
    """:func:`start_tuning` on entry, the trimmer stopped on exit (the arena cap stays: it cannot be undone).

    Yields:
        The running trimmer, or None when there is none.
    """
    trimmer = start_tuning(options)
    try:
        yield trimmer
    finally:
        if trimmer is not None:
            trimmer.stop()
