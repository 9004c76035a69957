"""Time skipping: a clock the engine runs off, and the detector that decides when it may jump.

The engine's processor takes its time from :class:`SkippingClock` (wall clock
plus an offset that only grows). Every durable timer — workflow sleeps,
activity timeouts and retry backoff, workflow execution and run timeouts — is
due on that clock, so moving the offset forward makes them fire; history
event times come from the same clock, so ``workflow.now()`` follows.

:class:`TimeSkipper` moves the offset only when nothing is runnable, which it
decides from three observations, in this order (see ``docs/testing.md``):

1. **The engine's state** (read from the partition stores in-process): no
   running workflow has an outstanding workflow task, no activity attempt is
   dispatched (other than the calling activity's own, for ``env.sleep`` inside
   an activity), and no timer is already due but not yet fired.
2. **Nothing in flight on the commands topic.** A *barrier* record (an
   ``ExternalCommandResult`` for a run that does not exist, which the engine
   counts as stale and otherwise ignores) is produced to every commands
   partition; once the engine has committed all of them, every command written
   before them has been applied. The partitions' high watermarks must then be
   exactly one past the barriers: anything written after them (a worker's
   completion, a fired timer, a command one workflow sent another) means work
   is still moving.
3. The state check again (the barriers' commit made the stores current).

Only then does the clock jump, to the earliest timer a workflow can observe
(engine housekeeping — signal de-duplication expiry and retention — is not a
reason to jump), or to the ``env.sleep`` target if that is earlier.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from kronicle.engine.context import decode_timer
from kronicle.engine.handler import TIMER_COLUMN_FAMILIES
from kronicle.engine.service import EngineService
from kronicle.engine.workflow._state import CF_CURRENT, CF_RUNS
from kronicle.topics import partition_for

__all__ = ["ActivityRef", "SkippingClock", "TimeSkipper"]

log = logging.getLogger(__name__)

_TIMERS = TIMER_COLUMN_FAMILIES[0]
_HOUSEKEEPING_TIMERS = frozenset({"dedup", "retention"})
"""Timer kinds no workflow can observe: they fire when time passes them, but never pull time forward."""
_TIMER_SCAN_LIMIT = 10_000
_BARRIER_SCHEMA = "kronicle.workflow.ExternalCommandResult"
_BUSY_POLL_S = 0.01


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SkippingClock:
    """Wall-clock milliseconds plus an offset that only grows; thread-safe.

    The engine's processor thread reads it; the test's event loop advances it.
    """

    def __init__(self) -> None:
        self._offset_ms = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """The current (skipped) time in milliseconds since the epoch."""
        return _wall_ms() + self._offset_ms

    @property
    def offset_ms(self) -> int:
        """How far ahead of the wall clock this clock is."""
        return self._offset_ms

    def advance_to(self, target_ms: int) -> int:
        """Move the clock forward to ``target_ms`` (never back); returns the milliseconds skipped."""
        with self._lock:
            skip = target_ms - self.now_ms()
            if skip <= 0:
                return 0
            self._offset_ms += skip
            return skip


@dataclasses.dataclass(frozen=True, slots=True)
class ActivityRef:
    """An activity attempt that does not count as runnable (the one calling ``env.sleep``)."""

    run_id: str
    activity_id: str
    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Verdict:
    busy: str | None
    """Why time may not skip (None: nothing is runnable)."""
    next_due_ms: int | None = None
    """The earliest timer a workflow can observe."""


class TimeSkipper:
    """Decides when the engine is idle and jumps :class:`SkippingClock` to the next timer.

    Args:
        engine: The in-process engine (its stores are read directly).
        clock: The clock the engine was built with.
    """

    def __init__(self, engine: EngineService, clock: SkippingClock) -> None:
        self._engine = engine
        self._clock = clock
        self._topic = engine.topics.commands
        servers = engine.bootstrap_servers
        self._producer = Producer({"bootstrap.servers": servers, "linger.ms": 0, "enable.idempotence": True})
        self._watermarks = Consumer(
            {"bootstrap.servers": servers, "group.id": f"kronicle-time-skipper-{uuid.uuid4().hex[:8]}"}
        )
        self._partitions = engine.partition_count
        self._round = 0
        self._lock = asyncio.Lock()
        self._auto_holders = 0
        self._auto_task: asyncio.Task[None] | None = None
        self.skips = 0
        """How many times the clock jumped (for tests and logs)."""
        self.barriers = 0
        """How many barrier rounds were run."""

    def close(self) -> None:
        """Release the Kafka clients."""
        if self._auto_task is not None:
            self._auto_task.cancel()
        self._producer.flush(5)
        self._producer.close()  # else librdkafka keeps reconnecting until garbage collection
        self._watermarks.close()

    # -- automatic skipping (while a result is awaited) ------------------------------------

    async def run_unlocked(self, awaitable: Any) -> Any:
        """Await ``awaitable`` with automatic time skipping on (Temporal unlocks it around ``result()``)."""
        self._auto_holders += 1
        if self._auto_task is None or self._auto_task.done():
            self._auto_task = asyncio.ensure_future(self._auto_loop())
        try:
            return await awaitable
        finally:
            self._auto_holders -= 1

    async def _auto_loop(self) -> None:
        idle = 0.0
        while self._auto_holders > 0:
            try:
                outcome = await self.step(None, None, lambda: self._auto_holders > 0)
            except Exception:  # the skipper must never take the test's result() down with it
                log.exception("time skipping check failed; retrying")
                outcome = "idle"
            # A busy check is a cheap in-process read: poll fast so a jump follows the work closely.
            # An idle one (nothing to jump to) cost a barrier round: back off.
            delays = {"skipped": 0.0, "busy": _BUSY_POLL_S, "idle": min(0.2, idle * 2 or 0.01)}
            idle = delays["idle"] if outcome == "idle" else 0.0
            await asyncio.sleep(delays[outcome])

    # -- one step --------------------------------------------------------------------------

    async def step(
        self, target_ms: int | None, exclude: ActivityRef | None, wanted: Callable[[], bool] = lambda: True
    ) -> Literal["skipped", "busy", "idle"]:
        """If nothing is runnable, jump to the next observable timer (at most ``target_ms``).

        ``wanted`` is asked again just before the jump (a check takes a few tens of
        milliseconds; the result the caller waited for may have arrived meanwhile).

        Returns:
            ``"skipped"`` (the clock moved), ``"busy"`` (something is runnable) or
            ``"idle"`` (nothing is runnable, and there is nothing to jump to).
        """
        async with self._lock:
            verdict = await self.check(exclude)
            if verdict.busy is not None:
                return "busy"
            dest = verdict.next_due_ms
            if target_ms is not None:
                dest = target_ms if dest is None else min(dest, target_ms)
            if dest is None or not wanted() or self._clock.advance_to(dest) == 0:
                return "idle"
            self.skips += 1
            # The processor may be in a poll of up to idle_poll_ms: a record wakes it to fire the timer now.
            await self._produce_barriers(self._next_keys(), wait=False)
            return "skipped"

    async def check(self, exclude: ActivityRef | None = None) -> _Verdict:
        """Whether anything is runnable (``busy`` says what), and the next observable timer."""
        verdict = self._scan_state(exclude)
        if verdict.busy is not None:
            return verdict
        quiet = await self._barrier_round()
        if quiet is not None:
            return _Verdict(busy=quiet)
        return self._scan_state(exclude)

    # -- 1 and 3: the engine's state -----------------------------------------------------------

    def _scan_state(self, exclude: ActivityRef | None) -> _Verdict:
        engine = self._engine
        processor = engine.processor
        now = self._clock.now_ms()
        next_due: int | None = None
        with processor.store_lock:
            active = processor.active_partitions()
            if len(active) < engine.partition_count:
                return _Verdict(busy="engine partitions are still restoring")
            store = processor.store
            for p in sorted(active):
                for run_id_bytes in (v for _, v in store.scan(p, CF_CURRENT)):
                    raw = store.get(p, CF_RUNS, run_id_bytes)
                    if raw is None:
                        continue
                    busy = _run_busy(json.loads(raw), exclude)
                    if busy is not None:
                        return _Verdict(busy=busy)
                due = _first_observable_timer(store.scan(p, _TIMERS, limit=_TIMER_SCAN_LIMIT))
                if due is not None and due <= now:
                    return _Verdict(busy="a timer is due and not fired yet")
                if due is not None and (next_due is None or due < next_due):
                    next_due = due
        return _Verdict(busy=None, next_due_ms=next_due)

    # -- 2: nothing in flight on the commands topic ------------------------------------------

    async def _barrier_round(self) -> str | None:
        """Barrier every commands partition; None if nothing was written after the barriers."""
        self.barriers += 1
        engine = self._engine
        # Fresh keys per round: a commit of an earlier round's (or a wake-up's) record cannot
        # be mistaken for this round's.
        keys = self._next_keys()
        waits = [asyncio.ensure_future(engine.wait_for_change(key, 10.0)) for key in keys.values()]
        await asyncio.sleep(0)  # let the waiters register before the barriers can commit
        try:
            offsets = await self._produce_barriers(keys, wait=True)
        except BaseException:
            for w in waits:
                w.cancel()
            raise
        if not all(await asyncio.gather(*waits)):
            return "the engine did not process the barrier within 10 s"
        highs = await asyncio.get_running_loop().run_in_executor(None, self._high_watermarks)
        for p, offset in offsets.items():
            if highs.get(p, -1) != offset + 1:
                return f"commands were written to partition {p} after the barrier"
        return None

    def _next_keys(self) -> dict[int, str]:
        self._round += 1
        return _barrier_keys(self._partitions, f"__kronicle_time_skipping_{uuid.uuid4().hex[:8]}_{self._round}")

    async def _produce_barriers(self, keys: dict[int, str], *, wait: bool) -> dict[int, int]:
        offsets: dict[int, int] = {}
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            partition, offset = msg.partition(), msg.offset()
            if err is not None:
                errors.append(str(err))
            elif partition is not None and offset is not None:
                offsets[partition] = offset

        registry = self._engine.registry
        for p, key in keys.items():
            datum = {
                "workflow_id": key,
                "run_id": "",  # no such run: the engine counts the record as stale and changes nothing
                "initiated_event_id": 0,
                "target_workflow_id": key,
                "target_run_id": "",
                "ok": True,
                "cause": "",
            }
            value = registry.encode(_BARRIER_SCHEMA, datum)
            self._producer.produce(self._topic, value, key.encode(), partition=p, on_delivery=on_delivery)
        if not wait:
            self._producer.poll(0)
            return offsets
        remaining = await asyncio.get_running_loop().run_in_executor(None, self._producer.flush, 10.0)
        if remaining or errors:
            raise RuntimeError(f"time skipping could not write its barrier records: {errors or remaining}")
        return offsets

    def _high_watermarks(self) -> dict[int, int]:
        highs: dict[int, int] = {}
        for p in range(self._partitions):
            _, high = self._watermarks.get_watermark_offsets(TopicPartition(self._topic, p), timeout=10, cached=False)
            highs[p] = int(high)
        return highs


def _run_busy(run: dict[str, Any], exclude: ActivityRef | None) -> str | None:
    if run.get("status") != "RUNNING":
        return None
    if run.get("wft") is not None:
        return f"workflow {run['workflow_id']} has an outstanding workflow task"
    for act in (run.get("activities") or {}).values():
        if act.get("state") != "DISPATCHED":
            continue  # waiting for a retry: its backoff timer is what time skips to
        if exclude is not None and (
            run["run_id"] == exclude.run_id
            and str(act.get("activity_id")) == exclude.activity_id
            and int(act.get("attempt", 0)) == exclude.attempt
        ):
            continue
        return f"activity {act.get('activity_type')} of workflow {run['workflow_id']} is running"
    return None


def _first_observable_timer(timers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for tkey, value in timers:
        _, payload = decode_timer(value)
        try:
            kind = json.loads(payload).get("kind")
        except (ValueError, AttributeError):
            kind = None
        if kind in _HOUSEKEEPING_TIMERS:
            continue
        return int.from_bytes(tkey[:8], "big", signed=True)
    return None


def _barrier_keys(partitions: int, prefix: str) -> dict[int, str]:
    """A record key (workflow id) landing on each partition, so one barrier reaches each."""
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < partitions:
        key = f"{prefix}_{i}"
        keys.setdefault(partition_for(key.encode(), partitions), key)
        i += 1
    return dict(sorted(keys.items()))
