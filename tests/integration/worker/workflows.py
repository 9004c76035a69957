"""Workflows and activities of the worker's integration tests."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from datetime import timedelta

from kronicle import activity, workflow
from kronicle.common import ActivityCancellationType, RetryPolicy
from kronicle.exceptions import ActivityError

# What the activities saw, per workflow id (tests read these; activities run in this process).
CALLS: collections.Counter[str] = collections.Counter()
CANCELLED: set[str] = set()
_lock = threading.Lock()


@activity.defn(name="flaky")
def flaky(fail_times: int) -> str:
    """Sync: fails the first ``fail_times`` attempts."""
    info = activity.info()
    with _lock:
        CALLS[info.workflow_id] += 1
    if info.attempt <= fail_times:
        raise RuntimeError(f"attempt {info.attempt} failed")
    return f"ok on attempt {info.attempt}"


@activity.defn(name="stall_once")
async def stall_once() -> str:
    """Heartbeats once, then goes silent on the first attempt (heartbeat timeout); later attempts succeed."""
    info = activity.info()
    CALLS[info.workflow_id] += 1
    activity.heartbeat("started")
    if info.attempt == 1:
        await asyncio.sleep(10)
    return f"done on attempt {info.attempt} after {list(info.heartbeat_details)}"


@activity.defn(name="spin")
async def spin() -> str:
    """Heartbeats until cancelled."""
    info = activity.info()
    try:
        while True:
            activity.heartbeat(time.time())
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        CANCELLED.add(info.workflow_id)
        raise


@workflow.defn(name="Retrying")
class Retrying:
    @workflow.run
    async def run(self, fail_times: int) -> str:
        return await workflow.execute_activity(
            "flaky",
            fail_times,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=300), backoff_coefficient=2.0),
        )


@workflow.defn(name="HeartbeatTimeout")
class HeartbeatTimeout:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            "stall_once",
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )


@workflow.defn(name="CancelActivity")
class CancelActivity:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            "spin",
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=5),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.sleep(0.5)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return f"cancelled: {type(err.cause).__name__}"
        return "not cancelled"


@activity.defn(name="slow")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slow done"


@workflow.defn(name="Slow")
class Slow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        return await workflow.execute_activity(
            "slow",
            seconds,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )
