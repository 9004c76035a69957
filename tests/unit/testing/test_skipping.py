"""The pure parts of time skipping: the clock, what counts as runnable, which timers pull time forward."""

from __future__ import annotations

import json
import time

from kronicle.engine.context import MemoryContext, timer_key
from kronicle.testing._skipping import (
    ActivityRef,
    SkippingClock,
    _barrier_keys,
    _first_observable_timer,
    _run_busy,
)
from kronicle.topics import partition_for


def test_the_clock_follows_the_wall_clock_and_only_moves_forward() -> None:
    clock = SkippingClock()
    assert abs(clock.now_ms() - time.time_ns() // 1_000_000) < 1000
    target = clock.now_ms() + 30 * 86_400_000
    assert clock.advance_to(target) > 0
    assert clock.now_ms() >= target
    assert clock.advance_to(target - 1000) == 0  # never back
    assert clock.offset_ms >= 30 * 86_400_000 - 1000


def _run(**fields: object) -> dict[str, object]:
    return {"workflow_id": "wf", "run_id": "r1", "status": "RUNNING", "wft": None, "activities": {}, **fields}


def test_an_outstanding_workflow_task_is_runnable() -> None:
    assert _run_busy(_run(wft={"scheduled_event_id": 2, "attempt": 1}), None) is not None
    assert _run_busy(_run(), None) is None


def test_a_dispatched_activity_is_runnable_unless_it_is_the_caller_and_backoff_is_not() -> None:
    act = {"activity_id": "1", "activity_type": "slow", "attempt": 2, "state": "DISPATCHED"}
    run = _run(activities={"5": act})
    assert _run_busy(run, None) is not None
    assert _run_busy(run, ActivityRef("r1", "1", 2)) is None
    assert _run_busy(run, ActivityRef("r1", "1", 1)) is not None  # an earlier attempt is not the caller
    assert _run_busy(_run(activities={"5": {**act, "state": "BACKOFF"}}), None) is None


def test_closed_runs_are_never_runnable() -> None:
    assert _run_busy(_run(status="COMPLETED", wft={"scheduled_event_id": 2}), None) is None


def test_housekeeping_timers_do_not_pull_time_forward() -> None:
    ctx = MemoryContext()
    ctx.schedule_timer(b"dedup", 1_000, b"wf", json.dumps({"kind": "dedup", "arg": "00"}).encode())
    ctx.schedule_timer(b"keep", 2_000, b"wf", json.dumps({"kind": "retention", "run_id": "r"}).encode())
    ctx.schedule_timer(b"sleep", 3_000, b"wf", json.dumps({"kind": "timer", "run_id": "r", "arg": "1"}).encode())
    ctx.commit()
    timers = sorted((k, v) for (cf, k), v in ctx.state.items() if cf == "timers")
    assert timers[0][0] == timer_key(1_000, b"dedup")
    assert _first_observable_timer(timers) == 3_000
    assert _first_observable_timer(timers[:2]) is None


def test_barrier_keys_cover_every_partition() -> None:
    for partitions in (1, 2, 4, 12):
        keys = _barrier_keys(partitions, "round")
        assert sorted(keys) == list(range(partitions))
        assert all(partition_for(key.encode(), partitions) == p for p, key in keys.items())
