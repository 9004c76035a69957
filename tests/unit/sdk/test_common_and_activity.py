"""RetryPolicy, the error tree's helpers, and the activity context plumbing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from kronicle import activity
from kronicle.activity import ActivityContext, _set_context
from kronicle.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from kronicle.exceptions import ActivityError, ApplicationError, CancelledError, is_cancelled_exception


def test_retry_policy_defaults_match_temporal() -> None:
    p = RetryPolicy()
    assert (p.initial_interval, p.backoff_coefficient, p.maximum_interval, p.maximum_attempts) == (
        timedelta(seconds=1),
        2.0,
        None,
        0,
    )
    assert p.non_retryable_error_types is None
    assert p.effective_maximum_interval == timedelta(seconds=100)


def test_retry_policy_backoff_grows_and_is_capped() -> None:
    p = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=10))
    assert [p.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 10]


def test_retry_policy_reports_every_invalid_field() -> None:
    with pytest.raises(ValueError) as info:
        RetryPolicy(initial_interval=timedelta(0), backoff_coefficient=0.5, maximum_attempts=-1)
    message = str(info.value)
    assert "initial_interval" in message
    assert "backoff_coefficient" in message
    assert "maximum_attempts" in message


def test_retry_policy_dict_round_trip() -> None:
    p = RetryPolicy(maximum_attempts=3, non_retryable_error_types=["Bad"], maximum_interval=timedelta(seconds=5))
    assert RetryPolicy.from_dict(p.to_dict()) == RetryPolicy(
        maximum_attempts=3, non_retryable_error_types=("Bad",), maximum_interval=timedelta(seconds=5)
    )


def test_id_policies_have_temporals_members() -> None:
    assert [m.name for m in WorkflowIDReusePolicy] == [
        "ALLOW_DUPLICATE",
        "ALLOW_DUPLICATE_FAILED_ONLY",
        "REJECT_DUPLICATE",
        "TERMINATE_IF_RUNNING",
    ]
    assert [m.name for m in WorkflowIDConflictPolicy] == ["UNSPECIFIED", "FAIL", "USE_EXISTING", "TERMINATE_EXISTING"]


def test_is_cancelled_exception_follows_the_cause() -> None:
    err = ActivityError(
        "x", scheduled_event_id=1, started_event_id=2, identity="", activity_type="a", activity_id="1", retry_state=None
    )
    err.__cause__ = CancelledError()
    assert is_cancelled_exception(err)
    assert is_cancelled_exception(asyncio.CancelledError())
    err.__cause__ = ApplicationError("no")
    assert not is_cancelled_exception(err)


def _context(beats: list[tuple[object, ...]]) -> ActivityContext:
    info = activity.Info(
        activity_id="1",
        activity_type="fetch",
        attempt=2,
        task_queue="q",
        workflow_id="wf",
        workflow_run_id="run",
        workflow_type="W",
    )
    return ActivityContext(info=info, heartbeat=lambda *d: beats.append(d))


async def test_activity_functions_read_the_context_the_worker_sets() -> None:
    beats: list[tuple[object, ...]] = []
    ctx = _context(beats)

    @activity.defn
    async def fetch() -> int:
        activity.heartbeat("half", 50)
        assert not activity.is_cancelled()
        ctx.cancelled.set()
        assert activity.is_cancelled()
        await activity.wait_for_cancelled()
        return activity.info().attempt

    with _set_context(ctx):
        assert activity.in_activity()
        assert await fetch() == 2
    assert beats == [("half", 50)]
    assert not activity.in_activity()


async def test_context_reaches_sync_activities_in_a_thread() -> None:
    beats: list[tuple[object, ...]] = []

    @activity.defn
    def blocking() -> str:
        activity.heartbeat(1)
        return activity.info().activity_type

    with _set_context(_context(beats)):
        assert await asyncio.to_thread(blocking) == "fetch"  # to_thread copies the context
    assert beats == [(1,)]


def test_activity_functions_outside_an_activity_say_so() -> None:
    with pytest.raises(RuntimeError, match="Not in an activity"):
        activity.info()
